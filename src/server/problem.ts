/**
 * RFC 9457 problem details: every error Tandem's HTTP server answers is an
 * `application/problem+json` document whose `type` is `urn:tandem:error:<code>` from the one
 * error catalogue (`src/errors.ts`, documented in `docs/errors.md`).
 */
import type { FastifyReply } from 'fastify';
import { ERROR_CATALOGUE, type ErrorCode, problemType, TandemError } from '../errors.js';
import { storeFault } from '../store/faults.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  /** The occurrence: for an error of a sync instance, that instance's URL. */
  instance?: string;
  /** Each failing field of a 400 (`in` body, params, query or header; dotted `path`). */
  errors?: { in?: string; path: string; message: string }[];
  [extension: string]: unknown;
}

/** A TandemError, or an error of another copy of Tandem's module (same code, same shape). */
function asTandemError(error: unknown): TandemError | null {
  if (error instanceof TandemError) return error;
  const candidate = error as { code?: unknown; status?: unknown; message?: unknown } | null;
  if (
    candidate !== null &&
    typeof candidate === 'object' &&
    typeof candidate.code === 'string' &&
    Object.hasOwn(ERROR_CATALOGUE, candidate.code) &&
    typeof candidate.status === 'number'
  ) {
    return candidate as TandemError;
  }
  return null;
}

const RESERVED_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance', 'errors']);

/** The problem document of an error; `extra` adds members (e.g. the instance id of a sync failure). */
export function problemOf(error: TandemError, extra: Record<string, unknown> = {}): ProblemDocument {
  const spec = ERROR_CATALOGUE[error.code];
  const problem: ProblemDocument = {
    type: problemType(error.code),
    title: spec.title,
    status: error.status,
    detail: error.message,
  };
  for (const [key, value] of Object.entries({ ...error.details, ...extra })) {
    if (key === 'issues' && Array.isArray(value)) problem.errors = value as ProblemDocument['errors'];
    else if (!RESERVED_MEMBERS.has(key)) problem[key] = value;
  }
  if (typeof problem.instanceId === 'string') problem.instance = `/api/instances/${problem.instanceId}`;
  return problem;
}

export function sendProblem(
  reply: FastifyReply,
  error: TandemError,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
) {
  const document = problemOf(error, extra);
  // A refusal that will pass (a full disk, a database restart) says when to come back.
  const retryAfter = error.details.retryAfterSeconds;
  if (typeof retryAfter === 'number' && headers['retry-after'] === undefined) {
    headers = { ...headers, 'retry-after': String(retryAfter) };
  }
  return reply
    .code(document.status)
    .headers(headers)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(document));
}

/** Fastify's own errors (body limit, content type, bad URL …) in the catalogue's words. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad-request',
  FST_ERR_BAD_URL: 'bad-request',
  FST_ERR_ASYNC_CONSTRAINT: 'bad-request',
};

/**
 * Maps anything thrown while serving a request to a catalogue error. Unknown errors become a
 * generic 500 whose detail reveals nothing of the server's internals (they are logged instead).
 */
export function toTandemError(error: unknown): { error: TandemError; unexpected: boolean } {
  const tandem = asTandemError(error);
  if (tandem) return { error: tandem, unexpected: tandem.status >= 500 && tandem.code === 'internal-error' };
  const fault = storeFault(error);
  if (fault) return { error: fault, unexpected: false };
  const fastify = error as { code?: unknown; statusCode?: unknown; message?: unknown };
  const mapped = typeof fastify?.code === 'string' ? FASTIFY_CODES[fastify.code] : undefined;
  if (mapped) return { error: new TandemError(mapped, String(fastify.message)), unexpected: false };
  if (typeof fastify?.statusCode === 'number' && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    return { error: new TandemError('bad-request', String(fastify.message)), unexpected: false };
  }
  return {
    error: new TandemError('internal-error', 'The server failed to handle the request'),
    unexpected: true,
  };
}
