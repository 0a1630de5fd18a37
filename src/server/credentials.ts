import { createHash, timingSafeEqual } from 'node:crypto';
import type { AnyIntegration } from '../define/integration.js';
import { InvalidDefinitionError } from '../errors.js';

/**
 * What a recognised credential grants: the management API, or the triggers of the integrations
 * that list it (one key may be configured on several triggers, and then opens each of them).
 */
export type Grant = { kind: 'admin' } | { kind: 'trigger'; integrationIds: ReadonlySet<string> };

const digest = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/**
 * Every secret the server knows (admin token, trigger API keys), kept as SHA-256 digests. A
 * presented credential is compared with all of them in constant time (equal-length digests,
 * `timingSafeEqual`, no early exit), so the time taken reveals neither a key nor a prefix of one.
 * Knowing *which* secret matched is what separates 401 (no or unknown credential) from 403 (a
 * real credential that does not grant this resource).
 */
export class CredentialRing {
  /** One entry per distinct secret, holding everything that secret grants. */
  private readonly entries: { digest: Buffer; grant: Grant }[] = [];

  static fromIntegrations(integrations: AnyIntegration[], adminToken: string | null): CredentialRing {
    const ring = new CredentialRing();
    if (adminToken) ring.add(adminToken, { kind: 'admin' });
    for (const integration of integrations) {
      if (integration.auth?.type !== 'api-key') continue;
      for (const key of integration.auth.keys) {
        ring.add(key, { kind: 'trigger', integrationIds: new Set([integration.id]) });
      }
    }
    return ring;
  }

  /**
   * Adds a secret. A key already known for other triggers then grants this one too; the admin
   * token may not double as a trigger key, since whoever calls the trigger would hold it.
   */
  add(secret: string, grant: Grant): void {
    const known = digest(secret);
    const entry = this.entries.find((e) => e.digest.equals(known));
    if (entry === undefined) {
      this.entries.push({
        digest: known,
        grant:
          grant.kind === 'admin' ? grant : { kind: 'trigger', integrationIds: new Set(grant.integrationIds) },
      });
      return;
    }
    if (entry.grant.kind === 'trigger' && grant.kind === 'trigger') {
      for (const id of grant.integrationIds) (entry.grant.integrationIds as Set<string>).add(id);
      return;
    }
    if (entry.grant.kind === 'admin' && grant.kind === 'admin') return;
    const ids = [entry.grant, grant].flatMap((g) => (g.kind === 'trigger' ? [...g.integrationIds] : []));
    throw new InvalidDefinitionError(
      `The admin token is also an API key of ${ids.map((id) => `"${id}"`).join(', ')}: give the triggers their own keys`,
    );
  }

  /** The grant of the secret equal to `presented`, or null when it matches none. */
  identify(presented: string): Grant | null {
    const candidate = digest(presented);
    let found: Grant | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(candidate, entry.digest) && found === null) found = entry.grant;
    }
    return found;
  }
}
