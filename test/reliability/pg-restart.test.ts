/**
 * PostgreSQL restarted under HTTP load: while the database is away, requests that must write are
 * refused with 503 store-unreachable and Retry-After (never a 500), nothing refused is stored,
 * every acknowledged instance completes, and the server needs no restart of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { type PostgresServer, startPostgres } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';
import { type Effects, orderIntegrations, send, serverOn } from './support.js';

// A server of its own: this test restarts it, which the shared one must not see.
let database: PostgresServer;
beforeAll(async () => {
  // Durable settings: with synchronous_commit off, a crash would lose commits that were acknowledged.
  database = await startPostgres();
});
afterAll(async () => {
  await database?.stop();
});

describe('PostgreSQL restarted mid-run', () => {
  it('answers 503 store-unreachable while it is down, loses nothing acknowledged, resumes by itself', async () => {
    const store = await PostgresStore.open({ url: database.url, schema: 'restart' });
    const effects: Effects = new Map();
    const server = await serverOn(store, [...orderIntegrations(effects)], { concurrency: 8, leaseMs: 3_000 });
    const acknowledged: string[] = [];
    const refused: string[] = [];
    const statuses: Record<string, number> = {};
    let n = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const orderId = `R-${++n}`;
        const sync = n % 3 === 0;
        const answer = await send(`${server.url}${sync ? '/quotes' : '/orders'}`, 'POST', { orderId });
        statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
        if (answer.status === 200 || answer.status === 202) acknowledged.push(orderId);
        else {
          refused.push(orderId);
          expect(answer.status, String(answer.status)).toBe(503);
          expect(answer.contentType).toMatch(/^application\/problem\+json/);
          expect(answer.json.type).toBe('urn:tandem:error:store-unreachable');
          expect(Number(answer.retryAfter)).toBeGreaterThan(0);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await database.kill(); // as a crash: connections drop at once
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await database.start();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      running = false;
      await load;
      expect(refused.length).toBeGreaterThan(0);
      expect(acknowledged.length).toBeGreaterThan(50);
      // Acknowledged after the restart too: the server recovered on its own.
      expect(acknowledged.at(-1)).toBe(`R-${n}`);
      await waitFor(
        async () => {
          try {
            return (
              (await store.countInstances({ integrationId: 'ship', status: 'succeeded' })) ===
              acknowledged.length
            );
          } catch {
            return false;
          }
        },
        'acknowledged instances to succeed',
        60_000,
      ).catch(async (error) => {
        // What the unfinished ones were doing, for whoever reads the failure.
        const { items } = await store.listInstances({
          integrationId: 'ship',
          status: ['queued', 'running', 'retrying', 'failed'],
          limit: 20,
        });
        for (const instance of items.slice(0, 5)) {
          const events = await store.getEvents({ instanceId: instance.id, limit: 50 });
          console.error(`unfinished ${JSON.stringify(instance)}\n  events ${JSON.stringify(events)}`);
        }
        throw error;
      });
      for (const orderId of refused) expect(await store.countInstances({ tracking: orderId })).toBe(0);
      if (process.env.TANDEM_FIGURES) {
        console.log(
          `figures pg-restart ${JSON.stringify({ sent: n, acknowledged: acknowledged.length, refused: refused.length, statuses })}`,
        );
      }
    } finally {
      running = false;
      await load.catch(() => {});
      await server.close();
      await store.close();
    }
  }, 120_000);
});
