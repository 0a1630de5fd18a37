/**
 * What a sync call comes to, in the domain's words: answered (what the handler answered, its
 * hand-off committed) or failed (a kind and the catalogue error the caller is told). The server
 * turns it into HTTP. A handler's answer is read here before its hand-off commits, since an answer
 * that cannot be delivered must fail the instance and start nothing: the engine reads the public
 * `SyncResponse` rule and serialises the body (the JSON is also the instance's recorded output);
 * whether the declared status and headers can be sent is for the caller's side (the server) to
 * say, through the check it hands to the runner.
 */
import type { SyncResponse } from '../define/integration.js';
import { coerceError, type TandemError } from '../errors.js';

/** An answer the caller cannot be sent; its message is meant for the integration's author. */
export class InvalidAnswerError extends Error {}

/**
 * The caller's side's say on the status and headers a handler declares (the server's: can HTTP
 * carry them?). It runs before the body is serialised and the hand-off commits, throws an
 * {@link InvalidAnswerError} for an answer it cannot deliver, and returns the headers as it will
 * send them, copied (the handler may go on changing its own object while the hand-off commits).
 */
export type AnswerCheck = (response: SyncResponse) => Record<string, string>;

/**
 * The handler answered and its hand-off is committed: the status and headers it declared, and its
 * body, ready to hand over.
 */
export interface SyncAnswered {
  ok: true;
  instanceId: string;
  /** The status the handler declared (`{ status }`); undefined when it declared none. */
  status: number | undefined;
  /** The headers the handler declared, as the run's check returned them (else a copy, as given). */
  headers: Record<string, string>;
  /** Text or bytes as the handler gave them, JSON that Tandem serialised, or undefined for no body. */
  body: string | Buffer | undefined;
  /** True when `body` is JSON that Tandem serialised. */
  json: boolean;
  /** Children committed by the hand-off. */
  started: number;
}

/**
 * Why a sync call failed:
 * - `deadline`: the handler did not answer in time (its signal fired);
 * - `downstream`: an application it called failed; `unavailable`: one asked to come back later;
 * - `handler`: the handler threw; `bad-answer`: it answered something that cannot be sent;
 * - `bad-input`: its hand-off holds text no store can hold (the request's fault);
 * - `refused`: the engine refused the hand-off (idempotency conflict, shutting down);
 * - `store-refused`: the store refused it (full, unreachable); `hand-off-failed`: committing it failed.
 */
export type SyncFailureKind =
  | 'deadline'
  | 'downstream'
  | 'unavailable'
  | 'handler'
  | 'bad-answer'
  | 'bad-input'
  | 'refused'
  | 'store-refused'
  | 'hand-off-failed';

/** The call failed: nothing of its hand-off was committed. */
export interface SyncFailed {
  ok: false;
  instanceId: string;
  kind: SyncFailureKind;
  /** What the caller is told, from the error catalogue. */
  error: TandemError;
  /** For `unavailable`: when the caller may try again, if the application said. */
  retryAfterMs?: number;
}

export type SyncOutcome = SyncAnswered | SyncFailed;

const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);

/** True when a returned value is a `{status?, headers?, body?}` answer rather than a plain body. */
function isSyncResponse(value: unknown): value is SyncResponse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((k) => RESPONSE_KEYS.has(k))) return false;
  const { status, headers } = value as SyncResponse;
  if (status !== undefined && typeof status !== 'number') return false;
  if (headers !== undefined && (headers === null || typeof headers !== 'object' || Array.isArray(headers))) {
    return false;
  }
  // `{ headers }` alone is more likely a body that happens to use the word.
  return keys.includes('body') || status !== undefined;
}

/**
 * Reads a handler's answer (`started` is set once the hand-off commits); throws an
 * {@link InvalidAnswerError} for one that cannot be sent.
 */
export function readAnswer(
  instanceId: string,
  answer: unknown,
  check: AnswerCheck | undefined,
): SyncAnswered {
  const response: SyncResponse = isSyncResponse(answer) ? answer : { body: answer };
  const headers = check ? check(response) : { ...response.headers };
  const { status, body } = response;
  if (body === undefined) {
    return { ok: true, instanceId, status, headers, body: undefined, json: false, started: 0 };
  }
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    return { ok: true, instanceId, status, headers, body, json: false, started: 0 };
  }
  let payload: string | undefined;
  try {
    payload = JSON.stringify(body);
  } catch (error) {
    throw new InvalidAnswerError(
      `The handler's answer cannot be sent as JSON: ${coerceError(error).message}`,
    );
  }
  if (payload === undefined)
    throw new InvalidAnswerError('The handler answered with a value JSON cannot hold');
  return { ok: true, instanceId, status, headers, body: payload, json: true, started: 0 };
}
