/**
 * CLI commands that read and change state through a running server's management API
 * (`--url`, default http://127.0.0.1:3000; the admin token from TANDEM_ADMIN_TOKEN): tables for
 * people, `--json` for scripts.
 */
import { createInterface } from 'node:readline';
import { decide } from '../advisor/decide.js';
import { DUE, isFinal, NEVER } from '../lifecycle/statuses.js';
import { isUnreachable, UnreachableError, UsageError } from './exit.js';
import { childrenText, runFigures, runLines, whyText } from './timeline-text.js';

export interface RemoteOptions {
  url: string;
  token?: string | undefined;
  json: boolean;
  out?: NodeJS.WritableStream;
  /** Progress and notices. Default stderr. */
  err?: NodeJS.WritableStream;
}

/** A refusal by the server: its status and problem document. */
class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly problem: { type?: string; title?: string; detail?: string } | null,
  ) {
    super(message);
  }
}

async function api(options: RemoteOptions, method: string, path: string, body?: unknown): Promise<any> {
  let response: Response;
  try {
    response = await fetch(new URL(path, options.url), {
      method,
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    if (isUnreachable(error)) {
      throw new UnreachableError(
        `no Tandem server at ${options.url}: start one with \`tandem start\`, or set TANDEM_URL (or --url) to where it runs`,
      );
    }
    throw error;
  }
  const text = await response.text();
  let parsed: any = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not ours: something else answers at this URL.
    throw new Error(`${options.url} answered ${response.status} with no JSON: is it a Tandem server?`);
  }
  if (!response.ok) {
    let message =
      `${response.status} ${parsed?.title ?? ''}${parsed?.detail ? `: ${parsed.detail}` : ''}`.trim();
    if (response.status === 401) {
      message += options.token
        ? ' (TANDEM_ADMIN_TOKEN is set, but the server does not accept it: use its admin token)'
        : ' (set TANDEM_ADMIN_TOKEN to the admin token the server was started with)';
    }
    throw new ApiError(message, response.status, parsed);
  }
  return parsed;
}

/** A plain text table: columns padded to their widest cell. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((row) =>
    columns.map((c) => (row[c] === null || row[c] === undefined ? '' : String(row[c]))),
  );
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

const time = (ms: number | null) =>
  ms === null ? '' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/**
 * When an instance that waits runs next (queued, retrying, or `waiting` for time, an event or a
 * callback: its wake-up time): the time and how far off it is, "due", or "no timeout" for a wait
 * that only an event or a callback ends.
 */
function nextAttempt(instance: { status: string; runAt: number }, now = Date.now()): string {
  if (!(DUE as readonly string[]).includes(instance.status)) return '';
  return wakeUp(instance.runAt, now);
}

/** A wake-up time as the CLI shows it: `2026-12-06 14:00:00 (in 2 h)`, `(due)`, or `no timeout`. */
function wakeUp(at: number | null, now = Date.now()): string {
  if (at === null || at >= NEVER) return 'no timeout';
  const seconds = Math.round((at - now) / 1000);
  if (seconds <= 0) return `${time(at)} (due)`;
  const wait =
    seconds < 120
      ? `${seconds} s`
      : seconds < 7_200
        ? `${Math.round(seconds / 60)} min`
        : seconds < 172_800
          ? `${Math.round(seconds / 3_600)} h`
          : `${Math.round(seconds / 86_400)} d`;
  return `${time(at)} (in ${wait})`;
}

/** What a wait waits for, in words: `event employee.created {"employeeId":"E-7"}`, `callback`, `time`. */
function waitsFor(wait: { kind: string; event: string | null; match: unknown }): string {
  if (wait.kind === 'event') {
    const match = wait.match && Object.keys(wait.match).length > 0 ? ` ${JSON.stringify(wait.match)}` : '';
    return `event ${wait.event}${match}`;
  }
  return wait.kind === 'sleep' ? 'time' : wait.kind;
}

/** "1 instance", "2 instances". */
const count = (n: number, noun: string) => `${n.toLocaleString('en')} ${noun}${n === 1 ? '' : 's'}`;

/** Why a rerun or cancel was refused, in words: a sync instance is never rerun. */
async function refusal(options: RemoteOptions, id: string, action: 'rerun' | 'cancel', error: unknown) {
  if (!(error instanceof ApiError) || error.status !== 409) return error;
  const instance = await api(options, 'GET', `/api/instances/${encodeURIComponent(id)}`)
    .then((detail) => detail.instance as { mode: string; integrationId: string; status: string })
    .catch(() => null);
  if (instance?.mode === 'sync') {
    return new Error(
      action === 'rerun'
        ? `${id} is a sync instance of ${instance.integrationId}: sync instances are never rerun (their caller had the answer, or the fault, at the time); call the route again instead`
        : `${id} is a sync instance of ${instance.integrationId} (${instance.status}): it ended with its request, so there is nothing to cancel`,
    );
  }
  return error;
}

export async function instancesCommand(
  sub: string,
  args: string[],
  filters: Record<string, string | undefined>,
  options: RemoteOptions,
): Promise<number> {
  const out = options.out ?? process.stdout;
  const print = (value: unknown, text: () => string) =>
    out.write(`${options.json ? JSON.stringify(value, null, 2) : text()}\n`);
  if (sub === 'ls') {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      // `from` is where a rerun starts and `note` goes with an acknowledgement: not list filters.
      if (value !== undefined && key !== 'from' && key !== 'note') query.set(key, value);
    }
    const page = await api(options, 'GET', `/api/instances?${query}`);
    print(
      page,
      () =>
        table(
          page.items.map((i: any) => ({
            ...i,
            created: time(i.createdAt),
            tracking: Object.values(i.tracking ?? {}).join(','),
            'next attempt': nextAttempt(i),
          })),
          [
            'id',
            'integrationId',
            'status',
            'run',
            'attempt',
            'version',
            'tracking',
            'created',
            'next attempt',
          ],
        ) + (page.nextCursor ? `\n(more: --cursor ${page.nextCursor})` : ''),
    );
    return 0;
  }
  const id = args[0];
  if (sub === 'rerun' && !id) return bulkRerun(filters, options);
  if (!['show', 'rerun', 'cancel', 'ack', 'unack'].includes(sub))
    throw new UsageError(`unknown subcommand "instances ${sub}": use ls, show, rerun, cancel, ack or unack`);
  if (!id) throw new UsageError(`tandem instances ${sub} needs an instance id`);
  if (sub === 'show') {
    const detail = await api(options, 'GET', `/api/instances/${encodeURIComponent(id)}`);
    print(detail, () => {
      const i = detail.instance;
      const current = (detail.timeline?.runs ?? []).find((r: any) => r.run === i.run);
      const waits = detail.waits ?? [];
      const head = [
        `${i.integrationId} ${i.id}: ${i.status} (run ${i.run}, attempt ${i.attempt}${i.version === null || i.version === undefined ? '' : `, version ${i.version}`})`,
        i.status === 'waiting' ? `waiting until: ${wakeUp(i.runAt)}` : '',
        detail.waitingFor
          ? `${detail.waitingFor.kind === 'running' ? 'now' : 'waiting for'}: ${whyText(detail.waitingFor)}`
          : '',
        detail.children ? `children: ${childrenText(detail.children)}` : '',
        i.error ? `error: ${i.error.message}` : '',
        `input: ${JSON.stringify(i.input)}`,
        `output: ${JSON.stringify(i.output)}`,
      ].filter((line) => line !== '');
      return [
        ...head,
        ...(current ? ['', ...runFigures(current), ...runLines(current)] : []),
        ...(waits.length === 0
          ? []
          : [
              '',
              table(
                waits.map((w: any) => ({
                  ...w,
                  for: waitsFor(w),
                  until: w.resolvedAt === null ? wakeUp(w.until) : time(w.until),
                  resolved:
                    w.resolvedAt === null
                      ? 'waiting'
                      : `${time(w.resolvedAt)} by ${w.resolution}${w.eventId ? ` ${w.eventId}` : ''}`,
                })),
                ['run', 'name', 'for', 'until', 'resolved'],
              ),
            ]),
        '',
        table(
          detail.events.map((e: any) => ({
            ...e,
            at: time(e.at),
            data: JSON.stringify(e.data).slice(0, 80),
          })),
          ['at', 'type', 'data'],
        ),
      ].join('\n');
    });
    return 0;
  }
  if (sub === 'rerun') {
    const from = filters.from ?? 'failed-step';
    const result = await api(options, 'POST', `/api/instances/${encodeURIComponent(id)}/rerun`, {
      from,
    }).catch(async (error) => {
      throw await refusal(options, id, 'rerun', error);
    });
    print(result, () => `rerun ${id}: run ${result.run} queued (from ${from})`);
    return 0;
  }
  if (sub === 'cancel') {
    const result = await api(options, 'POST', `/api/instances/${encodeURIComponent(id)}/cancel`).catch(
      async (error) => {
        throw await refusal(options, id, 'cancel', error);
      },
    );
    print(result, () => `cancelled ${id}`);
    return 0;
  }
  if (sub === 'ack' || sub === 'unack') {
    const action = sub === 'ack' ? 'acknowledge' : 'unacknowledge';
    const body = sub === 'ack' && filters.note !== undefined ? { note: filters.note } : {};
    const result = await api(options, 'POST', `/api/instances/${encodeURIComponent(id)}/${action}`, body);
    print(result, () =>
      sub === 'ack'
        ? `acknowledged ${id} at ${time(result.acknowledgedAt)}: it leaves the default errors view`
        : `${id} is no longer acknowledged: it shows in the errors view again`,
    );
    return 0;
  }
  throw new UsageError(`unknown subcommand "instances ${sub}": use ls, show, rerun, cancel, ack or unack`);
}

/**
 * `tandem instances rerun --status failed [--integration …] [--tracking …] [--parent …]`: reruns
 * every finished instance that matches, then follows them with a progress bar until all are final.
 */
async function bulkRerun(
  filters: Record<string, string | undefined>,
  options: RemoteOptions,
): Promise<number> {
  const { from, ...rest } = filters;
  const filter: Record<string, string> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined && ['integration', 'status', 'tracking', 'parent'].includes(key))
      filter[key] = value;
  }
  if (Object.keys(filter).length === 0) {
    throw new UsageError('a bulk rerun needs a filter: --status, --integration, --tracking or --parent');
  }
  const result = await api(options, 'POST', '/api/instances/rerun', { filter, from: from ?? 'failed-step' });
  const err = options.err ?? process.stderr;
  err.write(`rerunning ${count(result.count, 'instance')} (from ${from ?? 'failed-step'})\n`);
  // Sync instances match the filter too, and are never rerun: say how many, not just "0".
  const sync = await countSync(options, filter);
  if (sync > 0) {
    err.write(
      `${count(sync, 'sync instance')} also ${sync === 1 ? 'matches' : 'match'}, not rerun: sync instances are never rerun (their caller had the answer, or the fault, at the time)\n`,
    );
  }
  // Follow them: the instances of the same filter (any status) whose run started with this rerun.
  const follow = new URLSearchParams({ rerunSince: String(result.at), limit: '1000' });
  for (const [key, value] of Object.entries(filter)) if (key !== 'status') follow.set(key, value);
  let done = 0;
  let failed = 0;
  while (result.count > 0) {
    done = 0;
    failed = 0;
    let cursor: string | null = null;
    do {
      const page: any = await api(
        options,
        'GET',
        `/api/instances?${follow}${cursor ? `&cursor=${cursor}` : ''}`,
      );
      for (const instance of page.items) {
        if (isFinal(instance.status)) done++;
        if (instance.status === 'failed') failed++;
      }
      cursor = page.nextCursor;
    } while (cursor);
    const width = 30;
    const filled = Math.round((Math.min(done, result.count) / result.count) * width);
    err.write(
      `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${done}/${result.count} done${failed ? ` (${failed} failed)` : ''}\n`,
    );
    if (done >= result.count) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const summary = { count: result.count, done, failed, syncNotRerun: sync };
  (options.out ?? process.stdout).write(
    `${options.json ? JSON.stringify(summary) : `${done} of ${result.count} rerun instances finished, ${failed} failed`}\n`,
  );
  return failed > 0 ? 1 : 0;
}

/** How many sync instances match a filter, page by page (the list has no mode filter). */
async function countSync(options: RemoteOptions, filter: Record<string, string>): Promise<number> {
  const query = new URLSearchParams({ ...filter, limit: '1000' });
  let sync = 0;
  let cursor: string | null = null;
  do {
    const page: any = await api(
      options,
      'GET',
      `/api/instances?${query}${cursor ? `&cursor=${cursor}` : ''}`,
    );
    for (const instance of page.items) if (instance.mode === 'sync') sync++;
    cursor = page.nextCursor;
  } while (cursor);
  return sync;
}

/** `tandem events send <name> [--payload JSON] [--id ID]`: a business event for waiting instances. */
export async function eventsCommand(
  sub: string,
  args: string[],
  flags: { payload?: string | undefined; id?: string | undefined },
  options: RemoteOptions,
): Promise<number> {
  if (sub !== 'send') throw new UsageError(`unknown subcommand "events ${sub}": use send`);
  const [name, ...rest] = args;
  if (!name) throw new UsageError('tandem events send needs the name of the event');
  if (rest.length > 0) throw new UsageError(`one event at a time, not ${args.join(' ')}`);
  let payload: unknown;
  if (flags.payload !== undefined) {
    try {
      payload = JSON.parse(flags.payload);
    } catch {
      throw new UsageError('--payload is not valid JSON');
    }
  }
  const sent = await api(options, 'POST', '/api/events', {
    name,
    ...(payload === undefined ? {} : { payload }),
    ...(flags.id === undefined ? {} : { id: flags.id }),
  });
  const out = options.out ?? process.stdout;
  if (options.json) {
    out.write(`${JSON.stringify(sent, null, 2)}\n`);
    return 0;
  }
  const lines = sent.duplicate
    ? [`event ${sent.eventId}: a duplicate (this id was received before): nothing stored, nothing resumed`]
    : [
        `event ${sent.eventId}: stored, resumed ${count(sent.resumed.length, 'instance')}`,
        ...sent.resumed.map((id: string) => `  ${id}`),
      ];
  out.write(`${lines.join('\n')}\n`);
  return 0;
}

export async function adviseCommand(options: RemoteOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const { items } = await api(options, 'GET', '/api/integrations');
  if (options.json) {
    out.write(
      `${JSON.stringify(
        items.map((i: any) => ({ id: i.id, mode: i.mode, advice: i.advice })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  const lines: string[] = [];
  for (const item of items) {
    const day = item.stats.windows?.['24h'];
    lines.push(
      `${item.id} (${item.mode}): ${day ? `${day.total} in 24 h, p95 ${day.p95 ?? '–'} ms` : 'no data'}`,
    );
    if (item.advice.length === 0) lines.push('  no advice: the pattern fits the figures');
    for (const advice of item.advice) lines.push(`  ${advice.kind}: ${advice.message}`);
  }
  out.write(`${lines.join('\n')}\n`);
  return 0;
}

const YES = /^(y|yes|true|1)$/i;
const NO = /^(n|no|false|0)$/i;

/** `tandem decide`: the three questions from flags, or asked one by one (a terminal or piped answers). */
export async function decideCommand(
  flags: { immediate?: string; seconds?: string; rerun?: string },
  json: boolean,
  input: NodeJS.ReadableStream = process.stdin,
  out: NodeJS.WritableStream = process.stdout,
  /** Where the questions go: not stdout, which keeps the answer for pipes. */
  prompts: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const questions = [
    ['immediate', 'Does the caller need an immediate response?'],
    ['seconds', 'Will everything finish in seconds?'],
    ['rerun', 'Must a failure be retried or rerun later?'],
  ] as const;
  const answers: Record<string, boolean> = {};
  const missing = questions.filter(([key]) => flags[key] === undefined);
  // Lines are read through the iterator, which buffers them: answers piped in all at once are not lost.
  const rl = missing.length > 0 ? createInterface({ input, terminal: false }) : null;
  const lines = rl?.[Symbol.asyncIterator]();
  try {
    for (const [key, question] of questions) {
      let value = flags[key];
      while (value === undefined || !(YES.test(value) || NO.test(value))) {
        if (!lines) throw new UsageError(`--${key} takes yes or no`);
        prompts.write(`${question} (yes/no) `);
        const next = await lines.next();
        if (next.done) throw new Error('no answer: the input ended');
        value = next.value.trim();
      }
      answers[key] = YES.test(value);
    }
  } finally {
    rl?.close();
  }
  // Piped answers are not echoed: end the prompts' line before the result.
  if (lines && !(input as { isTTY?: boolean }).isTTY) prompts.write('\n');
  const decision = decide({
    immediateResponse: answers.immediate!,
    finishesInSeconds: answers.seconds!,
    needsRerun: answers.rerun!,
  });
  out.write(
    json
      ? `${JSON.stringify(decision)}\n`
      : `${decision.pattern}\n${decision.reasons.map((r) => `  ${r}`).join('\n')}\n`,
  );
  return 0;
}
