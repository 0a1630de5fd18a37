/**
 * No stale docs: every shell command in README.md and docs/*.md is run against a freshly started
 * demo (`npm start`), or is on a short list of commands covered elsewhere, each with its reason.
 *
 * Each ```sh block runs as one bash script (`set -euo pipefail`, so shell variables carry from one
 * line to the next), with `localhost:3000` replaced by the demo's port and `localhost:4000` by its
 * applications' directory. `curl` fails on a status other than 2xx unless the line's comment names
 * the status (`# → 404`); `curl -N` (a stream) is cut after 2 s. The applications' ports
 * (`localhost:4001`–`4011`) are mapped to where this demo put them. `npx tandem` runs as typed (npm finds
 * this package's own bin); a bare `tandem` runs this checkout's bin/tandem.js. What the docs say a
 * command prints (`# succeeded`, a NEXT ATTEMPT column, each order once) is checked against its
 * output (PRINTS).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_NAMES, type AppName } from '../examples/retail/apps.js';
import { type Demo, root, startDemo } from './support/demo.js';

// docs/getting-started.md works in a new project of its own: test/adoption.test.ts runs it.
const DOCS = ['README.md', ...readdirSync(join(root, 'docs')).map((f) => `docs/${f}`)].filter(
  (f) => f.endsWith('.md') && f !== 'docs/getting-started.md',
);
const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts as Record<
  string,
  string
>;

/** Commands not run here, and why; every entry must match a documented command. */
const COVERED: { pattern: RegExp; reason: string }[] = [
  { pattern: /^npm ci$/, reason: 'installs the dependencies: the first command of CI (.ci/run)' },
  { pattern: /^npm start$/, reason: 'this test and test/demo.test.ts start the demo with it' },
  { pattern: /^npm test$/, reason: 'what CI runs (.ci/run); this test is part of it' },
  {
    pattern: /^npm run demo:traffic\b/,
    reason: 'a minute by default; test/demo.test.ts runs it with a 2 s outage',
  },
  { pattern: /^npm run bench:/, reason: 'benchmarks take minutes; bench/README.md has their results' },
  {
    pattern: /\bnpx vitest run test\/reliability\b/,
    reason: 'the reliability suites themselves, minutes long; npm test runs them',
  },
  {
    pattern: /\btandem (start|dev)\b/,
    reason: 'long-running; test/cli.test.ts and test/cli-dev.test.ts run them in child processes',
  },
  {
    pattern: /^(?:sqlite3 \S+ "\.backup |pg_dump --format=custom )/,
    reason: 'backups of a production store; test/deploy-backup.test.ts runs both while an engine writes',
  },
];

interface Command {
  file: string;
  line: string;
  comment: string;
}

/** The ```sh / ```bash blocks of a file, as commands (continuation lines joined, comments split off). */
function blocksOf(file: string): Command[][] {
  const text = readFileSync(join(root, file), 'utf8');
  const blocks: Command[][] = [];
  for (const match of text.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```$/gm)) {
    const commands: Command[] = [];
    for (const raw of match[1]!.replace(/\\\n\s*/g, ' ').split('\n')) {
      const { code, comment } = splitComment(raw);
      if (code.trim() !== '') commands.push({ file, line: code.trim(), comment });
    }
    blocks.push(commands);
  }
  return blocks;
}

/** Splits `code # comment` at the first `#` outside quotes that starts a word. */
function splitComment(line: string): { code: string; comment: string } {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quote) {
      if (char === quote) quote = null;
    } else if (char === "'" || char === '"') quote = char;
    else if (char === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return { code: line.slice(0, i), comment: line.slice(i + 1).trim() };
    }
  }
  return { code: line, comment: '' };
}

const coveredBy = (line: string) => COVERED.find((c) => c.pattern.test(line));

/** A table row of `tandem instances ls` output, by column name (the header's). */
function rows(out: string): Record<string, string>[] {
  const [header, ...lines] = out.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('(more'));
  if (!header) return [];
  const columns = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], at: m.index }));
  return lines.map((line) =>
    Object.fromEntries(
      columns.map((c, i) => [c.name, line.slice(c.at, columns[i + 1]?.at ?? undefined).trim()]),
    ),
  );
}

/**
 * What the docs say a command prints (in its comment or the text around it), checked against
 * what it printed. Every entry must match a documented command of its file.
 */
const PRINTS: { file: string; command: RegExp; says: string; check: (out: string) => void }[] = [
  {
    file: 'README.md',
    command: /^curl localhost:3000\/accounts\/ACC-1\/balance$/,
    says: 'the bank answers',
    check: (out) => expect(JSON.parse(out)).toMatchObject({ account: 'ACC-1', balance: 1234.56 }),
  },
  {
    file: 'README.md',
    command: /instances ls --integration fulfil-order --status retrying/,
    says: 'A-1002 retrying, with its NEXT ATTEMPT',
    check: (out) => {
      expect(out.split('\n')[0]).toMatch(/ NEXT ATTEMPT$/);
      expect(rows(out).find((r) => r.TRACKING!.includes('A-1002'))).toMatchObject({
        STATUS: 'retrying',
        'NEXT ATTEMPT': expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((in \d+ (s|min)|due)\)$/),
      });
    },
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --integration fulfil-order --tracking D-1001 --status waiting$/,
    says: 'D-1001 waiting for the warehouse',
    check: (out) => expect(rows(out)).toEqual([expect.objectContaining({ STATUS: 'waiting' })]),
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --integration fulfil-order --tracking D-1001$/,
    says: 'succeeded',
    check: (out) => expect(rows(out)).toEqual([expect.objectContaining({ STATUS: 'succeeded' })]),
  },
  {
    file: 'docs/demo.md',
    command: /^curl localhost:4005\/shipments$/,
    says: "D-1001's tracking number; its callback was answered 202",
    check: (out) =>
      expect(JSON.parse(out)['D-1001']).toMatchObject({
        trackingNumber: expect.stringMatching(/^1Z\d+$/),
        callbackStatus: 202,
      }),
  },
  {
    file: 'docs/demo.md',
    command: /^curl localhost:4003\/notifications$/,
    says: 'the shipping notice to ann@example.com, with that tracking number',
    check: (out) =>
      expect(JSON.parse(out)['D-1001']).toEqual([
        {
          orderId: 'D-1001',
          email: 'ann@example.com',
          kind: 'shipped',
          trackingNumber: expect.stringMatching(/^1Z\d+$/),
        },
      ]),
  },
  {
    file: 'docs/demo.md',
    command: /^curl localhost:4005\/packing-lists$/,
    says: 'one packing list per order',
    check: (out) => {
      const lists = JSON.parse(out) as Record<string, number>;
      expect(lists['D-1001']).toBe(1);
      expect(Object.values(lists).every((n) => n === 1)).toBe(true);
    },
  },
  {
    file: 'docs/demo.md',
    command: /^npx tandem demo status$/,
    says: 'inventory: down',
    check: (out) => expect(rows(out).find((r) => r.NAME === 'inventory')).toMatchObject({ STATE: 'down' }),
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --integration fulfil-order --status retrying/,
    says: 'D-1002 retrying, with its NEXT ATTEMPT',
    check: (out) => {
      expect(out.split('\n')[0]).toMatch(/ NEXT ATTEMPT$/);
      const row = rows(out).find((r) => r.TRACKING!.includes('D-1002'));
      expect(row).toMatchObject({
        STATUS: 'retrying',
        'NEXT ATTEMPT': expect.stringMatching(/\((in .+|due)\)$/),
      });
    },
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --tracking E-42$/,
    says: 'both succeeded',
    check: (out) => {
      const found = rows(out).map((r) => [r.INTEGRATIONID, r.STATUS]);
      expect(found.sort()).toEqual([
        ['attach-document', 'succeeded'],
        ['onboard-employee', 'succeeded'],
      ]);
    },
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --integration attach-document-by-event --tracking E-77$/,
    says: 'waiting',
    check: (out) => expect(rows(out)).toEqual([expect.objectContaining({ STATUS: 'waiting' })]),
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --tracking E-77$/,
    says: 'both succeeded',
    check: (out) => {
      const found = rows(out).map((r) => [r.INTEGRATIONID, r.STATUS]);
      expect(found.sort()).toEqual([
        ['attach-document-by-event', 'succeeded'],
        ['onboard-employee', 'succeeded'],
      ]);
    },
  },
  {
    file: 'README.md',
    command: /^curl -X POST localhost:3000\/api\/events /,
    says: 'resumes every wait it fits',
    check: (out) => expect(JSON.parse(out)).toEqual({ eventId: 'hr-4711', duplicate: false, resumed: [] }),
  },
  {
    file: 'docs/demo.md',
    command: /instances ls --integration nightly-orders$/,
    says: 'one instance, succeeded (README has not run it before)',
    check: (out) => expect(rows(out)).toEqual([expect.objectContaining({ STATUS: 'succeeded' })]),
  },
  {
    file: 'docs/demo.md',
    command: /^curl localhost:4011\/orders$/,
    says: 'the six good orders, each once',
    check: (out) => {
      const orders = JSON.parse(out) as Record<string, { count: number }>;
      expect(Object.keys(orders)).toHaveLength(6);
      for (const [id, order] of Object.entries(orders)) expect(order.count, id).toBe(1);
    },
  },
  {
    file: 'docs/cli.md',
    command: /tandem decide --immediate yes --seconds no --rerun yes/,
    says: 'sync → async',
    check: (out) => expect(out.split('\n')[0]).toBe('sync-to-async'),
  },
];

const PRELUDE = `
set -euo pipefail
curl() {
  local out status code=0 max=5 stream=0
  for arg in "$@"; do [ "$arg" = -N ] && stream=1 && max=2; done
  out=$(mktemp)
  status=$(command curl -sS --max-time "$max" -o "$out" -w '%{http_code}' "$@") || code=$?
  cat "$out"; echo; rm -f "$out"
  if [ "$stream" = 1 ] && [ "$code" = 28 ]; then return 0; fi
  if [ "$code" != 0 ]; then echo "curl exited with $code" >&2; return 1; fi
  case "$EXPECT" in
    2xx) [[ "$status" == 2* ]] ;;
    *) [ "$status" = "$EXPECT" ] ;;
  esac || { echo "expected HTTP $EXPECT, got $status" >&2; return 1; }
}
tandem() { node "$TANDEM_BIN" "$@"; }
`;

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

/** Each command's output is announced on stdout by this line, to tell them apart. */
const MARK = '@@@ command';

/** Splits a block's stdout into each command's output. */
function outputsOf(stdout: string): string[] {
  return stdout
    .split(`${MARK}\n`)
    .slice(1)
    .map((out) => out.trim());
}

function scriptOf(block: Command[], demo: Demo): string {
  const lines = block.map(({ line, comment }) => {
    const show = `echo ${shellQuote(`$ ${line}`)} >&2; echo '${MARK}'`;
    if (coveredBy(line)) return `${show}; : covered elsewhere`;
    const expect = /→ (\d{3})\b/.exec(comment)?.[1] ?? '2xx';
    const port = (text: string) =>
      text
        .replace(/(?:localhost|127\.0\.0\.1):3000\b/g, demo.base.replace('http://', ''))
        .replace(/(?:localhost|127\.0\.0\.1):4000\b/g, demo.directory.replace('http://', ''))
        .replace(/(?:localhost|127\.0\.0\.1):(40(?:0[1-9]|1\d))\b/g, (_, n: string) => {
          return `127.0.0.1:${demo.appsPort + Number(n) - 4001}`;
        });
    return `${show}; EXPECT=${expect}; ${port(line)}`;
  });
  return `${PRELUDE}\n${lines.join('\n')}\n`;
}

let demo: Demo;
beforeAll(async () => {
  demo = await startDemo();
}, 90_000);
afterAll(async () => {
  await demo?.stop();
});

describe('every command in README.md and docs/', () => {
  const all = DOCS.flatMap((file) => blocksOf(file).map((block, i) => ({ file, i, block })));

  it('finds the commands, and each covered one is a real script and still documented', () => {
    expect(all.length).toBeGreaterThan(5);
    const lines = all.flatMap(({ block }) => block.map((c) => c.line));
    for (const { pattern, reason } of COVERED) {
      expect(
        lines.some((l) => pattern.test(l)),
        `allow-list entry ${pattern} (${reason}) matches no documented command`,
      ).toBe(true);
    }
    for (const line of lines) {
      const script = /^npm (?:run ([\w:-]+)|(start|test))\b/.exec(line);
      if (script) expect(scripts, line).toHaveProperty(script[1] ?? script[2]!);
    }
    for (const { file, command, says } of PRINTS) {
      const documented = all.filter((b) => b.file === file).flatMap(({ block }) => block);
      expect(
        documented.some((c) => command.test(c.line)),
        `${file}: no documented command matches ${command} ("${says}")`,
      ).toBe(true);
    }
  });

  it("README's scheduled example is the demo's: the same cron and time zone", async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const snippet = readme.slice(readme.indexOf("id: 'nightly-orders'"));
    const { retail } = await import('../examples/retail/integrations.js');
    const demoApps = Object.fromEntries(APP_NAMES.map((name) => [name, 'http://127.0.0.1:1'])) as Record<
      AppName,
      string
    >;
    const { integrations, connections } = retail({ urls: demoApps, inbox: '/inbox' });
    try {
      const nightly = integrations.find((i) => i.id === 'nightly-orders') as {
        cron: string;
        timezone: string;
      };
      expect(/cron: '([^']+)'/.exec(snippet)?.[1]).toBe(nightly.cron);
      expect(/timezone: '([^']+)'/.exec(snippet)?.[1]).toBe(nightly.timezone);
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  it('says where the applications and their directory listen, as the demo puts them', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toMatch(/applications on :4001–4011 \(their directory on :4000\)/);
    // The same layout from any base: the first application on it, the last ten above, the directory below.
    const { startApps } = await import('../examples/retail/apps.js');
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const started = await startApps(base);
    try {
      const port = (url: string) => Number(new URL(url).port);
      expect(port(started.apps.bank.url)).toBe(base);
      expect(port(started.apps['order-processing'].url)).toBe(base + 10);
      expect(port(started.directory.url)).toBe(base - 1);
    } finally {
      await started.close();
    }
  });

  for (const { file, i, block } of all) {
    if (block.every((c) => coveredBy(c.line))) continue;
    it(`${file}, block ${i + 1}: ${block[0]!.line.slice(0, 60)}`, async () => {
      const script = scriptOf(block, demo);
      const result = await promisify(execFile)('bash', ['-c', script], {
        cwd: root,
        env: {
          ...process.env,
          // test/built-package.test.ts runs this file again against dist/ with TANDEM_CLI_SOURCE=0.
          TANDEM_CLI_SOURCE: process.env.TANDEM_CLI_SOURCE === '0' ? '0' : '1',
          TANDEM_BIN: join(root, 'bin/tandem.js'),
          TANDEM_URL: demo.base,
          DEMO_APPS_URL: demo.directory,
        },
        timeout: 150_000,
      }).catch((error: { stdout: string; stderr: string; code: number }) => {
        throw new Error(
          `${file} block ${i + 1} failed (exit ${error.code}):\n${error.stderr}\n${error.stdout}`,
        );
      });
      expect(result.stderr).not.toMatch(/command not found/);
      // What the docs say these commands print.
      const outputs = outputsOf(result.stdout);
      expect(outputs).toHaveLength(block.length);
      block.forEach((command, index) => {
        for (const print of PRINTS) {
          if (print.file !== file || !print.command.test(command.line)) continue;
          try {
            print.check(outputs[index]!);
          } catch (error) {
            throw new Error(
              `${file}: \`${command.line}\` does not print what the docs say ("${print.says}"):\n${outputs[index]}\n${(error as Error).message}`,
            );
          }
        }
      });
    }, 160_000);
  }
});
