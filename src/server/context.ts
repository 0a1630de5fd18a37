import type { FastifyRequest } from 'fastify';
import type { Engine } from '../engine/engine.js';
import type { SyncRunner } from '../engine/sync.js';
import type { ConnectionStats } from './connection-stats.js';
import type { CredentialRing } from './credentials.js';
import type { QueueDepthGauge } from './queue-depth.js';

/**
 * How often callers read an async instance right after accepting it (within a second): a sign that
 * they wait for the answer, which the advisor weighs. Counted in this process since it started.
 */
export class ImmediatePolls {
  private readonly polled = new Map<string, Set<string>>();
  private readonly accepted = new Map<string, number>();

  noteAccepted(integrationId: string, count = 1): void {
    this.accepted.set(integrationId, (this.accepted.get(integrationId) ?? 0) + count);
  }

  noteRead(integrationId: string, instanceId: string, ageMs: number): void {
    if (ageMs > 1_000) return;
    const ids = this.polled.get(integrationId) ?? new Set();
    if (ids.size < 100_000) ids.add(instanceId);
    this.polled.set(integrationId, ids);
  }

  share(integrationId: string): number {
    const accepted = this.accepted.get(integrationId) ?? 0;
    return accepted === 0 ? 0 : Math.min(1, (this.polled.get(integrationId)?.size ?? 0) / accepted);
  }
}

/** What the route modules share; built once per app by `buildApp`. */
export interface ServerContext {
  engine: Engine;
  runner: SyncRunner;
  gauge: QueueDepthGauge;
  ring: CredentialRing;
  polls: ImmediatePolls;
  connections: ConnectionStats;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Checks the raw body before it is parsed (a webhook signature covers the exact bytes). */
    verifyBody?: (request: FastifyRequest, rawBody: Buffer) => void;
    /** The integration of a trigger route: a refused request is logged with it. */
    integrationId?: string;
    /** A JSON content type with no bytes reads as no body (a route whose body is optional). */
    emptyBodyAllowed?: boolean;
  }
}
