/**
 * The `tandem` command: parses the command line, answers `--help` and `--version`, runs the
 * command and maps what happened to one exit code (./exit.ts). Results go to stdout, everything
 * else (progress, notices, errors) to stderr.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Engine } from '../engine/engine.js';
import { demoCommand } from './demo.js';
import { dev } from './dev.js';
import { EXIT, UnreachableError, UsageError } from './exit.js';
import { HELP, USAGE } from './help.js';
import { initCommand } from './init.js';
import { engineOptionsOf, loadConfig } from './load-config.js';
import { adviseCommand, decideCommand, eventsCommand, instancesCommand } from './remote.js';
import { type RunCommandOptions, runCommand } from './run.js';
import { parseStartArgs, start } from './start.js';
import { supervise } from './supervise.js';

/**
 * `tandem run` in this process: the config's engine (and store) runs the instance and its children
 * while the command follows it; Ctrl-C stops the engine, releasing what it holds. The config is
 * told it was loaded by `tandem run` (TANDEM_COMMAND=run), so that what it starts for itself (the
 * demo's applications) takes free ports rather than those of a server running beside it.
 */
async function runLocal(
  integration: string,
  options: RunCommandOptions & { config?: string },
): Promise<number> {
  const config = await loadConfig(options.config);
  const engine = await Engine.create({
    ...engineOptionsOf(config),
    // Log lines on stderr: stdout is the result.
    logger: pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  engine.start();
  try {
    const { exitCode } = await runCommand(engine, integration, { ...options, signal: controller.signal });
    return controller.signal.aborted ? EXIT.interrupted : exitCode;
  } finally {
    await engine.stop();
  }
}

/** The package's version, from its package.json (two folders up from src/cli and from dist/cli). */
function version(): string {
  const file = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

const REMOTE_OPTIONS = {
  url: { type: 'string' },
  json: { type: 'boolean' },
  integration: { type: 'string' },
  status: { type: 'string' },
  tracking: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  parent: { type: 'string' },
  from: { type: 'string' },
  note: { type: 'string' },
} as const;

type Command = (args: string[]) => Promise<number>;

const remoteOf = (values: { url?: string | undefined; json?: boolean | undefined }) => ({
  url: values.url ?? process.env.TANDEM_URL ?? 'http://127.0.0.1:3000',
  token: process.env.TANDEM_ADMIN_TOKEN,
  json: values.json ?? false,
});

const COMMANDS: Record<string, Command> = {
  async init(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    if (positionals.length > 1)
      throw new UsageError(`tandem init takes one folder, not ${positionals.join(' ')}`);
    return initCommand(positionals[0]);
  },

  async start(args) {
    const options = parseStartArgs(args);
    // --workers N without a role: an api process and N worker processes, supervised by this one.
    if (options.workers) return supervise(args, options);
    await start(options);
    return EXIT.ok;
  },

  async dev(args) {
    // Checked here, so that a wrong option is refused before the watcher starts.
    parseStartArgs(args);
    if (args.some((arg) => arg === '--workers' || arg.startsWith('--workers=')))
      throw new UsageError('tandem dev runs one process: --workers is for tandem start');
    return dev(args);
  },

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        param: { type: 'string', multiple: true },
        input: { type: 'string' },
        config: { type: 'string' },
        'no-wait': { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    const [integration] = positionals;
    if (!integration) throw new UsageError('tandem run needs the id of an integration');
    if (positionals.length > 1)
      throw new UsageError(`tandem run takes one integration, not ${positionals.join(' ')}`);
    let input: unknown;
    if (values.input !== undefined) {
      try {
        input = JSON.parse(values.input);
      } catch {
        throw new UsageError('--input is not valid JSON');
      }
    }
    for (const param of values.param ?? []) {
      if (!/^[^=]+=/.test(param)) throw new UsageError(`--param ${param}: write it as name=value`);
    }
    process.env.TANDEM_COMMAND = 'run';
    const code = await runLocal(integration, {
      ...(values.param ? { params: values.param } : {}),
      ...(input === undefined ? {} : { input }),
      ...(values['no-wait'] ? { wait: false } : {}),
      ...(values.config === undefined ? {} : { config: values.config }),
    });
    // The config may have started servers of its own (the demo's applications) that would keep
    // the process alive: the run is over, so is the process, once its output is written.
    await new Promise((resolve) => process.stdout.write('', resolve));
    await new Promise((resolve) => process.stderr.write('', resolve));
    process.exit(code);
  },

  async demo(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { apps: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const [sub, ...names] = positionals;
    return demoCommand(sub ?? 'status', names, {
      apps: values.apps ?? process.env.DEMO_APPS_URL ?? 'http://127.0.0.1:4000',
      json: values.json ?? false,
    });
  },

  async instances(args) {
    const { values, positionals } = parseArgs({
      args,
      options: REMOTE_OPTIONS,
      allowPositionals: true,
      strict: true,
    });
    const [sub, ...ids] = positionals;
    if (ids.length > 1) throw new UsageError(`one instance id at a time, not ${ids.join(' ')}`);
    if (sub === 'ls' && ids.length > 0) throw new UsageError('tandem instances ls takes no instance id');
    if (values.from !== undefined && !['failed-step', 'start'].includes(values.from))
      throw new UsageError(`--from takes failed-step or start, not ${values.from}`);
    const { url: _, json: __, ...filters } = values;
    return instancesCommand(sub ?? 'ls', ids, filters, remoteOf(values));
  },

  async events(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        url: REMOTE_OPTIONS.url,
        json: REMOTE_OPTIONS.json,
        payload: { type: 'string' },
        id: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
    const [sub, ...rest] = positionals;
    if (sub === undefined) throw new UsageError('tandem events needs a subcommand: send');
    return eventsCommand(sub, rest, { payload: values.payload, id: values.id }, remoteOf(values));
  },

  async advise(args) {
    const { values } = parseArgs({
      args,
      options: { url: REMOTE_OPTIONS.url, json: REMOTE_OPTIONS.json },
      strict: true,
    });
    return adviseCommand(remoteOf(values));
  },

  async decide(args) {
    const { values } = parseArgs({
      args,
      options: {
        immediate: { type: 'string' },
        seconds: { type: 'string' },
        rerun: { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    });
    return decideCommand(
      {
        ...(values.immediate === undefined ? {} : { immediate: values.immediate }),
        ...(values.seconds === undefined ? {} : { seconds: values.seconds }),
        ...(values.rerun === undefined ? {} : { rerun: values.rerun }),
      },
      values.json ?? false,
    );
  },

  async version(args) {
    if (args.length > 0) throw new UsageError('tandem version takes no arguments');
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  },

  async help(args) {
    const topic = args.join(' ');
    if (topic === '') process.stdout.write(USAGE);
    else if (HELP[topic]) process.stdout.write(HELP[topic]);
    else throw new UsageError(`no help for "${topic}": commands are ${Object.keys(COMMANDS).join(', ')}`);
    return EXIT.ok;
  },
};

/** Every command's name: each has its help (a test holds them together). */
export const COMMAND_NAMES = Object.keys(COMMANDS);

/** The help asked for by `--help` or `-h` among a command's arguments: the subcommand's if it has one. */
function helpOf(command: string, args: string[]): string | null {
  if (!args.includes('--help') && !args.includes('-h')) return null;
  const sub = args.find((a) => !a.startsWith('-'));
  return (sub !== undefined ? HELP[`${command} ${sub}`] : undefined) ?? HELP[command] ?? USAGE;
}

/** Runs the CLI; resolves to the exit code (a long-running command resolves once it is up). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    process.stderr.write(USAGE);
    return EXIT.usage;
  }
  if (command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (command === '--version' || command === '-v') return COMMANDS.version!(rest);
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    process.stderr.write(`tandem: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  const help = helpOf(command, rest);
  if (help !== null) {
    process.stdout.write(help);
    return EXIT.ok;
  }
  try {
    return await run(rest);
  } catch (error) {
    const message = (error as Error).message;
    if (
      error instanceof UsageError ||
      String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(
        `tandem ${command}: ${message}\nRun \`tandem ${command} --help\` for its usage.\n`,
      );
      return EXIT.usage;
    }
    process.stderr.write(`tandem ${command}: ${message}\n`);
    return error instanceof UnreachableError ? EXIT.unreachable : EXIT.failure;
  }
}
