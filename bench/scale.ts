/**
 * Scaling out on PostgreSQL: the same drain of queued instances by 1, 2 and 4 worker processes on
 * one database, as `tandem start --role worker` processes would run it (an engine per child
 * process). Instances/s alone says little on a small machine, where the processes, PostgreSQL and
 * the application share the cores; so the CPU each part spends per instance is measured from
 * /proc (the workers', every PostgreSQL server process's, the application's), which is what lets
 * the curve be estimated on a larger machine. Two variants: a no-op handler (the store's cost
 * alone, as bench:pg), and a handler whose step calls a local HTTP application.
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --count 20000 --processes 1,2,4 --concurrency 100 --rounds 2
 *   TANDEM_BENCH_PG_URL=postgres://… npm run bench:scale     # an existing local server instead of a throwaway one
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { httpConnection } from '../src/connections/http.js';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { startPostgres } from '../test/support/postgres.js';
import { cpuUsOf } from './processes.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    processes: { type: 'string', default: '1,2,4' },
    concurrency: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '1' },
    variants: { type: 'string', default: 'noop,http' },
    // Internal: the role of a child process.
    role: { type: 'string' },
    url: { type: 'string' },
    schema: { type: 'string' },
    variant: { type: 'string' },
    app: { type: 'string' },
  },
});
const COUNT = Number(values.count);
const CONCURRENCY = Number(values.concurrency);
const logger = pino({ level: 'warn' });
type Variant = 'noop' | 'http';

/** The integration both the parent (to accept) and the workers (to run) define. */
function integrationOf(variant: Variant, appUrl: string | undefined, onHandled = () => {}) {
  if (variant === 'noop') {
    return {
      connections: [],
      integration: defineIntegration({
        id: 'drain',
        mode: 'async',
        handler: () => {
          onHandled();
          return null;
        },
      }),
    };
  }
  const app = httpConnection('app', { baseUrl: appUrl ?? 'http://127.0.0.1:9', maxConcurrency: 1_000 });
  return {
    connections: [app],
    integration: defineIntegration({
      id: 'drain',
      mode: 'async',
      handler: async (ctx) => {
        await ctx.step('notify', () => ctx.call(app, 'POST', '/orders', { json: ctx.input }));
        onHandled();
      },
    }),
  };
}

/**
 * A worker process: an engine that claims and runs instances from `go` until `stop`, telling the
 * parent how many handlers have run (so that the parent reads the store only at the end).
 */
async function worker() {
  let handled = 0;
  let told = 0;
  const { integration, connections } = integrationOf(values.variant as Variant, values.app, () => handled++);
  setInterval(() => {
    if (handled === told) return;
    told = handled;
    process.send!(told);
  }, 20).unref();
  const store = await PostgresStore.open({ url: values.url!, schema: values.schema! });
  const engine = await Engine.create({
    integrations: [integration],
    store,
    concurrency: CONCURRENCY,
    connections,
    logger,
  });
  process.on('message', async (message) => {
    if (message === 'go') engine.start();
    if (message === 'stop') {
      await engine.stop();
      await store.close();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!('ready');
}

function child(args: string[]): ChildProcess {
  return fork(fileURLToPath(import.meta.url), args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

const once = (proc: ChildProcess) => new Promise<unknown>((resolve) => proc.once('message', resolve));
const exited = (proc: ChildProcess) =>
  new Promise<void>((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', () => resolve())));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fields of /proc/<pid>/stat after the command name (index 0 is the state). */
function statOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU of a PostgreSQL server, in µs: the postmaster's own and that of its children that have
 * exited (cutime, cstime), plus every live child's (backends, WAL writer, checkpointer…). NaN
 * where /proc does not show the server (another machine).
 */
function serverCpuUs(postmaster: number): number {
  const own = statOf(postmaster);
  if (own === null) return Number.NaN;
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statOf(Number(entry));
    if (fields !== null && Number(fields[1]) === postmaster) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1e6) / 100;
}

interface Drain {
  variant: Variant;
  processes: number;
  perSecond: number;
  /** CPU per instance, µs. */
  node: number;
  postgres: number;
  app: number;
  /** Cores busy on average during the drain (workers + PostgreSQL + application). */
  cores: number;
}

async function main() {
  const server = process.env.TANDEM_BENCH_PG_URL ? null : await startPostgres();
  const url = process.env.TANDEM_BENCH_PG_URL ?? server!.url;
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  const backend = (await admin.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const postmaster = Number(statOf(backend)?.[1] ?? Number.NaN);
  const app = values.variants!.includes('http') ? child(['--role', 'app']) : null;
  const appUrl = app ? `http://127.0.0.1:${await once(app)}` : undefined;
  const counts = values.processes!.split(',').map(Number);
  const variants = values.variants!.split(',') as Variant[];
  const cores = availableParallelism();
  let runs = 0;

  async function drain(variant: Variant, processes: number): Promise<Drain> {
    const schema = `bench_scale_${++runs}`;
    const { integration, connections } = integrationOf(variant, appUrl);
    const store = await PostgresStore.open({ url, schema, poolSize: 20 });
    const api = await Engine.create({
      integrations: [integration],
      store,
      worker: false,
      connections,
      logger,
    });
    api.start();
    for (let i = 0; i < COUNT; i += 1_000) {
      await Promise.all(
        Array.from({ length: Math.min(1_000, COUNT - i) }, (_, j) =>
          api.accept('drain', { orderId: `O-${i + j}` }),
        ),
      );
    }
    await api.stop();
    const workers = Array.from({ length: processes }, () =>
      child([
        '--role',
        'worker',
        '--url',
        url,
        '--schema',
        schema,
        '--variant',
        variant,
        ...(appUrl ? ['--app', appUrl] : []),
        '--concurrency',
        String(CONCURRENCY),
      ]),
    );
    await Promise.all(workers.map(once));
    const handled = new Map<ChildProcess, number>();
    for (const w of workers) w.on('message', (n) => typeof n === 'number' && handled.set(w, n));
    await sleep(500); // let the children's start-up settle before the counters are read
    const cpu = () => ({
      node: workers.reduce((sum, w) => sum + cpuUsOf(w.pid), 0),
      postgres: serverCpuUs(postmaster),
      app: app ? cpuUsOf(app.pid) : 0,
    });
    const before = cpu();
    const started = performance.now();
    for (const w of workers) w.send('go');
    // The store is counted only once every handler has run, as bench:pg does: the count's own
    // cost stays out of PostgreSQL's figure.
    while ([...handled.values()].reduce((a, b) => a + b, 0) < COUNT) await sleep(20);
    while ((await store.countInstances({ status: 'succeeded' })) < COUNT) await sleep(20);
    const ms = performance.now() - started;
    const after = cpu();
    for (const w of workers) w.send('stop');
    await Promise.all(workers.map(exited));
    await store.close();
    const per = (key: 'node' | 'postgres' | 'app') => (after[key] - before[key]) / COUNT;
    const total = after.node - before.node + (after.postgres - before.postgres) + (after.app - before.app);
    return {
      variant,
      processes,
      perSecond: Math.round((COUNT / ms) * 1000),
      node: per('node'),
      postgres: per('postgres'),
      app: per('app'),
      cores: total / 1000 / ms,
    };
  }

  try {
    const [one, five, fifteen] = loadavg().map((n) => n.toFixed(2));
    console.log(
      `# npm run bench:scale -- --count ${COUNT} --processes ${values.processes} --concurrency ${CONCURRENCY} --rounds ${values.rounds} --variants ${values.variants}`,
    );
    console.log(
      `# node ${process.version}; ${cores} cores; load average ${one} ${five} ${fifteen}; PostgreSQL ${server ? 'throwaway server (durable settings)' : url}\n`,
    );
    const results: Drain[] = [];
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const variant of variants) {
        // Alternate the order of the process counts so that none always gets the warmer cache.
        for (const processes of round % 2 === 0 ? [...counts].reverse() : counts) {
          results.push(await drain(variant, processes));
        }
      }
    }
    const us = (n: number) => (Number.isNaN(n) ? 'n/a' : Math.round(n).toLocaleString('en'));
    // The ceiling: instances/s if this machine's every core did nothing but this drain at the CPU
    // per instance measured; instances/s near it means the drain is CPU-bound here.
    console.log(
      '| variant | worker processes | instances/s | CPU µs/instance: workers | PostgreSQL | application | cores busy | CPU-bound ceiling here |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      console.log(
        `| ${r.variant} | ${r.processes} | ${r.perSecond.toLocaleString('en')} | ${us(r.node)} | ${us(r.postgres)} | ${r.variant === 'http' ? us(r.app) : '–'} | ${r.cores.toFixed(2)} of ${cores} | ${Math.round((cores * 1e6) / (r.node + r.postgres + r.app)).toLocaleString('en')} |`,
      );
    }
    console.log(
      `\n# load average after: ${loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await admin.end();
    app?.kill();
    await server?.stop();
  }
}

// Last, once every declaration above is initialised.
if (values.role === 'app') {
  // The application the HTTP variant calls, in its own process so that its CPU is its own.
  const body = JSON.stringify({ ok: true });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
  process.on('disconnect', () => process.exit(0));
} else if (values.role === 'worker') {
  await worker();
} else {
  await main();
}
