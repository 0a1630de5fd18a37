/**
 * `tandem start --workers N`: one api process and N worker processes on the same store, run as one
 * command, so that the HTTP side and the work each may have a core (docs/deploy.md says when that
 * pays). Each child is `tandem start --role …` forked with an IPC channel; this process loads no
 * config.
 *
 * - Startup: the api process first (it migrates the store), the workers once it listens. A child
 *   that fails before it ever listened fails the command with its exit code: a config error is not
 *   cured by starting again.
 * - A child that exits unasked later is restarted, with a backoff that grows while restarts keep
 *   failing quickly; a few quick failures in a row give up, stop the others and exit 1.
 * - SIGTERM or SIGINT: every child gets SIGTERM and its graceful shutdown; the exit code is 0 when
 *   each exited 0. A second signal kills what is left.
 * - Output: the children's stdout and stderr go out through this process's, whole lines at a time,
 *   so that JSON lines stay JSON lines (each carries its process's role and pid).
 * - A child whose supervisor is gone (SIGKILLed) sees its IPC channel close and exits (start.ts).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../logging.js';
import type { ReadyMessage, StartOptions } from './start.js';

/** A child that ran this long before exiting was not crash-looping: its backoff starts over. */
const STABLE_MS = 10_000;
/** Quick failures in a row of one child after which the command gives up. */
const MAX_QUICK_FAILURES = 5;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5_000;

type ChildRole = 'api' | 'worker';

/** One process the supervisor keeps running: its role, the current child and its restarts. */
interface Slot {
  name: string;
  role: ChildRole;
  child: ChildProcess | null;
  startedAt: number;
  quickFailures: number;
  restart: NodeJS.Timeout | null;
  /** Whether a child of this slot ever listened: until then, an exit fails the command. */
  everReady: boolean;
  /** The last child's exit code (1 when a signal ended it). */
  lastCode: number;
}

/**
 * Runs the api and `options.workers` workers until a signal stops them; resolves to the exit code.
 * `args` are the command's own flags, passed on to each child (without --workers).
 */
export function supervise(args: string[], options: StartOptions): Promise<number> {
  const bin = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));
  const logger = createLogger({
    level: options.logLevel ?? 'info',
    format: options.logFormat ?? 'json',
  }).child({ role: 'supervisor' });
  const workers = options.workers ?? 0;
  const slots: Slot[] = [
    slot('api', 'api'),
    ...Array.from({ length: workers }, (_, n) => slot(`worker ${n + 1}`, 'worker')),
  ];
  const childArgs = (role: ChildRole) => [
    'start',
    ...withoutWorkers(args),
    '--role',
    role,
    ...(role === 'worker' ? ['--health-port', '0'] : []),
  ];

  let stopping = false;
  let exitCode = 0;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });

  /** Forks a slot's child; resolves when it listens (true) or exits first (false). */
  const launch = (s: Slot): Promise<boolean> => {
    const child = fork(bin, childArgs(s.role), {
      env: { ...process.env, TANDEM_SUPERVISED: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    s.child = child;
    s.startedAt = Date.now();
    passLines(child.stdout!, process.stdout);
    passLines(child.stderr!, process.stderr);
    return new Promise((resolve) => {
      child.on('message', (message: ReadyMessage) => {
        if (message?.type !== 'tandem:ready') return;
        s.everReady = true;
        resolve(message.shared);
      });
      // 'close': the output has been passed on too.
      child.once('close', (code, signal) => {
        s.lastCode = code ?? 1;
        if (s.child === child) s.child = null;
        resolve(false);
        exited(s, code, signal);
      });
    });
  };

  const exited = (s: Slot, code: number | null, signal: NodeJS.Signals | null) => {
    if (stopping) {
      // Ended by our SIGTERM before it had set up its own shutdown (still starting): nothing to finish.
      const stoppedWhileStarting = code === null && signal === 'SIGTERM';
      if (code !== 0 && !stoppedWhileStarting) exitCode = 1;
      if (slots.every((other) => other.child === null)) finish(exitCode);
      return;
    }
    // A first start that failed: the startup below fails the command.
    if (!s.everReady) return;
    const ranMs = Date.now() - s.startedAt;
    s.quickFailures = ranMs < STABLE_MS ? s.quickFailures + 1 : 0;
    const how = signal ? { signal } : { code };
    if (s.quickFailures >= MAX_QUICK_FAILURES) {
      logger.error(
        { process: s.name, ...how, failures: s.quickFailures },
        `${s.name} keeps failing within ${STABLE_MS / 1000} s of its start; giving up`,
      );
      void stopAll(1);
      return;
    }
    const delayMs = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, s.quickFailures - 1));
    logger.error({ process: s.name, ...how, delayMs }, `${s.name} exited unexpectedly; restarting it`);
    s.restart = setTimeout(() => {
      s.restart = null;
      if (!stopping) void launch(s);
    }, delayMs);
  };

  const stopAll = async (code: number) => {
    if (code !== 0) exitCode = code;
    if (stopping) return;
    stopping = true;
    for (const s of slots) {
      if (s.restart) clearTimeout(s.restart);
      s.child?.kill('SIGTERM');
    }
    if (slots.every((s) => s.child === null)) finish(exitCode);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C: do not wait for the graceful shutdowns.
      for (const s of slots) s.child?.kill('SIGKILL');
      return;
    }
    logger.info({ signal }, 'stopping every process');
    void stopAll(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  void (async () => {
    const [api, ...rest] = slots as [Slot, ...Slot[]];
    const shared = await launch(api);
    if (stopping) return;
    if (!api.child) return void stopAll(api.lastCode);
    if (!shared) {
      logger.warn('the store is in memory, which other processes cannot open: one process does all');
      rest.length = 0;
      slots.length = 1;
    }
    const started = await Promise.all(rest.map((s) => launch(s)));
    if (stopping) return;
    const failed = rest.find((s, n) => !started[n] && s.child === null);
    if (failed) return void stopAll(failed.lastCode);
    logger.info(
      { processes: slots.map((s) => ({ process: s.name, pid: s.child?.pid })) },
      `supervising ${slots.length} processes`,
    );
  })();

  return finished.finally(() => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  });

  function slot(name: string, role: ChildRole): Slot {
    return {
      name,
      role,
      child: null,
      startedAt: 0,
      quickFailures: 0,
      restart: null,
      everReady: false,
      lastCode: 1,
    };
  }
}

/** The command's flags without --workers (a child has its role instead). */
function withoutWorkers(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--workers') i++;
    else if (!arg.startsWith('--workers=')) out.push(arg);
  }
  return out;
}

/** Copies a child's output to ours whole lines at a time, so that lines of two processes never mix. */
function passLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream): void {
  let rest = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const end = chunk.lastIndexOf('\n');
    if (end === -1) {
      rest += chunk;
      return;
    }
    to.write(rest + chunk.slice(0, end + 1));
    rest = chunk.slice(end + 1);
  });
  from.on('end', () => {
    if (rest !== '') to.write(`${rest}\n`);
  });
}
