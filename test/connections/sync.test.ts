import { describe, expect, it } from 'vitest';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { appServer, json } from '../support/app-server.js';
import { testServer } from '../support/server.js';

describe('connections in sync integrations', () => {
  it('answers with the application, 502 when it fails, and 503 with Retry-After once the circuit opens', async () => {
    const app = await appServer((req, res) =>
      json(res, 200, { balance: 42, key: req.headers['idempotency-key'] }),
    );
    const bank = httpConnection('bank', {
      baseUrl: app.url,
      timeout: 300,
      circuit: { failures: 2, reprobeMs: 5_000 },
    });
    const balance = defineIntegration({
      id: 'check-balance',
      mode: 'sync',
      route: 'GET /balance',
      async handler(ctx) {
        return { body: await ctx.call(bank, 'GET', '/accounts/1') };
      },
    });
    const t = await testServer([balance], {}, { connections: [bank] });
    try {
      const ok = await t.request('/balance');
      expect(ok.status).toBe(200);
      expect(ok.json.balance).toBe(42);
      expect(ok.json.key).toMatch(/:call:0$/);
      await app.down();
      const first = await t.request('/balance');
      expect(first.status).toBe(502);
      expect(first.headers.get('content-type')).toMatch(/problem\+json/);
      const second = await t.request('/balance'); // the second failure opens the circuit
      expect(second.status).toBe(503);
      const third = await t.request('/balance');
      expect(third.status).toBe(503);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(app.seen).toHaveLength(1); // the open circuit sent nothing more to the application
      const metrics = (await t.request('/metrics')).text;
      expect(metrics).toContain(
        'tandem_connection_call_duration_seconds_count{connection="bank",status="200"} 1',
      );
      expect(metrics).toMatch(
        /tandem_connection_call_duration_seconds_count\{connection="bank",status="0"\} [12]\n/,
      );
      expect(metrics).toContain('tandem_connection_circuit_state{connection="bank"} 2');
    } finally {
      await t.close();
      await app.close();
    }
  });
});
