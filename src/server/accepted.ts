import type { FastifyReply } from 'fastify';
import type { Accepted } from '../engine/engine.js';

function statusUrlOf(instanceId: string): string {
  return `/api/instances/${encodeURIComponent(instanceId)}`;
}

/** The answer of an async trigger or run-now, sent only after the commit. */
export function sendAccepted(reply: FastifyReply, accepted: Accepted) {
  const statusUrl = statusUrlOf(accepted.instanceId);
  reply.code(202).header('location', statusUrl);
  // A repeated Idempotency-Key returns the original instance; say so, as payment APIs do.
  if (!accepted.created) reply.header('idempotent-replayed', 'true');
  return reply.send({ instanceId: accepted.instanceId, status: accepted.status, statusUrl });
}
