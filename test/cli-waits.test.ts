/**
 * The CLI against a live server with waiting instances: `tandem events send` resumes them (and
 * says so, once per event id), and `tandem instances ls`/`show` show the status `waiting` with the
 * wake-up time ("no timeout" for a wait only an event ends), the waits and the version.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../src/define/integration.js';
import { waitForStatus } from './support/engine.js';
import { testServer } from './support/server.js';

const exec = promisify(execFile);
const bin = join(import.meta.dirname, '../bin/tandem.js');
const TOKEN = 'cli-waits-secret';
const env = { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_ADMIN_TOKEN: TOKEN };
const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  exec(process.execPath, [bin, ...args], { env: { ...env, ...extra } });
const failure = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  cli(args, extra).then(
    () => {
      throw new Error(`tandem ${args.join(' ')} succeeded`);
    },
    (error: { code: number; stdout: string; stderr: string }) => error,
  );

const waiter = defineIntegration({
  id: 'waiter',
  mode: 'async',
  version: '3',
  input: z.object({ k: z.string() }),
  track: { k: 'k' },
  async handler(ctx) {
    return ctx.waitForEvent('w', { event: 'e', match: { k: ctx.input.k } });
  },
});
const napper = defineIntegration({
  id: 'napper',
  mode: 'async',
  async handler(ctx) {
    await ctx.sleep('nap', '3h');
    return 'rested';
  },
});

/** The rows of a printed table, by column (the header's names). */
function rows(out: string): Record<string, string>[] {
  const [header, ...lines] = out.split('\n').filter((l) => l.trim() !== '');
  const columns = [...header!.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], at: m.index }));
  return lines.map((line) =>
    Object.fromEntries(
      columns.map((c, i) => [c.name, line.slice(c.at, columns[i + 1]?.at ?? undefined).trim()]),
    ),
  );
}

describe('CLI and durable waits', () => {
  it('shows waiting instances with their wake-up time and version, and sends events to them', async () => {
    const t = await testServer([waiter, napper], { adminToken: TOKEN });
    try {
      const url = ['--url', t.url];
      const a = await t.engine.accept('waiter', { k: 'A' });
      const nap = await t.engine.accept('napper', {});
      await waitForStatus(t.engine, a.instanceId, ['waiting']);
      await waitForStatus(t.engine, nap.instanceId, ['waiting']);

      const ls = await cli(['instances', 'ls', '--status', 'waiting', ...url]);
      expect(ls.stdout.split('\n')[0]).toMatch(/ VERSION .* NEXT ATTEMPT$/);
      const listed = rows(ls.stdout);
      expect(listed.find((r) => r.ID === a.instanceId)).toMatchObject({
        STATUS: 'waiting',
        VERSION: '3',
        'NEXT ATTEMPT': 'no timeout',
      });
      expect(listed.find((r) => r.ID === nap.instanceId)).toMatchObject({
        STATUS: 'waiting',
        VERSION: '',
        'NEXT ATTEMPT': expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in 3 h\)$/),
      });

      const show = await cli(['instances', 'show', a.instanceId, ...url]);
      expect(show.stdout).toMatch(
        new RegExp(`^waiter ${a.instanceId}: waiting \\(run 1, attempt \\d, version 3\\)\n`),
      );
      expect(show.stdout).toContain('waiting until: no timeout');
      const waitsTable = show.stdout
        .split('\n')
        .findIndex((l) => /^RUN +NAME +FOR +UNTIL +RESOLVED$/.test(l));
      expect(waitsTable).toBeGreaterThan(0);
      expect(show.stdout.split('\n')[waitsTable + 1]).toMatch(
        /^1 +w +event e \{"k":"A"\} +no timeout +waiting$/,
      );

      const sent = await cli([
        'events',
        'send',
        'e',
        '--payload',
        '{"k":"A","ok":true}',
        '--id',
        'evt-9',
        ...url,
      ]);
      expect(sent.stdout).toBe(`event evt-9: stored, resumed 1 instance\n  ${a.instanceId}\n`);
      expect(await waitForStatus(t.engine, a.instanceId)).toMatchObject({
        status: 'succeeded',
        output: { k: 'A', ok: true },
      });
      const again = await cli([
        'events',
        'send',
        'e',
        '--payload',
        '{"k":"A"}',
        '--id',
        'evt-9',
        '--json',
        ...url,
      ]);
      expect(JSON.parse(again.stdout)).toEqual({ eventId: 'evt-9', duplicate: true, resumed: [] });
      const done = await cli(['instances', 'show', a.instanceId, ...url]);
      expect(done.stdout).toMatch(
        /\n1 +w +event e \{"k":"A"\} +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d by event evt-9\n/,
      );

      // Wrong use: a usage error before any request; a refusal of the server: its problem.
      const noName = await failure(['events', 'send', ...url]);
      expect(noName.code).toBe(2);
      const badPayload = await failure(['events', 'send', 'e', '--payload', '{k:1}', ...url]);
      expect(badPayload.code).toBe(2);
      expect(badPayload.stderr).toContain('--payload is not valid JSON');
      const refused = await failure(['events', 'send', 'x'.repeat(201), ...url]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^tandem events: 400 /);
      const unauthenticated = await failure(['events', 'send', 'e', ...url], { TANDEM_ADMIN_TOKEN: '' });
      expect(unauthenticated.code).toBe(1);
      expect(unauthenticated.stderr).toMatch(/401 .*set TANDEM_ADMIN_TOKEN/);
      expect((await t.engine.getInstance(nap.instanceId)).status).toBe('waiting');
    } finally {
      await t.close();
    }
  }, 120_000);
});
