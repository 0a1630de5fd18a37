/**
 * What of an instance is secret, decided in one place. An integration's `redact` paths and every
 * field named like a credential mark values of its input as secret; a {@link Redactor} made from
 * that input masks those fields and every occurrence of their values wherever something derived
 * from the instance is written or shown: error texts, activity events, tracking values, outputs,
 * log lines. A value can leak through many doors (a thrown message, a progress event, a URL in a
 * call record); masking by value at the few places where those are built closes them all.
 */
import { coerceError } from './errors.js';
import type { ErrorInfo } from './model.js';

const REDACTED = '[redacted]';

/** Field names masked at any depth, with or without a `redact` entry. */
const SECRET_NAME =
  /^(password|passwd|secret|token|access_?token|refresh_?token|api_?key|authorization|client_?secret)$/i;

/** A key in JSON text that may be a secret field name: a quick test before parsing an answer to mask it. */
export const SECRET_KEY_IN_JSON = new RegExp(`"${SECRET_NAME.source.slice(1, -1)}"\\s*:`, 'i');

/**
 * Secret values shorter than this are masked where they stand (a field, an equal string or
 * number) but not searched for inside longer text: a one- or two-character value would mask most
 * of every message.
 */
const MIN_SEARCHED_LENGTH = 3;

type Pattern = readonly string[];

const MAX_DEPTH = 1_000;

/**
 * Masks the secrets of one instance. Made from the `redact` paths and the values they select in
 * the input (and, for a sync call, its path parameters and query).
 *
 * @example
 * const redactor = Redactor.of(['card.number'], { card: { number: '4111-1111' } });
 * redactor.text('card 4111-1111 declined'); // 'card [redacted] declined'
 */
export class Redactor {
  /** A redactor with no paths and no secret values: it masks secret-named fields only. */
  static readonly NONE = new Redactor([], []);

  private readonly exact: ReadonlySet<string>;
  private readonly search: RegExp | null;

  private constructor(
    private readonly patterns: readonly Pattern[],
    secrets: readonly string[],
  ) {
    this.exact = new Set(secrets);
    const searched = new Set<string>();
    for (const secret of secrets) {
      if (secret.length < MIN_SEARCHED_LENGTH) continue;
      // The value as written, as JSON writes it inside a string, and as a URL path or query carries it.
      searched.add(secret);
      searched.add(JSON.stringify(secret).slice(1, -1));
      searched.add(encodeURIComponent(secret));
    }
    // Longest first, so that a secret containing another is masked whole.
    const alternatives = [...searched].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.search = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'g') : null;
  }

  /** The redactor of an instance: `paths` from its integration, `sources` its input (sync: also params, query). */
  static of(paths: readonly string[] | undefined, ...sources: unknown[]): Redactor {
    const patterns = (paths ?? []).map((path) => path.split('.'));
    const secrets: string[] = [];
    for (const source of sources) collectSecrets(source, patterns, false, secrets);
    if (patterns.length === 0 && secrets.length === 0) return Redactor.NONE;
    return new Redactor(patterns, secrets);
  }

  /** True when there are secret values to look for (not only secret-named fields). */
  get hasSecrets(): boolean {
    return this.exact.size > 0;
  }

  /** Free text with every occurrence of a secret value replaced. */
  text(text: string): string {
    if (this.exact.size === 0) return text;
    if (this.exact.has(text)) return REDACTED;
    return this.search === null ? text : text.replace(this.search, REDACTED);
  }

  /**
   * A JSON value as it may be written or shown: secret values masked in every string, key and
   * number, and every field with a secret name masked. Returns the value itself when nothing changed.
   */
  json<T>(value: T): T {
    return this.walk(value, [], true, 0) as T;
  }

  /** Input or output as shown: {@link json}, and the `redact` paths masked whatever their value. */
  shown<T>(value: T): T {
    return this.walk(value, this.patterns, true, 0) as T;
  }

  /** A stored error with its message, stack and details masked. */
  error<T extends ErrorInfo | null>(info: T): T {
    if (info === null || this.exact.size === 0) return info;
    const masked: ErrorInfo = { ...info, message: this.text(info.message) };
    if (info.stack !== undefined) masked.stack = this.text(info.stack);
    if (info.details !== undefined) masked.details = this.json(info.details);
    return masked as T;
  }

  /**
   * A thrown value as a log line's `err`: the error itself when the instance holds no secret value,
   * else a copy of the same class (the logger names it) with its message, stack, fields and cause
   * masked.
   */
  logged(thrown: unknown, depth = 0): unknown {
    if (this.exact.size === 0) return thrown;
    const error = coerceError(thrown);
    const copy = Object.create(Object.getPrototypeOf(error) as object) as Error;
    const hidden = (key: string, value: unknown) =>
      Object.defineProperty(copy, key, { value, writable: true, configurable: true });
    hidden('name', error.name);
    hidden('message', this.text(error.message));
    if (error.stack !== undefined) hidden('stack', this.text(error.stack));
    for (const key of Object.keys(error)) {
      (copy as unknown as Record<string, unknown>)[key] = this.json(
        (error as unknown as Record<string, unknown>)[key],
      );
    }
    if (error.cause !== undefined && depth < 5) hidden('cause', this.logged(error.cause, depth + 1));
    return copy;
  }

  private walk(value: unknown, patterns: readonly Pattern[], names: boolean, depth: number): unknown {
    switch (typeof value) {
      case 'string':
        return this.text(value);
      case 'number':
        return this.exact.size > 0 && this.exact.has(String(value)) ? REDACTED : value;
      case 'object':
        break;
      default:
        return value;
    }
    // Deeper than any JSON a store takes (a cycle, say): left as it is, for the store to refuse.
    if (value === null || depth > MAX_DEPTH) return value;
    if (Array.isArray(value)) {
      let copy: unknown[] | null = null;
      for (let i = 0; i < value.length; i++) {
        const inner = this.member(value[i], String(i), patterns, names, depth);
        if (inner === value[i]) continue;
        copy ??= value.slice();
        copy[i] = inner;
      }
      return copy ?? value;
    }
    // Copy-on-write: most values hold nothing to mask and are returned as they are, unallocated.
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    let entries: [string, unknown][] | null = null;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const inner = record[key];
      const maskedKey = this.search === null ? key : this.text(key);
      const maskedInner = this.member(inner, key, patterns, names, depth);
      if (entries === null && (maskedKey !== key || maskedInner !== inner)) {
        entries = keys.slice(0, i).map((k) => [k, record[k]]);
      }
      entries?.push([maskedKey, maskedInner]);
    }
    return entries === null ? value : Object.fromEntries(entries);
  }

  /** One field or element: masked whole when a pattern ends at it or its name is secret. */
  private member(
    value: unknown,
    key: string,
    patterns: readonly Pattern[],
    names: boolean,
    depth: number,
  ): unknown {
    if (names && SECRET_NAME.test(key)) return REDACTED;
    if (patterns.length === 0) return this.walk(value, patterns, names, depth + 1);
    const rest = follow(patterns, key);
    if (rest.some((pattern) => pattern.length === 0)) return REDACTED;
    return this.walk(value, rest, names, depth + 1);
  }
}

/** The patterns that continue below the field `key`. */
function follow(patterns: readonly Pattern[], key: string): Pattern[] {
  const rest: Pattern[] = [];
  for (const pattern of patterns) if (pattern[0] === '*' || pattern[0] === key) rest.push(pattern.slice(1));
  return rest;
}

/** Collects the leaf values of every field a pattern ends at or whose name is secret. */
function collectSecrets(value: unknown, patterns: readonly Pattern[], all: boolean, out: string[]): void {
  if (typeof value === 'string') {
    if (all && value !== '') out.push(value);
    return;
  }
  if (typeof value === 'number') {
    if (all && Number.isFinite(value)) out.push(String(value));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const rest = all || patterns.length === 0 ? patterns : follow(patterns, String(i));
      collectSecrets(value[i], rest, all || rest.some((pattern) => pattern.length === 0), out);
    }
    return;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (all || SECRET_NAME.test(key)) collectSecrets(record[key], [], true, out);
    else if (patterns.length === 0) collectSecrets(record[key], patterns, false, out);
    else {
      const rest = follow(patterns, key);
      collectSecrets(
        record[key],
        rest,
        rest.some((pattern) => pattern.length === 0),
        out,
      );
    }
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Why a field path may not be tracked when its value is masked: a tracking value is shown in
 * lists and searched as it is, so tracking a redacted field would publish it. Returns the
 * reason, or null when the path may be tracked.
 */
export function redactedTrackPath(path: string, redact: readonly string[] | undefined): string | null {
  const segments = path.split('.');
  const named = segments.find((segment) => SECRET_NAME.test(segment));
  if (named !== undefined) return `"${named}" is a secret field name, masked wherever shown`;
  for (const entry of redact ?? []) {
    const pattern = entry.split('.');
    if (pattern.length > segments.length) continue;
    if (pattern.every((part, i) => part === '*' || part === segments[i]))
      return `it is redacted by "${entry}"`;
  }
  return null;
}
