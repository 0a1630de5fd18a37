/**
 * The one catalogue of Tandem's errors. Each has a stable `code`, an HTTP status and an RFC 9457
 * problem type (`urn:tandem:error:<code>`); `docs/errors.md` documents every entry and a test keeps
 * the two in agreement.
 *
 * Two errors steer the engine rather than report a fault: {@link NonRetryableError} fails the
 * instance at once, {@link RetryAfterError} asks for the next attempt after a given delay.
 */
import type { ErrorInfo, Json } from './model.js';

export interface ErrorSpec {
  status: number;
  title: string;
}

export const ERROR_CATALOGUE = {
  'unknown-integration': { status: 404, title: 'Unknown integration' },
  'invalid-input': { status: 400, title: 'Input does not match the schema' },
  'invalid-definition': { status: 500, title: 'Invalid integration or configuration' },
  'not-serializable': { status: 500, title: 'Value cannot be stored as JSON' },
  'duplicate-step': { status: 500, title: 'Step name used twice in one run' },
  'instance-not-found': { status: 404, title: 'Instance not found' },
  'invalid-state': { status: 409, title: 'Instance is not in a state that allows this' },
  'idempotency-conflict': { status: 422, title: 'Idempotency key reused with a different body' },
  'attempt-timeout': { status: 504, title: 'Attempt exceeded its timeout' },
  'lease-lost': { status: 409, title: 'Lease lost to another worker' },
  cancelled: { status: 409, title: 'The instance was cancelled' },
  'non-retryable': { status: 500, title: 'Handler failed and asked not to be retried' },
  'retry-after': { status: 503, title: 'Handler asked to be retried later' },
  'handler-failed': { status: 500, title: 'Handler failed' },
  'store-closed': { status: 503, title: 'Store is closed' },
  'wrong-mode': { status: 409, title: 'Integration does not run in this mode' },
  'shutting-down': { status: 503, title: 'Engine is shutting down' },
  // HTTP: what a caller can get back from a trigger route or the management API.
  'bad-request': { status: 400, title: 'Request is malformed' },
  'malformed-json': { status: 400, title: 'Body is not valid JSON' },
  'body-too-deep': { status: 400, title: 'Body is nested too deeply' },
  'forbidden-key': { status: 400, title: 'Body contains a forbidden key' },
  'invalid-cloudevent': { status: 400, title: 'Request is not a valid CloudEvent' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Credentials do not grant access to this resource' },
  'route-not-found': { status: 404, title: 'No route for this path' },
  'method-not-allowed': { status: 405, title: 'Method not allowed on this path' },
  'payload-too-large': { status: 413, title: 'Body exceeds the size limit' },
  'expectation-failed': { status: 417, title: 'Expectation not supported' },
  'unsupported-media-type': { status: 415, title: 'Content type is not supported' },
  'queue-full': { status: 429, title: 'Too much work is waiting; retry later' },
  'headers-too-large': { status: 431, title: 'Request headers are too large' },
  'jwks-unavailable': { status: 503, title: "The issuer's keys to verify a JWT cannot be fetched" },
  'internal-error': { status: 500, title: 'Internal error' },
  'downstream-failed': { status: 502, title: 'A downstream application failed' },
  'store-unreachable': { status: 503, title: 'Store is not reachable' },
  'store-full': { status: 503, title: "The store's disk is full" },
  'deadline-exceeded': { status: 504, title: 'Sync integration exceeded its deadline' },
  'http-error': { status: 502, title: 'A connection call got an error response' },
  'connection-failed': { status: 502, title: 'A connection call could not reach the application' },
  'connection-timeout': { status: 504, title: 'A connection call timed out' },
  'circuit-open': { status: 503, title: 'The connection is open-circuited after repeated failures' },
  'missing-secret': { status: 500, title: 'A secret reference has no value' },
  'no-source-files': { status: 404, title: 'No file matches the record source' },
  'source-consumed': { status: 500, title: 'A record source can be read once' },
  'version-missing': { status: 500, title: 'The version an instance started on is not deployed' },
  'step-mismatch': { status: 500, title: 'The handler no longer reaches a stored step' },
  'steps-changed': { status: 409, title: 'The handler a rerun would use lacks a stored step' },
  'callback-not-found': { status: 404, title: 'No such callback' },
  'callback-used': { status: 409, title: 'The callback was already used' },
  'callback-expired': { status: 410, title: 'The callback has expired' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function problemType(code: string): string {
  return `urn:tandem:error:${code}`;
}

/** Marks Tandem's error classes; a global-registry symbol is the same in every copy of Tandem. */
const TANDEM_ERROR = Symbol.for('tandem.error');

/**
 * Whether `value` was made by a class of this name in some copy of Tandem: the check `instanceof`
 * falls back on, so that an error thrown with another copy's `RetryAfterError` (a config that
 * resolved `tandem` elsewhere) still steers the engine.
 */
function madeByTandemClass(value: unknown, name: string): boolean {
  if (typeof value !== 'object' || value === null) return false;
  for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const ctor = (proto as { constructor?: { name?: unknown; [TANDEM_ERROR]?: unknown } }).constructor;
    if (ctor?.[TANDEM_ERROR] === true && ctor.name === name) return true;
  }
  return false;
}

/** Base class of every error Tandem raises on purpose. */
export class TandemError extends Error {
  static readonly [TANDEM_ERROR] = true;

  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class on the right of `instanceof`, a subclass too.
    return Function.prototype[Symbol.hasInstance].call(this, value) || madeByTandemClass(value, this.name);
  }

  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, Json>;

  constructor(code: ErrorCode, message: string, details: Record<string, Json> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.details = details;
  }
}

export class UnknownIntegrationError extends TandemError {
  constructor(readonly integrationId: string) {
    super('unknown-integration', `No integration with id "${integrationId}"`, { integrationId });
  }
}

export interface InputIssue {
  /** Dotted field path; empty for the value itself. */
  path: string;
  message: string;
  /** Which part of an HTTP request the field is in. */
  in?: 'body' | 'params' | 'query' | 'header';
}

export class InvalidInputError extends TandemError {
  constructor(
    readonly issues: InputIssue[],
    message = `Invalid input: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
  ) {
    super('invalid-input', message, { issues: issues as unknown as Json });
  }
}

export class InvalidDefinitionError extends TandemError {
  constructor(message: string) {
    super('invalid-definition', message);
  }
}

export class NotSerializableError extends TandemError {
  constructor(what: string, reason: string) {
    super('not-serializable', `${what} cannot be stored as JSON: ${reason}`, { what, reason });
  }
}

export class DuplicateStepError extends TandemError {
  constructor(readonly stepName: string) {
    super(
      'duplicate-step',
      `Step "${stepName}" was used twice in one run; give each step a unique name (e.g. "charge:\${line.id}")`,
      { step: stepName },
    );
  }
}

/**
 * An attempt that resumes stored steps reached a new step while a stored one at the same place or
 * before it was never reached: the handler changed under the run (a renamed step). Thrown before
 * the new step runs, so that its work is not done a second time under another name.
 */
export class StepMismatchError extends TandemError {
  constructor(step: string, stored: string[]) {
    super(
      'step-mismatch',
      `Step "${step}" is not stored, but the stored step${stored.length > 1 ? 's' : ''} ${stored.map((n) => `"${n}"`).join(', ')} before it ${stored.length > 1 ? 'were' : 'was'} never reached: the handler changed since they ran (a renamed step?). Deploy the change as a new version, or rerun from the start (docs/versioning.md)`,
      { step, stored },
    );
  }
}

/** The instance's version has no handler in this deployment (docs/versioning.md). */
export class VersionMissingError extends TandemError {
  constructor(integrationId: string, version: string, current: string | null) {
    super(
      'version-missing',
      `Instance of "${integrationId}" started on version "${version}", which this deployment does not have (current: ${current === null ? 'unversioned' : `"${current}"`}); keep its handler in previousVersions until its instances finish, set onMissingVersion: 'latest', or rerun it from the start`,
      { version, current },
    );
  }
}

export class InstanceNotFoundError extends TandemError {
  constructor(readonly instanceId: string) {
    super('instance-not-found', `No instance with id "${instanceId}"`, { instanceId });
  }
}

export class InvalidStateError extends TandemError {
  constructor(instanceId: string, status: string, action: string) {
    super('invalid-state', `Cannot ${action} instance "${instanceId}" in status "${status}"`, {
      instanceId,
      status,
      action,
    });
  }
}

/** An idempotency key reused with a different input; `instanceId` is the instance that holds the key. */
export class IdempotencyConflictError extends TandemError {
  constructor(
    readonly idempotencyKey: string,
    readonly instanceId: string,
  ) {
    super(
      'idempotency-conflict',
      `Idempotency key "${idempotencyKey}" was already used with a different input (instance ${instanceId})`,
      { idempotencyKey, instanceId },
    );
  }
}

export class AttemptTimeoutError extends TandemError {
  constructor(timeoutMs: number) {
    super('attempt-timeout', `Attempt exceeded its timeout of ${timeoutMs} ms`, { timeoutMs });
  }
}

export class LeaseLostError extends TandemError {
  constructor(instanceId: string) {
    super('lease-lost', `Lease on instance "${instanceId}" was lost; this attempt's results are discarded`, {
      instanceId,
    });
  }
}

/** The reason a cancelled instance's running attempt is aborted with (its `ctx.signal.reason`). */
export class CancelledError extends TandemError {
  constructor(instanceId: string) {
    super('cancelled', `Instance "${instanceId}" was cancelled; this attempt's results are discarded`, {
      instanceId,
    });
  }
}

export class StoreClosedError extends TandemError {
  constructor() {
    super('store-closed', 'The store is closed');
  }
}

export class WrongModeError extends TandemError {
  constructor(integrationId: string, mode: string, action: string) {
    super('wrong-mode', `Integration "${integrationId}" is ${mode}: it cannot ${action}`, {
      integrationId,
      mode,
    });
  }
}

/** A sync handler did not answer within its deadline; its signal was fired and nothing it started was kept. */
export class DeadlineExceededError extends TandemError {
  constructor(deadlineMs: number) {
    super('deadline-exceeded', `The integration did not answer within its deadline of ${deadlineMs} ms`, {
      deadlineMs,
    });
  }
}

export class ShuttingDownError extends TandemError {
  constructor() {
    super('shutting-down', 'The engine is shutting down and accepts no new work');
  }
}

export class NoSourceFilesError extends TandemError {
  constructor(readonly pattern: string) {
    super('no-source-files', `No file matches "${pattern}"`, { pattern });
  }
}

export class SourceConsumedError extends TandemError {
  constructor() {
    super('source-consumed', 'This record source was already read; create a new one to read again');
  }
}

/**
 * Throw from a handler (or a step) to fail the instance at once, without further attempts.
 *
 * @example
 * if (!customer) throw new NonRetryableError(`Customer ${id} does not exist`);
 */
export class NonRetryableError extends TandemError {
  constructor(message: string, options?: ErrorOptions) {
    super('non-retryable', message, {}, options);
  }
}

/**
 * Throw from a handler to have the next attempt no earlier than `delayMs` from now, e.g. when a
 * target answered 429 with `Retry-After`. With `consumesAttempt: false` the wait does not use up
 * an attempt (a target that is known to be down is not the handler's fault).
 *
 * @example
 * throw new RetryAfterError(30_000, 'Bank is in its maintenance window');
 */
export class RetryAfterError extends TandemError {
  readonly consumesAttempt: boolean;
  constructor(
    readonly delayMs: number,
    message = `Retry after ${delayMs} ms`,
    options?: ErrorOptions & { consumesAttempt?: boolean },
  ) {
    super('retry-after', message, { delayMs }, options);
    this.consumesAttempt = options?.consumesAttempt ?? true;
  }
}

/**
 * The connection to an application is open-circuited: calls fail at once until the re-probe time.
 * An async instance waits for it without using up an attempt; a sync caller gets 503.
 */
export class CircuitOpenError extends TandemError {
  /** The wait does not count as an attempt: the application being down is not the handler's fault. */
  readonly consumesAttempt = false;
  constructor(
    readonly connection: string,
    readonly retryAfterMs: number,
  ) {
    super(
      'circuit-open',
      `Connection "${connection}" is open-circuited after repeated failures; next probe in ${retryAfterMs} ms`,
      { connection, retryAfterMs },
    );
  }
}

/** Turns any thrown value into an Error (a thrown string or object is not an Error). */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`Non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`Non-error thrown: ${String(thrown)}`);
  }
}

/** The stored form of an error. Stacks are kept (they help operators) but trimmed. */
export function toErrorInfo(thrown: unknown): ErrorInfo {
  const error = coerceError(thrown);
  const info: ErrorInfo = { name: error.name, message: error.message };
  if (error instanceof TandemError) {
    info.code = error.code;
    if (Object.keys(error.details).length > 0) info.details = error.details;
  } else {
    if (typeof (error as { code?: unknown }).code === 'string')
      info.code = (error as unknown as { code: string }).code;
    const details = (error as { details?: unknown }).details;
    if (details !== null && typeof details === 'object') info.details = details as Record<string, Json>;
  }
  if (error.stack) info.stack = error.stack.split('\n').slice(0, 12).join('\n');
  return info;
}
