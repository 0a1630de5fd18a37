/**
 * `tandem demo status|down|up [application]`: switches the retail demo's simulated applications
 * through their directory (`--apps`, `DEMO_APPS_URL`, default http://127.0.0.1:4000), to show what
 * happens when an application goes down and comes back.
 */
import { isUnreachable, UnreachableError, UsageError } from './exit.js';
import { table } from './remote.js';

export interface DemoOptions {
  apps: string;
  json: boolean;
  out?: NodeJS.WritableStream;
}

interface AppState {
  name: string;
  url: string;
  down: boolean;
}

async function directory(options: DemoOptions, method: string, path: string): Promise<any> {
  let response: Response;
  try {
    response = await fetch(new URL(path, options.apps), { method });
  } catch (error) {
    if (!isUnreachable(error)) throw error;
    throw new UnreachableError(
      `no demo applications at ${options.apps}: start the demo with \`npm start\`, or set DEMO_APPS_URL (or --apps) to its directory`,
    );
  }
  const body = (await response.json()) as { error?: string };
  if (!response.ok) throw new Error(body.error ?? `${response.status}`);
  return body;
}

export async function demoCommand(sub: string, names: string[], options: DemoOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  if (sub === 'status') {
    const { apps } = (await directory(options, 'GET', '/')) as { apps: AppState[] };
    const shown = names.length === 0 ? apps : apps.filter((a) => names.includes(a.name));
    out.write(
      options.json
        ? `${JSON.stringify(shown, null, 2)}\n`
        : `${table(
            shown.map((a) => ({ ...a, state: a.down ? 'down' : 'up' })),
            ['name', 'state', 'url'],
          )}\n`,
    );
    return 0;
  }
  if (sub === 'down' || sub === 'up') {
    if (names.length === 0) throw new UsageError(`tandem demo ${sub} needs an application's name`);
    for (const name of names) {
      const app = (await directory(options, 'POST', `/${encodeURIComponent(name)}/${sub}`)) as AppState;
      out.write(options.json ? `${JSON.stringify(app)}\n` : `${app.name} is ${app.down ? 'down' : 'up'}\n`);
    }
    return 0;
  }
  throw new UsageError(`unknown subcommand "demo ${sub}": use status, down or up`);
}
