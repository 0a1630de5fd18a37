import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../src/connections/http.js';
import { defineIntegration } from '../src/define/integration.js';
import { createLogger, formatLine } from '../src/logging.js';
import { buildApp } from '../src/server/app.js';
import { appServer } from './support/app-server.js';
import { STORE_KINDS, testEngine, waitForStatus } from './support/engine.js';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

/** A pino destination that keeps every line, parsed. */
function capture() {
  const lines: Record<string, any>[] = [];
  return {
    lines,
    stream: {
      write(line: string) {
        lines.push(JSON.parse(line));
      },
    },
    find: (msg: string) => lines.filter((line) => line.msg === msg),
  };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

describe.each(STORE_KINDS)('log lines a person follows (%s)', (storeKind) => {
  it('a refused trigger request, a retry, a failure, a circuit opening and closing, a fired schedule', async () => {
    let healthy = false;
    const bank = await appServer((_request, response) => {
      if (healthy) response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      else response.writeHead(503).end('down');
    });
    closers.push(() => bank.close());
    const connection = httpConnection('bank', {
      baseUrl: bank.url,
      circuit: { failures: 2, reprobeMs: 300 },
    });
    const charge = defineIntegration({
      id: 'charge',
      mode: 'async',
      route: 'POST /charges',
      input: z.object({ amount: z.number() }),
      retry: { maxAttempts: 2, initialDelayMs: 20, jitter: 0 },
      handler: async (ctx) => {
        await ctx.step('call-bank', () => ctx.call(connection, 'POST', '/pay', { json: ctx.input }));
        return 'paid';
      },
    });
    const tick = defineIntegration({
      id: 'tick',
      mode: 'scheduled',
      cron: '* * * * * *',
      handler: () => 'ticked',
    });
    const log = capture();
    const logger = pino({ level: 'info' }, log.stream);
    const { engine, close } = await testEngine([charge, tick], {
      storeKind,
      logger,
      connections: [connection],
    });
    closers.push(close);
    const app = await buildApp({ engine, adminToken: null });
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;

    // Refused for bad input: nothing stored, one line with the integration and the problem code.
    const refused = await fetch(`${url}/charges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 'ten' }),
    });
    expect(refused.status).toBe(400);
    const [refusal] = log.find('trigger request refused');
    expect(refusal).toMatchObject({
      level: 30,
      integrationId: 'charge',
      code: 'invalid-input',
      status: 400,
      issues: [expect.objectContaining({ path: 'amount', in: 'body' })],
    });

    // Two attempts against a bank that answers 503: a retry, then the instance fails for good.
    const accepted = await fetch(`${url}/charges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 10 }),
    });
    expect(accepted.status).toBe(202);
    const { instanceId } = (await accepted.json()) as { instanceId: string };
    const failed = await waitForStatus(engine, instanceId);
    expect(failed.status).toBe('failed');
    await waitFor(() => log.find('instance failed').length > 0, 'the failure line');

    const [retry] = log.find('retry scheduled');
    expect(retry).toMatchObject({
      level: 30,
      integrationId: 'charge',
      instanceId,
      step: 'call-bank',
      attempt: 1,
      errorCode: 'http-error',
      error: expect.stringContaining('answered 503'),
    });
    // The next attempt's time is the one stored with the retry.
    const { events } = await engine.getDetail(instanceId);
    const scheduled = events.find((event) => event.type === 'retry.scheduled');
    expect(retry!.nextAttemptAt).toBe(new Date((scheduled!.data as { runAt: number }).runAt).toISOString());

    const [failure] = log.find('instance failed');
    expect(failure).toMatchObject({
      level: 50,
      integrationId: 'charge',
      instanceId,
      step: 'call-bank',
      attempt: 2,
      errorCode: 'http-error',
    });
    expect(log.find('instance failed')).toHaveLength(1);

    // The second failed call opened the circuit; once the bank is back, the probe closes it.
    const opened = log.find('circuit opened: calls fail at once until a probe succeeds');
    expect(opened).toEqual([expect.objectContaining({ level: 40, connectionId: 'bank' })]);
    expect(log.find('circuit closed: calls go through again')).toEqual([]);
    healthy = true;
    await new Promise((resolve) => setTimeout(resolve, 350));
    const again = await engine.accept('charge', { amount: 11 });
    expect((await waitForStatus(engine, again.instanceId)).status).toBe('succeeded');
    await waitFor(() => log.find('circuit closed: calls go through again').length === 1, 'the closed line');
    expect(log.find('circuit closed: calls go through again')[0]).toMatchObject({
      level: 30,
      connectionId: 'bank',
    });

    // The schedule fires every second.
    const fired = await waitFor(() => log.find('schedule fired')[0], 'a fired slot', 5_000);
    expect(fired).toMatchObject({ level: 30, integrationId: 'tick', instanceId: expect.any(String) });
    expect(fired.slotAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
  }, 30_000);
});

describe('log format and level', () => {
  it('pretty: one readable line per entry, with its fields and an error stack below', () => {
    const time = Date.parse('2026-12-06T07:08:09.010Z');
    const line = JSON.stringify({
      level: 40,
      time,
      pid: 1,
      hostname: 'h',
      msg: 'retry scheduled',
      integrationId: 'charge',
      attempt: 2,
      error: 'POST bank/pay answered 503',
    });
    expect(formatLine(`${line}\n`)).toBe(
      '07:08:09.010 WARN  retry scheduled integrationId=charge attempt=2 error="POST bank/pay answered 503"\n',
    );
    const withError = formatLine(
      JSON.stringify({
        level: 50,
        time,
        msg: 'failed',
        err: { message: 'boom', stack: 'Error: boom\n    at x' },
      }),
    );
    expect(withError).toBe('07:08:09.010 ERROR failed err=boom\n    Error: boom\n        at x\n');
    expect(formatLine('not json\n')).toBe('not json\n');
  });

  it('createLogger writes JSON or pretty lines at the level asked for, and refuses an unknown level', () => {
    const written: string[] = [];
    const destination = { write: (chunk: string) => void written.push(chunk) };
    const json = createLogger({ level: 'warn', destination });
    json.info('hidden');
    json.warn({ integrationId: 'a' }, 'shown');
    expect(written).toHaveLength(1);
    expect(JSON.parse(written[0]!)).toMatchObject({ level: 40, msg: 'shown', integrationId: 'a' });
    written.length = 0;
    const pretty = createLogger({ level: 'debug', format: 'pretty', destination });
    pretty.debug({ integrationId: 'a' }, 'shown');
    expect(written).toEqual([expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} DEBUG shown integrationId=a\n$/)]);
    expect(() => createLogger({ level: 'verbose' })).toThrow(
      'The level "verbose" is not a log level: use one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  it('tandem start --log-format pretty --log-level warn: readable lines, none below warn', async () => {
    const dir = tempDir('tandem-log-');
    closers.push(async () => dir.cleanup());
    writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
    const config = join(dir.path, 'tandem.config.ts');
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    writeFileSync(
      config,
      `import { defineConfig, defineIntegration } from ${JSON.stringify(index)};
export default defineConfig({
  store: 'sqlite:' + ${JSON.stringify(join(dir.path, 'tandem.db'))},
  integrations: [defineIntegration({ id: 'work', mode: 'async', route: 'POST /work', handler: () => 'done' })],
});
`,
    );
    const bin = fileURLToPath(new URL('../bin/tandem.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        bin,
        'start',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--config',
        config,
        '--log-format',
        'pretty',
        '--log-level',
        'warn',
      ],
      {
        env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_ADMIN_TOKEN: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    closers.push(async () => void (child.exitCode === null && child.kill('SIGKILL')));
    let stdout = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => stdout.includes('Tandem listening on'), 'the CLI to listen', 30_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = stdout.split('\n').filter((line) => line !== '');
    expect(lines.filter((line) => line.startsWith('{'))).toEqual([]);
    expect(lines).toContainEqual(expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}.+ component=http$/));
    expect(lines.filter((line) => / (INFO|DEBUG) /.test(line))).toEqual([]);
  }, 60_000);
});
