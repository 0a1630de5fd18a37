/**
 * Strict checking of definition options (integrations, the config, connections) with zod: unknown
 * keys are refused (a misspelt `retries:` would otherwise be ignored), numbers must be finite and
 * in range (a NaN delay would otherwise reach the store), and the message names the option by its
 * path (`retry.initialDelayMs`). The schemas only check: the caller keeps its own object, so
 * functions, zod schemas, connections and sources in it are never copied or transformed.
 */
import { z } from 'zod';
import { InvalidDefinitionError } from '../errors.js';

/** The longest a Node.js timer can wait (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
/** The longest retry delay: a year. */
const MAX_DELAY_MS = 365 * 24 * 3_600_000;

const finiteNumber = (rule: string, ok: (n: number) => boolean) =>
  z.custom<number>((v) => typeof v === 'number' && Number.isFinite(v) && ok(v), { error: `must be ${rule}` });

/** Milliseconds above 0 that a timer can wait. */
export const timerMs = finiteNumber(
  `a number of milliseconds above 0 and at most ${MAX_TIMER_MS} (about 24.8 days)`,
  (n) => n > 0 && n <= MAX_TIMER_MS,
);
/** A delay of 0 up to `max` ms. */
export const delayMs = (max = MAX_DELAY_MS) =>
  finiteNumber(`a number of milliseconds from 0 to ${max}`, (n) => n >= 0 && n <= max);
/** An integer from `min` to `max`. */
export const integer = (min: number, max: number) =>
  finiteNumber(`an integer from ${min} to ${max}`, (n) => Number.isInteger(n) && n >= min && n <= max);
/** A finite number from `min` to `max` (above `min` when `above` is set). */
export const between = (min: number, max: number, above = false) =>
  finiteNumber(
    above ? `a number above ${min} and at most ${max}` : `a number from ${min} to ${max}`,
    (n) => (above ? n > min : n >= min) && n <= max,
  );
export const text = z.string({ error: 'must be a string' });
export const nonEmptyText = z.string({ error: 'must be a non-empty string' }).min(1, {
  error: 'must be a non-empty string',
});
export const fn = <F extends (...args: any[]) => unknown>() =>
  z.custom<F>((v) => typeof v === 'function', { error: 'must be a function' });
/** A zod schema (anything with `safeParse`); checked by duck type so that any zod copy works. */
export const zodSchema = z.custom<z.ZodType>(
  (v) => typeof (v as { safeParse?: unknown } | null)?.safeParse === 'function',
  { error: 'must be a zod schema' },
);
/** An object of options: unknown keys are refused. */
export const options = <S extends z.core.$ZodLooseShape>(shape: S) =>
  z.strictObject(shape, {
    error: (issue) => (issue.code === 'invalid_type' ? 'must be an object of options' : undefined),
  });
export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, {
    error: `must be ${values
      .map((v) => JSON.stringify(v))
      .join(', ')
      .replace(/, ([^,]*)$/, ' or $1')}`,
  });

/**
 * Checks `value` against `schema`; throws `invalid-definition` naming every wrong option,
 * prefixed by `where` (`Integration "x"`). Returns nothing: the caller's object is used as it is.
 */
export function checkOptions(schema: z.ZodType, value: unknown, where: string): void {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return;
  const messages = result.error.issues.slice(0, 5).map((issue) => describeIssue(schema, value, issue));
  throw new InvalidDefinitionError(`${where}: ${messages.join('; ')}`);
}

function describeIssue(root: z.ZodType, value: unknown, issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(root, value, path);
    return issue.keys
      .map((key) => {
        const name = [...path, key].join('.');
        const near = known.find((k) => similar(k, key));
        const hint =
          near !== undefined
            ? ` (did you mean "${[...path, near].join('.')}"?)`
            : known.length > 0
              ? ` (known: ${known.join(', ')})`
              : '';
        return `unknown option "${name}"${hint}`;
      })
      .join('; ');
  }
  if (issue.code === 'invalid_union') {
    // `false | { … }` and the like: when the value has the shape of one option (its issues are
    // all inside it), those issues say what is wrong.
    const fitting = issue.errors.filter(
      (errors) => errors.length > 0 && errors.every((e) => e.path.length > 0),
    );
    if (fitting.length === 1) {
      return fitting[0]!
        .map((inner) => describeIssue(root, value, { ...inner, path: [...issue.path, ...inner.path] }))
        .join('; ');
    }
  }
  const name = path.length > 0 ? path.join('.') : 'the options';
  const message = issue.message.startsWith('must') ? issue.message : `is invalid: ${issue.message}`;
  return `${name} ${message}${shown(issue.input)}`;
}

/** The received value, when it is safe and useful to show (never strings: they may be secrets). */
function shown(input: unknown): string {
  if (typeof input === 'number' || typeof input === 'boolean' || input === null || input === undefined) {
    return `, got ${String(input)}`;
  }
  if (typeof input === 'string') return ', got a string';
  if (typeof input === 'function') return ', got a function';
  return Array.isArray(input) ? ', got an array' : '';
}

/** The option names of the object schema at `path` (following the value through unions). */
function knownKeys(root: z.ZodType, value: unknown, path: string[]): string[] {
  let schema: z.ZodType | undefined = root;
  let current = value;
  for (let i = 0; i <= path.length && schema !== undefined; i++) {
    schema = unwrap(schema, current);
    if (i === path.length) break;
    const key = path[i]!;
    schema = schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>)[key] : undefined;
    current = (current as Record<string, unknown> | undefined)?.[key];
  }
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function unwrap(schema: z.ZodType, value: unknown): z.ZodType {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodNullable)
      current = current.unwrap() as z.ZodType;
    else if (current instanceof z.ZodUnion) {
      // The object option whose `type` (if it has one) accepts the value's.
      const type = (value as { type?: unknown } | null)?.type;
      const option = (current.options as z.ZodType[]).find(
        (o) =>
          o instanceof z.ZodObject && (o.shape.type === undefined || o.shape.type.safeParse(type).success),
      );
      if (option === undefined) return current;
      current = option;
    } else return current;
  }
}

/** Same letters but for a small slip: one edit apart, a plural, or a different case. */
function similar(known: string, given: string): boolean {
  const a = known.toLowerCase();
  const b = given.toLowerCase();
  if (a === b) return true;
  // A different ending of the same word: retry/retries, param/params.
  let prefix = 0;
  while (prefix < a.length && a[prefix] === b[prefix]) prefix++;
  if (prefix >= 4 && prefix >= Math.max(a.length, b.length) - 3) return true;
  const allowed = Math.min(a.length, b.length) <= 4 ? 1 : 2;
  if (Math.abs(a.length - b.length) > allowed) return false;
  // Levenshtein distance, small strings only.
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]! <= allowed;
}
