import { parseArgs } from 'node:util';
import pino from 'pino';
import { Engine } from '../engine/engine.js';
import { demoCommand } from './demo.js';
import { dev } from './dev.js';
import { initCommand } from './init.js';
import { engineOptionsOf, loadConfig } from './load-config.js';
import { adviseCommand, decideCommand, instancesCommand } from './remote.js';
import { type RunCommandOptions, runCommand } from './run.js';
import { start } from './start.js';

/**
 * `tandem run` in this process: the config's engine (and store) runs the instance and its children
 * while the command follows it; Ctrl-C stops the engine, releasing what it holds.
 */
async function runLocal(
  integration: string,
  options: RunCommandOptions & { config?: string },
): Promise<number> {
  const config = await loadConfig(options.config);
  const engine = await Engine.create({
    ...engineOptionsOf(config),
    logger: pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' }),
  });
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  engine.start();
  try {
    const { exitCode } = await runCommand(engine, integration, { ...options, signal: controller.signal });
    return exitCode;
  } finally {
    await engine.stop();
  }
}

const USAGE = `Usage: tandem <command> [options]

Commands:
  init [dir]  Write a new project (config, integrations, a test, scripts); never overwrites a file
  start     Run the engine and the HTTP server
  dev       Like start, and restart when the config or a module it imports changes
  run       Start an integration now and follow it to the end (progress on stderr, result on stdout):
              tandem run <integration> [--param name=value]... [--input <json>] [--no-wait] [--config <path>]
  instances ls [--integration id] [--status s] [--tracking value] [--limit n] [--cursor c]
  instances show|rerun|cancel <instance id> [--from failed-step|start]
  instances rerun --status failed [--integration id] [--tracking value] [--parent id]
            Bulk rerun, followed with a progress bar
            Read and change instances through a running server (--url, default http://127.0.0.1:3000)
  advise    Each integration's pattern advice, with its figures (through a running server)
  decide    The pattern for the three questions: --immediate yes|no --seconds yes|no --rerun yes|no,
            or asked one by one when not given
  demo status|down|up [application]...
            Switch the retail demo's simulated applications (--apps, default http://127.0.0.1:4000)
  --json    Machine-readable output for instances, advise, decide and demo

Options for start:
  --port <n>        Port to listen on (TANDEM_PORT, default 3000; 0 picks a free one)
  --host <host>     Address to listen on (TANDEM_HOST, default 0.0.0.0)
  --config <path>   Config file (default ./tandem.config.ts)

Environment: TANDEM_STORE_URL (sqlite:./path.db | postgres://…), TANDEM_ADMIN_TOKEN, TANDEM_LOG_LEVEL
`;

/** Runs the CLI; resolves to the exit code (a long-running command resolves once it is up). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    if (command === 'start') {
      const { values } = parseArgs({
        args: rest,
        options: { port: { type: 'string' }, host: { type: 'string' }, config: { type: 'string' } },
        strict: true,
      });
      const portText = values.port ?? process.env.TANDEM_PORT ?? '3000';
      const port = Number(portText);
      if (!/^\d{1,5}$/.test(portText) || port > 65_535)
        throw new Error(`--port ${portText} is not a port number`);
      await start({
        port,
        host: values.host ?? process.env.TANDEM_HOST ?? '0.0.0.0',
        ...(values.config === undefined ? {} : { config: values.config }),
      });
      return 0;
    }
    if (command === 'dev') {
      // Checked here, so that a wrong option is refused before the watcher starts.
      parseArgs({
        args: rest,
        options: { port: { type: 'string' }, host: { type: 'string' }, config: { type: 'string' } },
        strict: true,
      });
      return await dev(rest);
    }
    if (command === 'run') {
      const { values, positionals } = parseArgs({
        args: rest,
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
      if (!integration || positionals.length > 1)
        throw new Error('usage: tandem run <integration> [--param name=value]…');
      let input: unknown;
      if (values.input !== undefined) {
        try {
          input = JSON.parse(values.input);
        } catch {
          throw new Error('--input is not valid JSON');
        }
      }
      return await runLocal(integration, {
        ...(values.param ? { params: values.param } : {}),
        ...(input === undefined ? {} : { input }),
        ...(values['no-wait'] ? { wait: false } : {}),
        ...(values.config === undefined ? {} : { config: values.config }),
      });
    }
    if (command === 'init') {
      const { positionals } = parseArgs({ args: rest, options: {}, allowPositionals: true, strict: true });
      if (positionals.length > 1) throw new Error('usage: tandem init [dir]');
      return initCommand(positionals[0]);
    }
    if (command === 'demo') {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { apps: { type: 'string' }, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      const [sub, ...names] = positionals;
      return await demoCommand(sub ?? 'status', names, {
        apps: values.apps ?? process.env.DEMO_APPS_URL ?? 'http://127.0.0.1:4000',
        json: values.json ?? false,
      });
    }
    if (command === 'instances' || command === 'advise' || command === 'decide') {
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          url: { type: 'string' },
          json: { type: 'boolean' },
          integration: { type: 'string' },
          status: { type: 'string' },
          tracking: { type: 'string' },
          limit: { type: 'string' },
          cursor: { type: 'string' },
          parent: { type: 'string' },
          from: { type: 'string' },
          immediate: { type: 'string' },
          seconds: { type: 'string' },
          rerun: { type: 'string' },
        },
        allowPositionals: true,
        strict: true,
      });
      const remote = {
        url: values.url ?? process.env.TANDEM_URL ?? 'http://127.0.0.1:3000',
        token: process.env.TANDEM_ADMIN_TOKEN,
        json: values.json ?? false,
      };
      if (command === 'decide') {
        return await decideCommand(
          {
            ...(values.immediate === undefined ? {} : { immediate: values.immediate }),
            ...(values.seconds === undefined ? {} : { seconds: values.seconds }),
            ...(values.rerun === undefined ? {} : { rerun: values.rerun }),
          },
          remote.json,
        );
      }
      if (command === 'advise') return await adviseCommand(remote);
      const [sub, ...ids] = positionals;
      return await instancesCommand(
        sub ?? 'ls',
        ids,
        {
          integration: values.integration,
          status: values.status,
          tracking: values.tracking,
          limit: values.limit,
          cursor: values.cursor,
          parent: values.parent,
          from: values.from,
        },
        remote,
      );
    }
    process.stderr.write(`Unknown command "${command}"\n\n${USAGE}`);
    return 2;
  } catch (error) {
    process.stderr.write(`tandem ${command}: ${(error as Error).message}\n`);
    return 1;
  }
}
