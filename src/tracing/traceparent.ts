/**
 * W3C Trace Context `traceparent` values (https://www.w3.org/TR/trace-context/): read from a
 * trigger's request, stored with an instance (the context its spans continue), and sent
 * downstream. Plain text handling, so that an instance keeps its trace without the SDK loaded.
 */
import { isValidSpanId, isValidTraceId, type SpanContext, TraceFlags } from '@opentelemetry/api';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The span context a `traceparent` header names, or null when the value is not one (a future
 * version may add fields after the flags; version 00 may not, and ff is never valid).
 */
export function parseTraceparent(value: unknown): SpanContext | null {
  if (typeof value !== 'string' || value.length > 512) return null;
  const match = TRACEPARENT.exec(value.trim());
  if (!match) return null;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId)) return null;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
}

/** A span context as a version-00 `traceparent`. */
export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
}

/** A `traceparent` value as stored (version 00, lower case, sampled flag only), or undefined when it is not one. */
export function normalTraceparent(value: unknown): string | undefined {
  const parsed = parseTraceparent(value);
  return parsed === null ? undefined : formatTraceparent(parsed);
}

/** A trigger's `traceparent` header, normalised, or undefined when it has none or not a valid one. */
export function incomingTraceparent(
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  return headers.traceparent === undefined ? undefined : normalTraceparent(headers.traceparent);
}

/** The trace id of a stored `traceparent` (characters 3–35 of a version-00 value). */
export function traceIdOf(traceparent: string | null | undefined): string | null {
  return traceparent ? traceparent.slice(3, 35) : null;
}
