/**
 * OpenTelemetry traces of Tandem's work: a span per sync call, per accept, per async attempt, per
 * step and per connection call. The engine holds a {@link Tracing} only when tracing is configured
 * (a tracer provider, an endpoint, or `OTEL_EXPORTER_OTLP_ENDPOINT`); without one it makes no span
 * object at all, so the hot paths pay nothing. The SDK and the OTLP exporter are loaded here, on
 * demand, and never by a process that does not trace.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type Attributes,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { InvalidDefinitionError } from '../errors.js';
import { formatTraceparent, parseTraceparent } from './traceparent.js';

export type { Span };
export { SpanKind };

/** `tracing` in the config and the engine's options. */
export interface TracingOptions {
  /**
   * The OTLP/HTTP collector's base address (`http://collector:4318`): spans are sent to
   * `<endpoint>/v1/traces`. Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full address) or
   * `OTEL_EXPORTER_OTLP_ENDPOINT` (a base); with neither, nothing is traced.
   */
  endpoint?: string;
  /** Headers sent with every export (e.g. an API key). Default: `OTEL_EXPORTER_OTLP_HEADERS`. */
  headers?: Record<string, string>;
  /** The `service.name` of the spans. Default `OTEL_SERVICE_NAME`, else `tandem`. */
  serviceName?: string;
  /**
   * A tracer provider of your own (your SDK set-up, a test's in-memory exporter): Tandem makes its
   * spans with it, exports nothing itself and leaves its shutdown to you.
   */
  tracerProvider?: TracerProvider;
}

/** What a span's parent may be given as: a span, a stored `traceparent`, or nothing (a new trace). */
export type SpanParent = Span | string | null | undefined;

const TRACER_NAME = 'tandem';

/** Attribute names, one place (docs/tracing.md lists them). */
export const ATTR = {
  instance: 'tandem.instance.id',
  integration: 'tandem.integration.id',
  mode: 'tandem.mode',
  run: 'tandem.run',
  attempt: 'tandem.attempt',
  step: 'tandem.step',
  connection: 'tandem.connection',
  outcome: 'tandem.outcome',
  parent: 'tandem.parent.id',
  trackingPrefix: 'tandem.tracking.',
  method: 'http.request.method',
  status: 'http.response.status_code',
} as const;

/** The engine's tracer and what it needs around it; made by {@link startTracing}. */
export class Tracing {
  constructor(
    private readonly tracer: Tracer,
    /** Exports what is buffered and stops the SDK Tandem started; nothing for a provider of the user's. */
    private readonly close: () => Promise<void> = async () => {},
  ) {}

  /** Starts a span under `parent` (a new trace when there is none). */
  start(name: string, kind: SpanKind, parent: SpanParent, attributes: Attributes): Span {
    return this.tracer.startSpan(name, { kind, attributes }, contextOf(parent));
  }

  /** Runs `fn` with `span` active, so that spans made by the user's own instrumentation nest in it. */
  within<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /** Exports what is left and stops the exporter (when Tandem started it). */
  shutdown(): Promise<void> {
    return this.close();
  }
}

function contextOf(parent: SpanParent) {
  if (!parent) return ROOT_CONTEXT;
  if (typeof parent !== 'string') return trace.setSpan(ROOT_CONTEXT, parent);
  const remote = parseTraceparent(parent);
  return remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
}

/** A span's context as the `traceparent` its children (stored, or sent downstream) carry. */
export function traceparentOf(span: Span): string {
  return formatTraceparent(span.spanContext());
}

/** Ends a span: with an error status (its already masked message) when `error` is given. */
export function endSpan(span: Span, error?: { message: string; code?: string | undefined } | null): void {
  if (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    if (error.code !== undefined) span.setAttribute('error.type', error.code);
  }
  span.end();
}

/** Tracking values as attributes (they are stored masked already, so the span shows what the console does). */
export function trackingAttributes(attributes: Attributes, tracking: Record<string, string>): Attributes {
  for (const name in tracking) attributes[ATTR.trackingPrefix + name] = tracking[name];
  return attributes;
}

/**
 * Whether tracing is on, and with what: a provider given wins; `false` turns it off; otherwise an
 * endpoint (the option, or the standard environment variables) starts the OTLP/HTTP exporter.
 * Null when nothing asks for traces: the SDK is then never loaded.
 */
export async function startTracing(
  options: TracingOptions | false | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tracing | null> {
  if (options === false) return null;
  if (options?.tracerProvider) {
    return new Tracing(options.tracerProvider.getTracer(TRACER_NAME));
  }
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return null;
  const endpoint = options?.endpoint;
  if (endpoint === undefined && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT && !env.OTEL_EXPORTER_OTLP_ENDPOINT)
    return null;
  if (endpoint !== undefined && !isHttpUrl(endpoint))
    throw new InvalidDefinitionError(`tracing.endpoint "${endpoint}" is not an http:// or https:// URL`);
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  // Without a URL the exporter reads the standard variables itself (traces endpoint, headers, timeout).
  const exporter = new OTLPTraceExporter({
    ...(endpoint === undefined ? {} : { url: `${endpoint.replace(/\/+$/, '')}/v1/traces` }),
    ...(options?.headers === undefined ? {} : { headers: options.headers }),
  });
  // Not registered as the global provider: the process's own OpenTelemetry set-up (if any) stays its own.
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options?.serviceName ?? (env.OTEL_SERVICE_NAME || 'tandem'),
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  return new Tracing(provider.getTracer(TRACER_NAME), () => provider.shutdown());
}

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}

/**
 * The step span the handler's code runs in (set only while tracing): connection calls and children
 * started inside a step are its children, the rest the attempt's.
 */
export const stepSpan = new AsyncLocalStorage<Span>();
