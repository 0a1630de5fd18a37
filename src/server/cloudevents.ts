/**
 * CloudEvents on async triggers (https://cloudevents.io, HTTP binding 1.0): a request in structured
 * mode (`application/cloudevents+json`, the event in the body) or binary mode (`ce-*` headers, the
 * data in the body) is read with the cloudevents SDK and checked against the spec before anything
 * is stored. The event's `data` becomes the instance's input, `source` + `id` its idempotency key
 * (a redelivered event returns the first delivery's instance), and `id`, `source`, `type` and
 * `subject` are kept with the instance, searchable. Batch mode is refused: one event, one instance.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { type InputIssue, TandemError } from '../errors.js';
import { isStorableText } from '../json.js';
import type { InstanceCloudEvent } from '../model.js';
import type { CloudEventFilter } from '../store/store.js';

const CLOUDEVENTS_JSON = 'application/cloudevents+json';
const CLOUDEVENTS_BATCH = 'application/cloudevents-batch+json';

type Sdk = typeof import('cloudevents');
let loading: Promise<Sdk> | undefined;
/** The SDK, loaded at the first CloudEvent a trigger gets: a server that gets none never pays for it. */
const sdk = (): Promise<Sdk> => {
  loading ??= import('cloudevents');
  return loading;
};

/** Longest `id`; other attributes may be longer, up to {@link MAX_ATTRIBUTE} (they are indexed keys). */
const MAX_ID = 255;
const MAX_ATTRIBUTE = 1024;

/** A CloudEvent received on a trigger: what is kept of it, and its data (the input). */
export interface ReceivedCloudEvent {
  attributes: InstanceCloudEvent;
  data: unknown;
  /** Structured: the data is the body's `data` member; binary: the body. */
  mode: 'structured' | 'binary';
  /** The idempotency key it stands for: `source` and `id` (a URI reference has no space). */
  idempotencyKey: string;
}

/** The media type of a Content-Type header, lower-cased, without its parameters. */
function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * The CloudEvent a request carries, or null when it carries none (no CloudEvents content type and
 * no `ce-specversion` or `ce-id` header). An invalid event is refused with `invalid-cloudevent`
 * naming every fault; batch mode with `unsupported-media-type`.
 */
export async function receivedCloudEvent(
  headers: IncomingHttpHeaders,
  body: unknown,
): Promise<ReceivedCloudEvent | null> {
  const mediaType = mediaTypeOf(headers['content-type']);
  if (mediaType === CLOUDEVENTS_BATCH) {
    throw new TandemError(
      'unsupported-media-type',
      'CloudEvents batch mode is not accepted on a trigger: send one event per request',
    );
  }
  if (mediaType === CLOUDEVENTS_JSON) return structured(await sdk(), body);
  if (headers['ce-specversion'] !== undefined || headers['ce-id'] !== undefined) {
    return binary(await sdk(), headers, body);
  }
  return null;
}

function structured(sdk: Sdk, body: unknown): ReceivedCloudEvent {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid([
      { in: 'body', path: '', message: 'must be a JSON object (a CloudEvent in structured mode)' },
    ]);
  }
  const event = body as Record<string, unknown>;
  const issues: InputIssue[] = [];
  // The SDK fills a missing or empty id with a random one: that would defeat the idempotency key.
  for (const name of ['specversion', 'id', 'source', 'type', 'subject'] as const) {
    const value = event[name];
    if (value === undefined && name !== 'subject') {
      issues.push({ in: 'body', path: name, message: 'is required' });
    } else if (value !== undefined && (typeof value !== 'string' || value === '')) {
      issues.push({ in: 'body', path: name, message: 'must be a non-empty string' });
    }
  }
  checkTime(event.time, 'body', 'time', issues);
  if (event.data_base64 !== undefined) {
    issues.push({
      in: 'body',
      path: 'data_base64',
      message: 'binary data is not accepted: send JSON `data`',
    });
  }
  if (issues.length > 0) throw invalid(issues);
  return checked(
    sdk,
    () => sdk.HTTP.toEvent<unknown>({ headers: { 'content-type': CLOUDEVENTS_JSON }, body }),
    'body',
    event.data,
  );
}

function binary(sdk: Sdk, headers: IncomingHttpHeaders, body: unknown): ReceivedCloudEvent {
  const issues: InputIssue[] = [];
  const ce: Record<string, string> = {};
  // Node joins a repeated header into one value (`a, b`): only set-cookie comes as a list.
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('ce-') && typeof value === 'string') ce[name] = value;
  }
  for (const name of ['ce-specversion', 'ce-id', 'ce-source', 'ce-type', 'ce-subject']) {
    const value = ce[name];
    if (value === undefined && name !== 'ce-subject') {
      issues.push({ in: 'header', path: name, message: 'is required' });
    } else if (value === '') {
      issues.push({ in: 'header', path: name, message: 'must not be empty' });
    }
  }
  checkTime(ce['ce-time'], 'header', 'ce-time', issues);
  if (issues.length > 0) throw invalid(issues);
  // The body is read by the trigger's JSON parser, and any JSON value is data: the SDK is given the
  // headers only (it would refuse a bare number as a payload).
  return checked(sdk, () => sdk.HTTP.toEvent<unknown>({ headers: ce, body: undefined }), 'header', body);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** The SDK reads a `time` it cannot parse as the present moment: such a time is refused here. */
function checkTime(value: unknown, where: 'body' | 'header', path: string, issues: InputIssue[]): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || !RFC3339.test(value) || !Number.isFinite(Date.parse(value))) {
    issues.push({ in: where, path, message: 'must be an RFC 3339 date-time' });
  }
}

/** Builds and validates the event with the SDK, then checks what Tandem stores of it. */
function checked(
  { CloudEvent, ValidationError }: Sdk,
  parse: () => unknown,
  where: 'body' | 'header',
  data: unknown,
): ReceivedCloudEvent {
  const pathOf = (attribute: string) => (where === 'header' ? `ce-${attribute}` : attribute);
  let event: InstanceType<Sdk['CloudEvent']>;
  try {
    const parsed = parse();
    // The SDK deserialises into its CloudEvent class (a batch would be an array of them).
    if (!(parsed instanceof CloudEvent)) throw new ValidationError('not one event');
    event = parsed;
    if (event.specversion !== '1.0') {
      throw invalid([{ in: where, path: pathOf('specversion'), message: 'must be "1.0"' }]);
    }
    event.validate();
  } catch (error) {
    if (error instanceof TandemError) throw error;
    throw invalid(issuesOf(error, error instanceof ValidationError ? error.errors : [], where, pathOf));
  }
  const issues: InputIssue[] = [];
  const attribute = (name: 'id' | 'source' | 'type' | 'subject', max: number): string | null => {
    const value = event[name];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || value === '') {
      issues.push({ in: where, path: pathOf(name), message: 'must be a non-empty string' });
    } else if (value.length > max) {
      issues.push({ in: where, path: pathOf(name), message: `must be at most ${max} characters` });
    } else if (!isStorableText(value)) {
      issues.push({ in: where, path: pathOf(name), message: 'must not contain NUL or lone surrogates' });
    }
    return String(value);
  };
  const id = attribute('id', MAX_ID);
  const source = attribute('source', MAX_ATTRIBUTE);
  const type = attribute('type', MAX_ATTRIBUTE);
  const subject = attribute('subject', MAX_ATTRIBUTE);
  if (issues.length > 0) throw invalid(issues);
  return {
    attributes: { id: id!, source: source!, type: type!, subject },
    data,
    mode: where === 'body' ? 'structured' : 'binary',
    idempotencyKey: `ce:${source} ${id}`,
  };
}

/** The SDK's faults as issues: its schema errors name the attribute (`/source`), other errors do not. */
function issuesOf(
  error: unknown,
  details: readonly unknown[] | null | undefined,
  where: 'body' | 'header',
  pathOf: (name: string) => string,
): InputIssue[] {
  const message = error instanceof Error ? error.message : String(error);
  const issues: InputIssue[] = [];
  for (const detail of details ?? []) {
    if (detail === null || typeof detail !== 'object') continue;
    const { instancePath, message: text } = detail as { instancePath?: unknown; message?: unknown };
    const name = typeof instancePath === 'string' ? instancePath.replace(/^\//, '') : '';
    issues.push({ in: where, path: name === '' ? '' : pathOf(name), message: String(text ?? message) });
  }
  return issues.length > 0 ? issues : [{ in: where, path: '', message }];
}

function invalid(issues: InputIssue[]): TandemError {
  return new TandemError(
    'invalid-cloudevent',
    `Not a valid CloudEvent: ${issues.map((i) => `${i.path || '(event)'}: ${i.message}`).join('; ')}`,
    { issues: issues as unknown as Record<string, string>[] },
  );
}

const ATTRIBUTE_FILTER = /^(type|source|subject)=(.+)$/s;

/** The `cloudEvent` search of the API: a type, source or subject, or one of them as `type=…`. */
export function cloudEventFilterOf(text: string): CloudEventFilter {
  const match = ATTRIBUTE_FILTER.exec(text);
  if (match) return { attribute: match[1] as CloudEventFilter['attribute'], value: match[2]! };
  return { attribute: null, value: text };
}
