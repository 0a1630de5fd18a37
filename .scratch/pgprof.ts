import pino from 'pino';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { startPostgres } from '../test/support/postgres.js';

const server = await startPostgres();
const store = await PostgresStore.open({ url: server.url, schema: 'p' });
const waiter = defineIntegration({
  id: 'waiter', mode: 'async',
  handler: (ctx) => ctx.waitForEvent('paid', { event: 'payment.received', match: { n: (ctx.input as { n: number }).n } }),
});
const engine = await Engine.create({ integrations: [waiter], store, logger: pino({ level: 'warn' }), concurrency: 100, retention: false });
const N = 3000;
for (let i = 0; i < N; i += 1000) {
  const rows = []; for (let n = i; n < i + 1000; n++) rows.push(engine.prepare('waiter', { n }));
  await engine.acceptPrepared(rows);
}
await store.pool.query(`LOAD 'auto_explain'`).catch(() => {});
await store.pool.query(`ALTER SYSTEM SET log_min_duration_statement = 0`);
await store.pool.query(`SELECT pg_reload_conf()`);
let t = performance.now();
engine.start();
while ((await engine.countInstances({ status: 'waiting' })) < N) await new Promise((r) => setTimeout(r, 20));
console.log('armed/s', Math.round(N / (performance.now() - t) * 1000));
t = performance.now();
for (let i = 0; i < 100; i++) await engine.sendEvent({ name: 'payment.received', payload: { n: i } });
console.log('sends/s', Math.round(100 / (performance.now() - t) * 1000));
const r = await store.pool.query(`EXPLAIN ANALYZE UPDATE p.waits w SET resolved_at = 1
       FROM p.instance_rows r JOIN p.instance_state s ON s.seq = r.seq
       WHERE w.event = 'payment.received' AND w.match_key = ANY(ARRAY['{"n":2000}']) AND w.resolved_at IS NULL AND w.kind = 'event'
         AND (w.expires_at IS NULL OR w.expires_at > 5)
         AND r.id = w.instance_id AND r.run = w.run AND NOT (s.status IN ('succeeded','failed','cancelled'))`);
console.log(r.rows.map((x) => x['QUERY PLAN']).join('\n'));
await engine.stop();
await store.close();

const fs = await import('node:fs');
const path = await import('node:path');
const log = path.join(path.dirname(server.dataDir), 'server.log');
const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('duration')) : ['no log at ' + log];
const counts = new Map<string, {n: number, ms: number}>();
for (const l of lines) { const m = /duration: ([\d.]+) ms\s+(?:statement|execute [^:]*): (.{0,90})/.exec(l); if (!m) continue; const k = m[2]!; const c = counts.get(k) ?? {n:0, ms:0}; c.n++; c.ms += Number(m[1]); counts.set(k, c); }
console.log([...counts.entries()].sort((a,b)=>b[1].ms-a[1].ms).slice(0,15).map(([k,c])=>`${c.n}x ${Math.round(c.ms)}ms ${k}`).join('\n'));
await server.stop();
