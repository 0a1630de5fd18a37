/**
 * A sync call as HTTP: the runner answers in the domain's words (a `SyncOutcome`), and this module
 * says what the caller is sent — the status (the handler's, or 200, or 204 without a body), the
 * headers it may set, the content type, or a problem. It also gives the runner the check that
 * refuses, before the hand-off commits, an answer HTTP cannot carry.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { SyncResponse } from '../define/integration.js';
import { InvalidAnswerError, type SyncFailed, type SyncOutcome } from '../engine/sync.js';
import { sendProblem } from './problem.js';

const INSTANCE_ID_HEADER = 'tandem-instance-id';

/** A sync call's answer as it is sent: its status is final and its headers can be sent. */
export interface SyncReply {
  ok: true;
  instanceId: string;
  status: number;
  headers: Record<string, string>;
  /** `undefined` for an empty body. */
  payload: string | Buffer | undefined;
  /** True when `payload` is JSON that Tandem serialised (the content type is set for it). */
  json: boolean;
  /** Children committed by the hand-off. */
  started: number;
}

/** What a sync route answers: the handler's answer, or a problem (500, 502/503 downstream, 504 …). */
export type SyncResult = SyncReply | SyncFailed;

/** Framing is the server's business: a handler's content-length could truncate or hang the reply. */
const FRAMING_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
]);

/**
 * Refuses a declared answer HTTP cannot carry — a status outside 200–599, a header that is not a
 * string or not a valid HTTP header — and returns the headers to send: lower-cased, framing headers
 * dropped, copied now (the handler may go on changing its own object while the hand-off commits).
 */
export function checkAnswer(response: SyncResponse): Record<string, string> {
  const status = response.status;
  if (status !== undefined && (!Number.isInteger(status) || status < 200 || status > 599)) {
    throw new InvalidAnswerError(`The handler answered with status ${status}; use 200–599`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (typeof value !== 'string') throw new InvalidAnswerError(`Header "${name}" must be a string`);
    const lower = name.toLowerCase();
    if (FRAMING_HEADERS.has(lower)) continue;
    try {
      validateHeaderName(lower);
      validateHeaderValue(lower, value);
    } catch {
      throw new InvalidAnswerError(`Header "${name}" is not a valid HTTP header`);
    }
    headers[lower] = value;
  }
  return headers;
}

/** The HTTP answer of an outcome (of a run given {@link checkAnswer}). */
export function syncResultOf(outcome: SyncOutcome): SyncResult {
  if (!outcome.ok) return outcome;
  return {
    ok: true,
    instanceId: outcome.instanceId,
    status: outcome.status ?? (outcome.body === undefined ? 204 : 200),
    headers: outcome.headers,
    payload: outcome.body,
    json: outcome.json,
    started: outcome.started,
  };
}

/** Sends a sync call's answer, or its problem, with the instance id in `tandem-instance-id`. */
export function sendSyncResult(reply: FastifyReply, result: SyncResult) {
  reply.header(INSTANCE_ID_HEADER, result.instanceId);
  if (!result.ok) {
    const headers: Record<string, string> = {};
    if (result.retryAfterMs !== undefined)
      headers['retry-after'] = String(Math.ceil(result.retryAfterMs / 1000));
    return sendProblem(reply, result.error, headers, { instanceId: result.instanceId });
  }
  reply.code(result.status).headers(result.headers);
  if (result.payload === undefined) return reply.send();
  if (!result.headers['content-type']) {
    reply.type(
      result.json
        ? 'application/json; charset=utf-8'
        : typeof result.payload === 'string'
          ? 'text/plain; charset=utf-8'
          : 'application/octet-stream',
    );
  }
  return reply.send(result.payload);
}
