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
  const modeOf = (id: string): Mode => engine.listIntegrations().find((i) => i.id === id)?.mode ?? 'async';
  new client.Gauge({
    name: 'tandem_queue_depth',
    help: 'Instances queued (due now or later).',
    registers: [registry],
    async collect() {
      this.set(await engine.store.countInstances({ status: 'queued' }));
    },
  });
  new client.Gauge({
    name: 'tandem_instances_retrying',
    help: 'Instances waiting for their next attempt.',
    registers: [registry],
    async collect() {
      this.set(await engine.store.countInstances({ status: 'retrying' }));
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
  for (const connection of engine.connections.values()) {
    connection.watch(({ status, durationMs }) =>
      calls.observe({ connection: connection.id, status: String(status ?? 0) }, durationMs / 1000),
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

  const observer: EngineObserver = {
    accepted(integration, mode, count) {
      accepted.inc({ integration, mode }, count);
    },
    started(instance) {
      started.inc({ integration: instance.integrationId, mode: modeOf(instance.integrationId) });
    },
    finished(instance, outcome, durationMs) {
      const l = { integration: instance.integrationId, mode: modeOf(instance.integrationId) };
      if (outcome === 'succeeded') succeeded.inc(l);
      else if (outcome === 'failed') failed.inc(l);
      else retried.inc(l);
      duration.observe({ ...l, outcome }, durationMs / 1000);
    },
    syncFinished(integration, outcome, durationMs) {
      const l = { integration, mode: 'sync' };
      (outcome === 'succeeded' ? succeeded : failed).inc(l);
      duration.observe({ ...l, outcome }, durationMs / 1000);
    },
  };
  engine.observe(observer);
  return { registry, render: () => registry.metrics(), contentType: registry.contentType };
}
