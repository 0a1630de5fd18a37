/**
 * Realistic traffic for a running retail demo: orders, balance and credit checks, stock and seat
 * queries, inventory syncs, new employees with their documents — and an outage of inventory in the
 * middle, to watch sync calls fail fast while fulfilments wait and then complete.
 *
 *   npm run demo:traffic -- [--duration 60] [--outage 30] [--outage-at 10] [--rate 20]
 *                           [--url http://127.0.0.1:3000] [--apps http://127.0.0.1:4000]
 *
 * At the end it waits until every order it placed is fulfilled, checks at the warehouse that each
 * has exactly one packing list, prints a summary, and exits 1 when any order was not fulfilled once.
 */
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.TANDEM_URL ?? 'http://127.0.0.1:3000' },
    apps: { type: 'string', default: process.env.DEMO_APPS_URL ?? 'http://127.0.0.1:4000' },
    duration: { type: 'string', default: '60' },
    outage: { type: 'string', default: '30' },
    'outage-at': { type: 'string' },
    rate: { type: 'string', default: '20' },
    settle: { type: 'string', default: '180' },
  },
  strict: true,
});

const seconds = (name: keyof typeof values, text: string | undefined) => {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number of seconds, got ${text}`);
  return n * 1000;
};
const base = values.url.replace(/\/$/, '');
const directory = values.apps.replace(/\/$/, '');
const durationMs = seconds('duration', values.duration);
const outageMs = seconds('outage', values.outage);
const outageAtMs =
  values['outage-at'] === undefined
    ? Math.min(10_000, durationMs / 5)
    : seconds('outage-at', values['outage-at']);
const settleMs = seconds('settle', values.settle);
const rate = Number(values.rate);
if (!(rate > 0)) throw new Error(`--rate must be a positive number of requests per second`);

const run = Date.now().toString(36);
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const log = (line: string) => process.stdout.write(`${elapsed()}  ${line}\n`);

interface Tally {
  requests: number;
  ok: number;
  faults: Map<number, number>;
  latencies: number[];
}
const tallies = new Map<string, Tally>();
const orders: string[] = [];
let sequence = 0;

async function request(integration: string, method: string, path: string, body?: unknown): Promise<void> {
  const tally = tallies.get(integration) ?? {
    requests: 0,
    ok: 0,
    faults: new Map<number, number>(),
    latencies: [],
  };
  tallies.set(integration, tally);
  tally.requests++;
  const sent = performance.now();
  let status = 0;
  try {
    const response = await fetch(base + path, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    status = response.status;
    await response.arrayBuffer();
  } catch {
    status = 0; // no answer at all
  }
  tally.latencies.push(performance.now() - sent);
  if (status >= 200 && status < 300) tally.ok++;
  else tally.faults.set(status, (tally.faults.get(status) ?? 0) + 1);
  if (integration === 'place-order' && status === 201) orders.push((body as { orderId: string }).orderId);
}

const pick = <T>(items: readonly T[]) => items[Math.floor(Math.random() * items.length)]!;
const SKUS = ['KB-42', 'MS-7', 'HD-1', 'CB-3', 'LP-9'] as const;

/** One request of the mix; the weights are a web shop's day in miniature. */
const MIX: [number, () => Promise<void>][] = [
  [
    30,
    () => {
      const orderId = `T-${run}-${++sequence}`;
      return request('place-order', 'POST', '/orders', {
        orderId,
        email: `${orderId.toLowerCase()}@example.com`,
        sku: pick(SKUS),
        qty: 1 + Math.floor(Math.random() * 3),
        marketing: Math.random() < 0.4,
      });
    },
  ],
  [15, () => request('check-balance', 'GET', `/accounts/ACC-${1 + Math.floor(Math.random() * 50)}/balance`)],
  [10, () => request('credit-check', 'GET', `/customers/C-${1 + Math.floor(Math.random() * 500)}/credit`)],
  [10, () => request('current-inventory', 'GET', `/inventory/${pick(SKUS)}`)],
  [10, () => request('seats-available', 'GET', `/events/${pick(['E-1', 'E-2', 'WORKSHOP-7'])}/seats`)],
  [10, () => request('stock-price', 'GET', `/stocks/${pick(['ACME', 'TNDM', 'SHOP'])}/price`)],
  [10, () => request('sync-inventory', 'POST', '/inventory/sync', { sku: pick(SKUS) })],
  [
    5,
    async () => {
      const employeeId = `EMP-${run}-${++sequence}`;
      // Sent together: the document still waits for its employee (same ordering key).
      await Promise.all([
        request('onboard-employee', 'POST', '/employees', { employeeId, name: 'New Colleague' }),
        request('attach-document', 'POST', '/employees/documents', { employeeId, title: 'contract' }),
      ]);
    },
  ],
];
const TOTAL_WEIGHT = MIX.reduce((sum, [weight]) => sum + weight, 0);
function next(): () => Promise<void> {
  let roll = Math.random() * TOTAL_WEIGHT;
  for (const [weight, send] of MIX) {
    roll -= weight;
    if (roll < 0) return send;
  }
  return MIX[0]![1];
}

let inventoryDown = false;
// Interrupted during the outage: bring inventory back before leaving.
process.once('SIGINT', () => {
  const done = () => process.exit(130);
  if (inventoryDown) switchInventory('up').then(done, done);
  else done();
});

async function switchInventory(state: 'down' | 'up'): Promise<void> {
  const response = await fetch(`${directory}/inventory/${state}`, { method: 'POST' });
  if (!response.ok) throw new Error(`could not take inventory ${state}: ${response.status}`);
  inventoryDown = state === 'down';
  log(`inventory is ${state}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return (await response.json()) as T;
}

async function main(): Promise<number> {
  await getJson(`${base}/healthz`).catch((error: Error) => {
    throw new Error(`no demo at ${base} (start it with \`npm start\`; --url sets it): ${error.message}`);
  });
  log(
    `traffic for ${durationMs / 1000} s at ${rate} requests/s; inventory down from ${outageAtMs / 1000} s for ${outageMs / 1000} s`,
  );
  const outage =
    outageMs > 0
      ? (async () => {
          await sleep(outageAtMs);
          await switchInventory('down');
          // What a caller of a sync integration sees now: a fault at once, not a hang.
          const asked = performance.now();
          const response = await fetch(`${base}/inventory/KB-42`);
          await response.arrayBuffer();
          log(
            `current-inventory while inventory is down: ${response.status} in ${Math.round(performance.now() - asked)} ms`,
          );
          await sleep(outageMs);
          await switchInventory('up');
        })()
      : Promise.resolve();
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / rate;
  let due = performance.now();
  let lastReport = performance.now();
  while (performance.now() - started < durationMs) {
    const sent = next()();
    inFlight.add(sent);
    void sent.finally(() => inFlight.delete(sent));
    if (performance.now() - lastReport >= 5_000) {
      lastReport = performance.now();
      log(`${orders.length} orders confirmed, ${inFlight.size} requests in flight`);
    }
    due += interval;
    await sleep(Math.max(0, due - performance.now()));
  }
  await Promise.all(inFlight);
  await outage;
  log(`traffic done; ${orders.length} orders confirmed; waiting for their fulfilment`);

  // Every confirmed order's fulfilment must complete, exactly once, now that inventory is back.
  type Integration = { id: string; counts: Record<string, number> };
  const deadline = performance.now() + settleMs;
  let active = Number.POSITIVE_INFINITY;
  while (performance.now() < deadline) {
    const { items } = await getJson<{ items: Integration[] }>(`${base}/api/integrations`);
    const counts = items.find((i) => i.id === 'fulfil-order')!.counts;
    // Waiting for the warehouse's shipment callback is still active: the order is not yet shipped.
    active = (counts.queued ?? 0) + (counts.running ?? 0) + (counts.retrying ?? 0) + (counts.waiting ?? 0);
    if (active === 0) break;
    await sleep(1_000);
  }
  const { apps } = await getJson<{ apps: { name: string; url: string }[] }>(`${directory}/`);
  const warehouse = apps.find((a) => a.name === 'warehouse')!.url;
  const packingLists = await getJson<Record<string, number>>(`${warehouse}/packing-lists`);
  const once = orders.filter((id) => packingLists[id] === 1).length;
  const missing = orders.filter((id) => packingLists[id] === undefined).length;
  const twice = orders.length - once - missing;

  const rows = [...tallies].sort(([a], [b]) => a.localeCompare(b));
  const percentile = (values: number[], p: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
  };
  process.stdout.write(
    '\nintegration          requests      ok  faults (status × n)          p50 ms   p95 ms\n',
  );
  for (const [id, t] of rows) {
    const faults = [...t.faults].map(([status, n]) => `${status || 'none'}×${n}`).join(' ') || '-';
    process.stdout.write(
      `${id.padEnd(20)} ${String(t.requests).padStart(8)} ${String(t.ok).padStart(7)}  ${faults.padEnd(28)} ${percentile(t.latencies, 0.5).toFixed(0).padStart(6)} ${percentile(t.latencies, 0.95).toFixed(0).padStart(8)}\n`,
    );
  }
  process.stdout.write(
    `\norders: ${orders.length} confirmed, ${once} fulfilled with exactly one packing list, ${missing} without a packing list, ${twice} with more than one; fulfilments still active: ${active}\n`,
  );
  return missing === 0 && twice === 0 && active === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`demo:traffic: ${error.message}\n`);
    process.exitCode = 1;
  },
);
