import type { FastifyRequest } from 'fastify';
import type { Engine } from '../engine/engine.js';
import type { SyncRunner } from '../engine/sync.js';
import type { CredentialRing } from './credentials.js';
import type { QueueDepthGauge } from './queue-depth.js';

/** What the route modules share; built once per app by `buildApp`. */
export interface ServerContext {
  engine: Engine;
  runner: SyncRunner;
  gauge: QueueDepthGauge;
  ring: CredentialRing;
  adminToken: string | null;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Checks the raw body before it is parsed (a webhook signature covers the exact bytes). */
    verifyBody?: (request: FastifyRequest, rawBody: string) => void;
  }
}
