import { NotSerializableError } from './errors.js';
import type { Json } from './model.js';

/**
 * Serialises a value that is about to be stored, refusing what JSON would silently change: a
 * `Map` that would become `{}`, `NaN` that would become `null`, a function that would vanish, a
 * `BigInt` or a cycle that would throw somewhere less helpful. `undefined` at the top is stored as
 * `null`. Objects with `toJSON` (such as `Date`) are stored as their JSON form.
 */
export function toStoredJson(value: unknown, what: string): string {
  if (value === undefined) return 'null';
  // The walk that names the offending path (and tracks cycles) runs only when the quick one fails.
  if (!storable(value, 0)) check(value, what, '$', new Set());
  return JSON.stringify(value);
}

/** Deeper than this, the quick walk gives up and the full one decides (a cycle or just deep). */
const QUICK_DEPTH = 64;

/** True when `value` is surely storable as it is; false when in doubt. Allocates nothing per key. */
function storable(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= QUICK_DEPTH) return false;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!storable(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    if (!storable((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

function check(value: unknown, what: string, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new NotSerializableError(what, `${path} is ${value}`);
      return;
    case 'undefined':
      return; // dropped from objects, as JSON does; arrays store null
    case 'bigint':
      throw new NotSerializableError(what, `${path} is a BigInt`);
    case 'function':
      throw new NotSerializableError(what, `${path} is a function`);
    case 'symbol':
      throw new NotSerializableError(what, `${path} is a symbol`);
  }
  if (value === null) return;
  const object = value as object;
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return;
  if (seen.has(object)) throw new NotSerializableError(what, `${path} is a circular reference`);
  seen.add(object);
  if (Array.isArray(object)) {
    object.forEach((item, index) => {
      check(item, what, `${path}[${index}]`, seen);
    });
  } else {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const name = (object as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      throw new NotSerializableError(what, `${path} is a ${name}, not a plain object`);
    }
    for (const [key, item] of Object.entries(object)) check(item, what, `${path}.${key}`, seen);
  }
  seen.delete(object);
}

export function parseStoredJson(text: string | null): Json | null {
  return text === null ? null : (JSON.parse(text) as Json);
}

/** Half of a UTF-16 surrogate pair: no text encoding can hold it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether a string can be stored as text in every store: PostgreSQL refuses a NUL character and
 * an unpaired surrogate, in a text column as in JSONB. Keys, tracking values and step names are
 * checked before they reach a store, where one refused value would fail a whole batch of writes.
 * (JSON documents are stored as text with such characters escaped, so they need no check.)
 */
export function isStorableText(value: string): boolean {
  return !value.includes('\u0000') && !LONE_SURROGATE.test(value);
}
