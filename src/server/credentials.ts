import { createHash, timingSafeEqual } from 'node:crypto';
import type { AnyIntegration } from '../define/integration.js';
import { InvalidDefinitionError } from '../errors.js';
import type { ManagementToken } from './tokens.js';

/**
 * What a recognised credential grants: the management API in a token's role, or the triggers of
 * the integrations that list it (one key may be configured on several triggers, and then opens
 * each of them).
 */
export type Grant =
  | { kind: 'management'; token: ManagementToken }
  | { kind: 'trigger'; integrationIds: ReadonlySet<string> };

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

  static fromIntegrations(integrations: AnyIntegration[], tokens: ManagementToken[]): CredentialRing {
    const ring = new CredentialRing();
    for (const token of tokens) ring.add(token.secret, { kind: 'management', token });
    for (const integration of integrations) {
      if (integration.auth?.type !== 'api-key') continue;
      for (const key of integration.auth.keys) {
        ring.add(key, { kind: 'trigger', integrationIds: new Set([integration.id]) });
      }
    }
    return ring;
  }

  /**
   * Adds a secret. A key already known for other triggers then grants this one too; a management
   * token may not double as a trigger key, since whoever calls the trigger would hold it.
   */
  add(secret: string, grant: Grant): void {
    const known = digest(secret);
    const entry = this.entries.find((e) => e.digest.equals(known));
    if (entry === undefined) {
      this.entries.push({
        digest: known,
        grant:
          grant.kind === 'management'
            ? grant
            : { kind: 'trigger', integrationIds: new Set(grant.integrationIds) },
      });
      return;
    }
    if (entry.grant.kind === 'trigger' && grant.kind === 'trigger') {
      for (const id of grant.integrationIds) (entry.grant.integrationIds as Set<string>).add(id);
      return;
    }
    const ids = [entry.grant, grant].flatMap((g) => (g.kind === 'trigger' ? [...g.integrationIds] : []));
    const token = [entry.grant, grant].find((g) => g.kind === 'management')?.token;
    if (token === undefined || ids.length === 0) {
      throw new InvalidDefinitionError('Two management tokens have the same secret: give each its own');
    }
    const which = token.name === 'admin' ? 'The admin token' : `The ${token.role} token "${token.name}"`;
    throw new InvalidDefinitionError(
      `${which} is also an API key of ${ids.map((id) => `"${id}"`).join(', ')}: give the triggers their own keys`,
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
