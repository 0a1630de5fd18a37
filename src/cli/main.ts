import { parseArgs } from 'node:util';
import { start } from './start.js';

const USAGE = `Usage: tandem <command> [options]

Commands:
  start     Run the engine and the HTTP server

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
    process.stderr.write(`Unknown command "${command}"\n\n${USAGE}`);
    return 2;
  } catch (error) {
    process.stderr.write(`tandem ${command}: ${(error as Error).message}\n`);
    return 1;
  }
}
