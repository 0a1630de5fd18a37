/**
 * Prometheus metrics (prom-client): counters of accepted, started, succeeded, failed and retried
 * instances, duration histograms per integration and mode, and gauges of queue depth and of
 * instances retrying, read from the store at scrape time.
 */
import client from 'prom-client';
import type { Engine } from './engine/engine.js';
import type { EngineObserver } from './engine/observer.js';
import type { Mode } from './model.js';

export interface Metrics {
  registry: client.Registry;
  /** The text exposition format, for `GET /metrics`. */
  render(): Promise<string>;
  contentType: string;
}

/** Duration buckets in seconds, from a fast sync call to a long batch attempt. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createMetrics(engine: Engine): Metrics {
  const registry = new client.Registry();
  const labels = ['integration', 'mode'] as const;
  const counter = (name: string, help: string) =>
    new client.Counter({ name, help, labelNames: labels, registers: [registry] });
  const accepted = counter('tandem_instances_accepted_total', 'Durable instances committed.');
  const started = counter(
    'tandem_attempts_started_total',
    'Attempts started (including takeovers of expired leases).',
  );
  const succeeded = counter('tandem_instances_succeeded_total', 'Instances (and sync calls) that succeeded.');
  const failed = counter('tandem_instances_failed_total', 'Instances (and sync calls) that failed for good.');
  const retried = counter('tandem_attempts_retried_total', 'Failed attempts scheduled for a retry.');
  const duration = new client.Histogram({
    name: 'tandem_attempt_duration_seconds',
    help: 'Duration of finished attempts (async, scheduled) and calls (sync).',
    labelNames: [...labels, 'outcome'],
    buckets: BUCKETS,
    registers: [registry],
  });
  new client.Gauge({
    name: 'tandem_queue_depth',
    help: 'Instances queued (due now or later).',
    registers: [registry],
    async collect() {
      this.set(await engine.countInstances({ status: 'queued' }));
    },
  });
  new client.Gauge({
    name: 'tandem_instances_retrying',
    help: 'Instances waiting for their next attempt.',
    registers: [registry],
    async collect() {
      this.set(await engine.countInstances({ status: 'retrying' }));
    },
  });
  new client.Gauge({
    name: 'tandem_attempts_running',
    help: 'Attempts running in this process.',
    registers: [registry],
    collect() {
      this.set(engine.activeCount);
    },
  });

  const calls = new client.Histogram({
    name: 'tandem_connection_call_duration_seconds',
    help: 'Duration of calls through connections, by connection and status (0: no answer).',
    labelNames: ['connection', 'status'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const callsOf = memo((connection: string, status: number) => calls.labels(connection, String(status)));
  for (const connection of engine.connections.values()) {
    connection.watch(({ status, durationMs }) =>
      callsOf(connection.id, status ?? 0).observe(durationMs / 1000),
    );
  }
  const CIRCUIT = { closed: 0, 'half-open': 1, open: 2 } as const;
  new client.Gauge({
    name: 'tandem_connection_circuit_state',
    help: 'Circuit state per connection: 0 closed, 1 half-open, 2 open.',
    labelNames: ['connection'],
    registers: [registry],
    collect() {
      for (const connection of engine.connections.values()) {
        this.set({ connection: connection.id }, CIRCUIT[connection.circuitState()]);
      }
    },
  });

  // A labelled child per label set, looked up once: prom-client hashes the label object on every
  // inc()/observe() otherwise, on the hot path of every accept, attempt and sync call.
  const modes = new Map<string, Mode>();
  const modeOf = (id: string): Mode => {
    let mode = modes.get(id);
    if (mode === undefined) {
      mode = engine.listIntegrations().find((i) => i.id === id)?.mode ?? 'async';
      modes.set(id, mode);
    }
    return mode;
  };
  const counters = { accepted, started, succeeded, failed, retried };
  const counterOf = memo((kind: keyof typeof counters, integration: string, mode: string) =>
    counters[kind].labels(integration, mode),
  );
  const durationOf = memo((integration: string, mode: string, outcome: string) =>
    duration.labels(integration, mode, outcome),
  );
  const observer: EngineObserver = {
    accepted(integration, mode, count) {
      counterOf('accepted', integration, mode).inc(count);
    },
    started(instance) {
      counterOf('started', instance.integrationId, modeOf(instance.integrationId)).inc();
    },
    finished(instance, outcome, durationMs) {
      // A wait ends an attempt without an outcome of the run: counted when the run ends.
      if (outcome === 'wait') return;
      const mode = modeOf(instance.integrationId);
      const kind = outcome === 'succeeded' ? 'succeeded' : outcome === 'failed' ? 'failed' : 'retried';
      counterOf(kind, instance.integrationId, mode).inc();
      durationOf(instance.integrationId, mode, outcome).observe(durationMs / 1000);
    },
    syncFinished(integration, outcome, durationMs) {
      counterOf(outcome, integration, 'sync').inc();
      durationOf(integration, 'sync', outcome).observe(durationMs / 1000);
    },
  };
  engine.observe(observer);
  return { registry, render: () => registry.metrics(), contentType: registry.contentType };
}

/** `make` per distinct argument list, made once (label sets are few: integrations × modes × outcomes). */
function memo<A extends (string | number)[], R>(make: (...args: A) => R): (...args: A) => R {
  const made = new Map<string, R>();
  return (...args: A) => {
    const key = args.join('\u0000');
    let value = made.get(key);
    if (value === undefined) {
      value = make(...args);
      made.set(key, value);
    }
    return value;
  };
}
