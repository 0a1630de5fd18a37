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
  const counter = (name: string, help: string) => new DeferredCounter(registry, name, help);
  const accepted = counter('tandem_instances_accepted_total', 'Durable instances committed.');
  const started = counter(
    'tandem_attempts_started_total',
    'Attempts started (including takeovers of expired leases).',
  );
  const succeeded = counter('tandem_instances_succeeded_total', 'Instances (and sync calls) that succeeded.');
  const failed = counter('tandem_instances_failed_total', 'Instances (and sync calls) that failed for good.');
  const retried = counter('tandem_attempts_retried_total', 'Failed attempts scheduled for a retry.');
  const duration = new FastHistogram(
    registry,
    'tandem_attempt_duration_seconds',
    'Duration of finished attempts (async, scheduled) and calls (sync).',
    [...labels, 'outcome'],
  );
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

  const calls = new FastHistogram(
    registry,
    'tandem_connection_call_duration_seconds',
    'Duration of calls through connections, by connection and status (0: no answer).',
    ['connection', 'status'],
  );
  const callsOf = memo((connection: string, status: number) => calls.series(connection, String(status)));
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

  // The series of a label set, looked up once per label set (see FastHistogram and DeferredCounter).
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
  const durationOf = memo((integration: string, mode: string, outcome: string) =>
    duration.series(integration, mode, outcome),
  );
  const observer: EngineObserver = {
    accepted(integration, mode, count) {
      accepted.inc(integration, mode, count);
    },
    started(instance) {
      started.inc(instance.integrationId, modeOf(instance.integrationId));
    },
    finished(instance, outcome, durationMs) {
      // A wait ends an attempt without an outcome of the run: counted when the run ends.
      if (outcome === 'wait') return;
      const mode = modeOf(instance.integrationId);
      const kind = outcome === 'succeeded' ? 'succeeded' : outcome === 'failed' ? 'failed' : 'retried';
      counters[kind].inc(instance.integrationId, mode);
      durationOf(instance.integrationId, mode, outcome).observe(durationMs / 1000);
    },
    syncFinished(integration, outcome, durationMs) {
      counters[outcome].inc(integration, 'sync');
      durationOf(integration, 'sync', outcome).observe(durationMs / 1000);
    },
  };
  engine.observe(observer);
  return { registry, render: () => registry.metrics(), contentType: registry.contentType };
}

interface Tally {
  labels: { integration: string; mode: string };
  pending: number;
}

/**
 * A counter by integration and mode whose increments are plain additions, handed to prom-client
 * when the counter is read (a scrape): prom-client hashes and validates the label object on every
 * inc(), even through a labelled child, and an accept or an attempt increments one.
 */
class DeferredCounter {
  private readonly tallies = new Map<string, Map<string, Tally>>();

  constructor(registry: client.Registry, name: string, help: string) {
    const tallies = this.tallies;
    new client.Counter({
      name,
      help,
      labelNames: ['integration', 'mode'],
      registers: [registry],
      collect() {
        for (const modes of tallies.values()) {
          for (const tally of modes.values()) {
            if (tally.pending === 0) continue;
            this.inc(tally.labels, tally.pending);
            tally.pending = 0;
          }
        }
      },
    });
  }

  inc(integration: string, mode: string, by = 1): void {
    let modes = this.tallies.get(integration);
    if (modes === undefined) {
      modes = new Map();
      this.tallies.set(integration, modes);
    }
    let tally = modes.get(mode);
    if (tally === undefined) {
      tally = { labels: { integration, mode }, pending: 0 };
      modes.set(mode, tally);
    }
    tally.pending += by;
  }
}

/** One label set of a {@link FastHistogram}: counts per bucket (not cumulative), sum and count. */
class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly labels: Record<string, string>) {
    this.counts = BUCKETS.map(() => 0);
  }

  observe(seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/**
 * A histogram over {@link BUCKETS} that counts in plain numbers and is read out in prom-client's
 * format at scrape time. prom-client's own observe() validates and hashes the label object and
 * finds the bucket by a number-keyed property on every call, and every attempt, sync call and
 * connection call observes one. It is registered in the prom-client registry beside the other
 * metrics: a registry asks a metric only for its name, type, `get()` and `reset()`.
 */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly all: HistogramSeries[] = [];

  constructor(
    registry: client.Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {
    // Not one of prom-client's classes, which the registry's type lists; it reads it the same way.
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** The series of one label set (values in the order of the label names); keep it to observe. */
  series(...values: string[]): HistogramSeries {
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, index) => {
      labels[name] = values[index]!;
    });
    const series = new HistogramSeries(labels);
    this.all.push(series);
    return series;
  }

  /** What prom-client's Histogram.get() gives: cumulative buckets, +Inf, sum and count per series. */
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const series of this.all) {
      if (series.count === 0) continue;
      let cumulative = 0;
      BUCKETS.forEach((bound, index) => {
        cumulative += series.counts[index]!;
        values.push({
          labels: { le: bound, ...series.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        { labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: `${this.name}_bucket` },
        { labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` },
        { labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const series of this.all) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
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
