import './support/provided.js';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { parseStartArgs } from '../src/cli/start.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { spawnCli } from './support/cli.js';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';
import { readEffects } from './support/worker-process.js';

const INDEX = fileURLToPath(new URL('../src/index.ts', import.meta.url));

const running: ChildProcess[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** `tandem start` as a child process, with its output and its first line that names a URL. */
function launch(args: string[], env: Record<string, string>) {
  const { child, output, exited } = spawnCli(['start', '--host', '127.0.0.1', ...args], running, {
    TANDEM_ADMIN_TOKEN: '',
    ...env,
  });
  const url = waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`tandem start exited: ${output.stderr}`);
      return /(?:listening on|metrics on) (http:\/\/127\.0\.0\.1:\d+)/.exec(output.stdout)?.[1];
    },
    'tandem start to listen',
    60_000,
  );
  /** The process's JSON log lines with this message. */
  const logged = (msg: string) =>
    output.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === msg);
  return { child, pid: child.pid!, output, exited, url, logged };
}

describe('tandem start --role', () => {
  it('on PostgreSQL: one api and two workers; accepts through the api, work done by the workers, nothing lost when a worker is SIGKILLed', async () => {
    const dir = tempDir('tandem-roles-');
    cleanups.push(dir.cleanup);
    writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
    const effects = join(dir.path, 'effects.log');
    const config = join(dir.path, 'tandem.config.ts');
    // Each step records "<instance> <step> <pid>" before it works for 300 ms.
    writeFileSync(
      config,
      `import { appendFileSync } from 'node:fs';
import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
const effect = (id, step) => appendFileSync(${JSON.stringify(effects)}, id + ' ' + step + ' ' + process.pid + '\\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const work = defineIntegration({
  id: 'work',
  mode: 'async',
  route: 'POST /work',
  handler: async (ctx) => {
    await ctx.step('one', async () => { effect(ctx.instanceId, 'one'); await sleep(300); });
    await ctx.step('two', async () => { effect(ctx.instanceId, 'two'); await sleep(300); });
    return { pid: process.pid };
  },
});
const tick = defineIntegration({ id: 'tick', mode: 'scheduled', cron: '* * * * * *', handler: () => ({ pid: process.pid }) });
export default defineConfig({ integrations: [work, tick], leaseMs: 2000, pollIntervalMs: 200, concurrency: 4 });
`,
    );
    const schema = `roles_${process.pid}`;
    const env = { TANDEM_STORE_URL: `${inject('postgresUrl')}?schema=${schema}` };
    const api = launch(['--role', 'api', '--port', '0', '--config', config], env);
    // The api migrates the schema first; then the workers start beside it.
    const apiUrl = await api.url;
    const workers = [0, 1].map(() =>
      launch(['--config', config, '--health-port', '0'], { ...env, TANDEM_ROLE: 'worker' }),
    );
    const [urlA, urlB] = await Promise.all(workers.map((w) => w.url));
    const [a, b] = workers as [(typeof workers)[0], (typeof workers)[0]];
    const store = await PostgresStore.open({ url: inject('postgresUrl'), schema });
    cleanups.push(() => store.close());

    // A worker serves health and metrics only.
    const health = await fetch(`${urlA}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const metrics = await fetch(`${urlB}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('tandem_attempts_running');
    for (const [method, path] of [
      ['POST', '/work'],
      ['GET', '/api/instances'],
      ['GET', '/console/'],
    ] as const) {
      const refused = await fetch(`${urlA}${path}`, { method });
      expect(refused.status).toBe(404);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
    }
    expect((await fetch(`${apiUrl}/healthz`)).status).toBe(200);

    const ids: string[] = [];
    for (let n = 0; n < 30; n++) {
      const response = await fetch(`${apiUrl}/work`, {
        method: 'POST',
        headers: { 'idempotency-key': `order-${n}` },
      });
      expect(response.status).toBe(202);
      ids.push(((await response.json()) as { instanceId: string }).instanceId);
    }

    // Kill worker A while it is inside a step: that instance must be finished by B.
    const interrupted = await waitFor(
      () => {
        const lines = readEffects(effects).map((line) => line.split(' '));
        const done = new Set(lines.filter(([, step]) => step === 'two').map(([id]) => id));
        return lines.find(
          ([id, step, pid]) => step === 'one' && pid === String(a.pid) && !done.has(id!),
        )?.[0];
      },
      'worker A to be inside a step',
      60_000,
    );
    a.child.kill('SIGKILL');
    await a.exited;

    await waitFor(
      async () => (await store.countInstances({ ids, status: 'succeeded' })) === ids.length,
      'every instance to succeed',
      120_000,
    );
    const ran = new Map<string, number>();
    for (const id of ids) {
      const instance = await store.getInstance(id);
      ran.set(id, (instance!.output as { pid: number }).pid);
    }
    for (const pid of ran.values()) expect([a.pid, b.pid]).toContain(pid);
    expect(ran.get(interrupted)).toBe(b.pid);
    // The api ran no step, started no attempt and fired no cron slot; the workers did.
    const lines = readEffects(effects).map((line) => line.split(' '));
    expect(lines.filter(([, , pid]) => pid === String(api.pid))).toEqual([]);
    for (const id of ids) expect(lines.some(([i, step]) => i === id && step === 'two')).toBe(true);
    const apiMetrics = await (await fetch(`${apiUrl}/metrics`)).text();
    expect(apiMetrics).not.toMatch(/^tandem_attempts_started_total\{/m);
    expect(apiMetrics).toMatch(/^tandem_instances_accepted_total\{integration="work",mode="async"\} 30$/m);
    expect(api.logged('schedule fired')).toEqual([]);
    expect(a.logged('schedule fired').length + b.logged('schedule fired').length).toBeGreaterThan(0);
    const ticks = await store.listInstances({ integrationId: 'tick', status: 'succeeded', limit: 50 });
    expect(ticks.items.length).toBeGreaterThan(0);
    for (const tick of ticks.items) expect([a.pid, b.pid]).toContain((tick.output as { pid: number }).pid);

    api.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect(await Promise.all([api.exited, b.exited])).toEqual([0, 0]);
  }, 240_000);

  it('reads the role, ports and log settings from flags over the environment, and refuses wrong ones', () => {
    expect(parseStartArgs(['--role', 'worker', '--health-port', '9464'], {})).toMatchObject({
      role: 'worker',
      healthPort: 9464,
      port: 3000,
      logLevel: 'info',
      logFormat: 'json',
    });
    expect(
      parseStartArgs(['--log-level', 'debug'], {
        TANDEM_ROLE: 'api',
        TANDEM_LOG_LEVEL: 'warn',
        TANDEM_LOG_FORMAT: 'pretty',
        TANDEM_HEALTH_PORT: '9464',
      }),
    ).toEqual({ port: 3000, host: '0.0.0.0', role: 'api', logLevel: 'debug', logFormat: 'pretty' });
    expect(parseStartArgs([], { TANDEM_ROLE: 'worker', TANDEM_HEALTH_PORT: '9464' }).healthPort).toBe(9464);
    expect(() => parseStartArgs(['--role', 'scheduler'], {})).toThrow(
      '--role scheduler is not a role: use all, api or worker',
    );
    expect(() => parseStartArgs(['--health-port', '9464'], {})).toThrow(
      '--health-port is for --role worker: with --role all, /healthz and /metrics answer on --port',
    );
    expect(() => parseStartArgs(['--log-level', 'loud'], {})).toThrow(
      '--log-level "loud" is not a log level',
    );
    expect(() => parseStartArgs(['--log-format', 'xml'], {})).toThrow(
      '--log-format "xml" is not a log format',
    );
  });
});
