import { TandemError } from '../errors.js';

/** Headers a problem response must carry (WWW-Authenticate, Retry-After, Allow). */
export const PROBLEM_HEADERS = Symbol('tandem.problemHeaders');

export type WithHeaders = TandemError & { [PROBLEM_HEADERS]?: Record<string, string> };

export function withHeaders(error: TandemError, headers: Record<string, string>): TandemError {
  (error as WithHeaders)[PROBLEM_HEADERS] = headers;
  return error;
}

/** 401: no credential, or one the server does not recognise. */
export function unauthenticated(detail: string, challenge: string): TandemError {
  return withHeaders(new TandemError('unauthenticated', detail), { 'www-authenticate': challenge });
}

/** 403: a credential the server recognises, which does not grant this resource. */
export function forbidden(detail: string): TandemError {
  return new TandemError('forbidden', detail);
}
