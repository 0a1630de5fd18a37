/**
 * How a wait for an event names the events it takes: a match is a field equality on the event's
 * payload (`{ employeeId: 'E-1' }`: the payload's top-level `employeeId` is `'E-1'`). A match is
 * stored as its *shape* (its sorted field names) and its *key* (the canonical JSON of its fields
 * and values); an event fits a wait when the payload's fields of the wait's shape give the wait's
 * key. Stores look up the waits an event resumes by (event name, key), one key per shape armed for
 * that name, so matching is an index look-up however many instances wait.
 */
import type { Json } from '../model.js';

/** A wait's match: top-level payload fields and the JSON values they must equal. */
export type Match = Readonly<Record<string, Json>>;

/** JSON with object keys sorted, so that equal values give equal text. */
function canonicalJson(value: Json): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as Json)}`).join(',')}}`;
}

/** The sorted field names of a match, as JSON text (`["employeeId"]`; `[]` for a match on the name alone). */
export function matchShape(match: Match): string {
  return JSON.stringify(Object.keys(match).sort());
}

/** The canonical JSON of a match (`{"employeeId":"E-1"}`; `{}` for none). */
export function matchKey(match: Match): string {
  return canonicalJson(match as Json);
}

/**
 * The key a payload gives for a shape (the JSON text of its field names), or null when the payload
 * lacks one of the fields (it fits no wait of that shape). A field whose value is `undefined` after
 * parsing cannot occur: payloads are JSON.
 */
export function payloadKey(payload: Json, shape: string): string | null {
  const fields = JSON.parse(shape) as string[];
  if (fields.length === 0) return '{}';
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return null;
  const picked: Record<string, Json> = {};
  for (const field of fields) {
    if (!Object.hasOwn(payload, field)) return null;
    picked[field] = payload[field] as Json;
  }
  return canonicalJson(picked);
}
