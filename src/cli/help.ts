/**
 * The CLI's help: one text per command and subcommand, printed by `tandem <command> --help`,
 * `tandem <command> <subcommand> --help` and `tandem help <command>`. Kept apart from the parsing so
 * that every command has its text and a test can ask each one for it.
 */

const REMOTE = `  --url <url>       The server (TANDEM_URL, default http://127.0.0.1:3000)
  --json            Machine-readable output
  -h, --help        Show this help

The admin token is read from TANDEM_ADMIN_TOKEN.`;

const CONFIG = `  --config <path>   Config file (default ./tandem.config.ts)`;

export const USAGE = `Usage: tandem <command> [options]

Commands:
  init        Write a new project (config, integrations, a test, scripts); never overwrites a file
  start       Run the engine and the HTTP server
  dev         Like start, restarted when the config or a module it imports changes
  run         Start an integration now in this process and follow it to the end
  instances   List, show, rerun and cancel instances through a running server
  events      Send a business event to waiting instances through a running server
  advise      Each integration's figures and pattern advice (through a running server)
  decide      The pattern for the three questions
  demo        Switch the retail demo's simulated applications down and up
  version     Print Tandem's version (also --version)
  help        Show the help of a command: tandem help <command> [subcommand]

Run \`tandem <command> --help\` for a command's options.
Results go to stdout; progress, notices and errors to stderr.
Exit codes: 0 ok, 1 failure, 2 usage, 3 no server at the URL, 130 interrupted (docs/cli.md).

Environment: TANDEM_STORE_URL (sqlite:./path.db | postgres://…), TANDEM_PORT, TANDEM_HOST,
TANDEM_URL, TANDEM_ADMIN_TOKEN, TANDEM_LOG_LEVEL
`;

export const HELP: Record<string, string> = {
  init: `Usage: tandem init [dir]

Writes a new project into dir (default: the current folder): package.json (scripts dev, start and
test), tsconfig.json, tandem.config.ts, src/integrations.ts with a sync and an async integration, a
test on the test kit (tandem/testing), .gitignore and a README. Refuses, writing nothing, when one of
those files exists (an existing package.json only gains what it lacks).

Options:
  -h, --help        Show this help
`,
  start: `Usage: tandem start [--port <n>] [--host <host>] [--config <path>] [--workers <n>]

Runs the engine and the HTTP server in one process. SIGTERM or Ctrl-C stops accepting, lets
in-flight requests and running attempts finish, releases the rest and exits 0.

With --workers <n>, runs one api process (HTTP) and n worker processes on the same store instead,
supervised as one command: one Ctrl-C stops all, a crashed process is restarted, their logs are
merged. With --role api|worker, this process is that one role (docs/deploy.md).

Options:
  --port <n>        Port to listen on (TANDEM_PORT, default 3000; 0 picks a free one)
  --host <host>     Address to listen on (TANDEM_HOST, default 0.0.0.0)
  --workers <n>     Worker processes beside an api process (TANDEM_WORKERS, default 0: one process)
  --role <role>     all, api or worker: this process only, unsupervised (TANDEM_ROLE)
${CONFIG}
  -h, --help        Show this help
`,
  dev: `Usage: tandem dev [--port <n>] [--host <host>] [--config <path>]

Like \`tandem start\`, and restarted when the config or a module it imports changes (the store's
own writes do not restart it).

Options:
  --port <n>        Port to listen on (TANDEM_PORT, default 3000)
  --host <host>     Address to listen on (TANDEM_HOST, default 0.0.0.0)
${CONFIG}
  -h, --help        Show this help
`,
  run: `Usage: tandem run <integration> [--param name=value]... [--input <json>] [--no-wait] [--config <path>]

Starts an instance of the integration now, in this process, on the config's store, and follows it
to the end: progress on stderr, the result as one JSON line on stdout. Anything the config starts
for itself (such as the demo's simulated applications) gets free ports of its own, so a run beside
a running server does not collide with it. Exits when the run ends: 0 succeeded, 1 failed or
cancelled, 130 on Ctrl-C (the instance stays in the store and continues under a server).

Options:
  --param name=value  A parameter of a scheduled integration (repeatable), converted to its type
  --input <json>      The input of an async integration
  --no-wait           Print the instance id and exit without following it
${CONFIG}
  -h, --help          Show this help
`,
  instances: `Usage: tandem instances <subcommand> [options]

Reads and changes instances through a running server's management API.

Subcommands:
  ls        List instances, newest first
  show      An instance with its steps and activity
  rerun     Rerun one instance, or every finished one that matches a filter
  cancel    Cancel an instance that has not finished
  ack       Acknowledge a failed instance: it leaves the default errors view
  unack     Take an acknowledgement back: the failure shows again

Run \`tandem instances <subcommand> --help\` for its options.
`,
  'instances ls': `Usage: tandem instances ls [--integration <id>] [--status <s>] [--tracking <value>] [--parent <id>]
                          [--limit <n>] [--cursor <c>] [--url <url>] [--json]

Lists instances, newest first, with the version each started on and a NEXT ATTEMPT column for
those that wait: queued, retrying, or waiting (its wake-up time; "no timeout" when only an event or
a callback ends the wait).

Options:
  --integration <id>  Only this integration's instances
  --status <s>        queued, running, retrying, waiting, succeeded, failed or cancelled
  --tracking <value>  A tracking field's value (or name=value), e.g. an order number
  --parent <id>       Instances started by this instance
  --limit <n>         Page size (default 50, at most 1000)
  --cursor <c>        The next page, as the previous page printed it
${REMOTE}
`,
  'instances show': `Usage: tandem instances show <instance id> [--url <url>] [--json]

An instance with its version, input, output, error, steps, waits (what each waits for, until when,
and how it ended) and activity; a waiting instance with its wake-up time.

Options:
${REMOTE}
`,
  'instances rerun': `Usage: tandem instances rerun <instance id> [--from failed-step|start] [--url <url>] [--json]
       tandem instances rerun --status failed [--integration <id>] [--tracking <value>] [--parent <id>]

Reruns one instance as a new run, or every finished instance that matches the filter, then
follows them with a progress bar on stderr. Sync instances are never rerun: their caller had the
answer at the time; the count of those that match is shown.

Options:
  --from <where>      failed-step (default: steps that succeeded are kept) or start
  --status <s>        Bulk: the status to rerun (failed, cancelled, succeeded)
  --integration <id>  Bulk: only this integration's instances
  --tracking <value>  Bulk: only instances with this tracking value
  --parent <id>       Bulk: only instances started by this instance
${REMOTE}
`,
  'instances ack': `Usage: tandem instances ack <instance id> [--note <text>] [--url <url>] [--json]

Acknowledges a failed instance, sync or async: it leaves the default errors view (GET /api/errors,
the console's Errors page). A rerun clears the acknowledgement. \`tandem instances unack <id>\`
takes it back.

Options:
  --note <text>       What was done about it, kept with the acknowledgement (at most 500 characters)
${REMOTE}
`,
  'instances unack': `Usage: tandem instances unack <instance id> [--url <url>] [--json]

Takes the acknowledgement of a failed instance back: it shows in the errors view again.

Options:
${REMOTE}
`,
  'instances cancel': `Usage: tandem instances cancel <instance id> [--url <url>] [--json]

Cancels an instance that has not finished; a running attempt is aborted.

Options:
${REMOTE}
`,
  events: `Usage: tandem events send <name> [--payload <json>] [--id <id>] [--url <url>] [--json]

Sends business events through a running server's management API (POST /api/events).

Subcommands:
  send      Send one event: the instances waiting for it (ctx.waitForEvent) resume

Run \`tandem events send --help\` for its options.
`,
  'events send': `Usage: tandem events send <name> [--payload <json>] [--id <id>] [--url <url>] [--json]

Sends one business event. Every instance waiting for an event of this name whose match fits the
payload resumes with it; a wait that begins later within the look-back window takes it too.
Prints the event's id and the instances it resumed.

Options:
  --payload <json>  The event's JSON payload (default null); waits match its top-level fields
  --id <id>         Makes the send idempotent: an id already received stores and resumes nothing
${REMOTE}
`,
  advise: `Usage: tandem advise [--url <url>] [--json]

Each integration's figures of the last 24 h and its pattern advice.

Options:
${REMOTE}
`,
  decide: `Usage: tandem decide [--immediate yes|no] [--seconds yes|no] [--rerun yes|no] [--json]

The pattern (sync, async, sync-to-async) for three questions; asks on stderr those not given as
options, one by one, and prints the answer on stdout.

Options:
  --immediate yes|no  Does the caller need an immediate response?
  --seconds yes|no    Will everything finish in seconds?
  --rerun yes|no      Must a failure be retried or rerun later?
  --json              Machine-readable output
  -h, --help          Show this help
`,
  demo: `Usage: tandem demo <status|down|up> [application]... [--apps <url>] [--json]

Shows the retail demo's simulated applications, or switches them down (they answer 503) and up,
through their directory.

Subcommands:
  status [name]...  Each application, its state and URL
  down <name>...    Take applications down
  up <name>...      Bring them back

Options:
  --apps <url>      The directory (DEMO_APPS_URL, default http://127.0.0.1:4000)
  --json            Machine-readable output
  -h, --help        Show this help
`,
  version: `Usage: tandem version (or tandem --version)

Prints the version of Tandem's package.
`,
  help: `Usage: tandem help [command] [subcommand]

Shows the help of a command (the same as \`tandem <command> --help\`).
`,
};
for (const sub of ['status', 'down', 'up']) HELP[`demo ${sub}`] = HELP.demo!;
