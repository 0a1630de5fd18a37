import { createHash, timingSafeEqual } from 'node:crypto';
import type { AnyIntegration } from '../define/integration.js';

/** What a recognised credential grants: the management API, or one integration's trigger. */
export type Grant = { kind: 'admin' } | { kind: 'trigger'; integrationId: string };

const digest = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/**
 * Every secret the server knows (admin token, trigger API keys), kept as SHA-256 digests. A
 * presented credential is compared with all of them in constant time (equal-length digests,
 * `timingSafeEqual`, no early exit), so the time taken reveals neither a key nor a prefix of one.
 * Knowing *which* secret matched is what separates 401 (no or unknown credential) from 403 (a
 * real credential that does not grant this resource).
 */
export class CredentialRing {
  private readonly entries: { digest: Buffer; grant: Grant }[] = [];

  static fromIntegrations(integrations: AnyIntegration[], adminToken: string | null): CredentialRing {
    const ring = new CredentialRing();
    if (adminToken) ring.add(adminToken, { kind: 'admin' });
    for (const integration of integrations) {
      if (integration.auth?.type !== 'api-key') continue;
      for (const key of integration.auth.keys)
        ring.add(key, { kind: 'trigger', integrationId: integration.id });
    }
    return ring;
  }

  add(secret: string, grant: Grant): void {
    this.entries.push({ digest: digest(secret), grant });
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
