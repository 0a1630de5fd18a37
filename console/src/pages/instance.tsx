import { useState } from 'preact/hooks';
import {
  ACTIVE,
  type ActivityEvent,
  api,
  type InstanceDetail,
  NEVER,
  post,
  type Step,
  type Wait,
} from '../api';
import { ms, time } from '../format';
import { useLoad } from '../hooks';
import { Json, Loading, Page, Problem, StatusBadge } from '../ui';

/** Not final: the lifecycle's active statuses (a waiting instance among them). */
const UNFINISHED = new Set<string>(ACTIVE);

/** How often the page reloads: often while work moves, less while it waits or is over. */
const refreshOf = (status: string) =>
  status === 'waiting' ? 5_000 : UNFINISHED.has(status) ? 1_000 : 10_000;

export function InstancePage({ id }: { id: string }) {
  const [refresh, setRefresh] = useState(1_000);
  const detail = useLoad(
    async () => {
      const loaded = await api<InstanceDetail>(`/instances/${encodeURIComponent(id)}`);
      setRefresh(refreshOf(loaded.instance.status));
      return loaded;
    },
    [id],
    refresh,
  );
  return (
    <Page title={`Instance ${id.slice(-12)}`}>
      <p>
        <a href="#/instances">← All instances</a>
      </p>
      <Problem message={detail.error} />
      <Loading when={detail.data}>{() => <Detail detail={detail.data!} reload={detail.reload} />}</Loading>
    </Page>
  );
}

function Detail({ detail, reload }: { detail: InstanceDetail; reload: () => void }) {
  const { instance, runs } = detail;
  const [chosenRun, setChosenRun] = useState<number | null>(null);
  const run = chosenRun ?? instance.run;
  return (
    <>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={instance.status} />
        </dd>
        <dt>Integration</dt>
        <dd>{instance.integrationId}</dd>
        <dt>Tracking</dt>
        <dd>
          {Object.entries(instance.tracking)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ') || '—'}
        </dd>
        <dt>Run / attempt</dt>
        <dd>
          {instance.run} / {instance.attempt}
        </dd>
        <dt>Version</dt>
        <dd>{instance.version ?? 'unversioned'}</dd>
        {instance.status === 'waiting' ? (
          <>
            <dt>Waiting until</dt>
            <dd>{until(instance.runAt)}</dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>{time(instance.createdAt)}</dd>
        {detail.events.some((e) => e.type === 'accepted' && e.data.source === 'console') ? (
          <>
            <dt>Origin</dt>
            <dd>Started from the console</dd>
          </>
        ) : null}
        <dt>Duration</dt>
        <dd>{ms(instance.durationMs)}</dd>
        <dt>Id</dt>
        <dd>
          <code>{instance.id}</code>
        </dd>
      </dl>
      <Actions detail={detail} reload={reload} />
      {instance.error ? (
        <section class="error-box" aria-labelledby="error-title">
          <h2 id="error-title">Error</h2>
          <p>
            <strong>{instance.error.name}</strong>
            {instance.error.code ? ` (${instance.error.code})` : ''}: {instance.error.message}
          </p>
          {instance.error.details ? <Json label="Cause" value={instance.error.details} /> : null}
        </section>
      ) : null}
      <div class="page-header">
        <h2>Timeline of run {run}</h2>
        {runs.length > 1 ? (
          <span class="inline">
            <label for="run-choice">Run</label>
            <select
              id="run-choice"
              value={run}
              onChange={(event) => setChosenRun(Number(event.currentTarget.value))}
            >
              {runs.map((r) => (
                <option key={r.run} value={r.run}>
                  {r.run} ({r.status})
                </option>
              ))}
            </select>
          </span>
        ) : null}
      </div>
      <Waterfall detail={detail} run={run} />
      <Waits waits={detail.waits} />
      <div class="columns">
        <Json label="Input" value={instance.input} />
        <Json label="Output" value={instance.output} />
      </div>
      <h2>Runs</h2>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">From</th>
              <th scope="col">Status</th>
              <th scope="col">Started</th>
              <th scope="col">Finished</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <tr key={run.run}>
                <th scope="row">{run.run}</th>
                <td>{run.from ?? 'first run'}</td>
                <td>
                  <StatusBadge status={run.status} />
                </td>
                <td>{time(run.startedAt)}</td>
                <td>{time(run.finishedAt)}</td>
                <td>{run.error?.message ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** A wake-up time or timeout; none (or NEVER) when only an event or a callback ends the wait. */
const until = (at: number | null) => (at === null || at >= NEVER ? 'no timeout' : time(at));

/** What a wait waits for, in words. */
function waitsFor(wait: Wait): string {
  if (wait.kind === 'sleep') return 'its time';
  if (wait.kind === 'callback') return 'a call to its callback URL';
  const match =
    wait.match && Object.keys(wait.match).length > 0 ? ` where ${JSON.stringify(wait.match)}` : '';
  return `event ${wait.event}${match}`;
}

const RESOLVED_BY: Record<NonNullable<Wait['resolution']>, string> = {
  time: 'time came',
  event: 'event',
  callback: 'callback answered',
  timeout: 'timed out',
};

/** The instance's durable waits (every run): what each waits for, until when, and how it ended. */
function Waits({ waits }: { waits: Wait[] }) {
  if (waits.length === 0) return null;
  return (
    <section class="waits" aria-labelledby="waits-title">
      <h2 id="waits-title">Waits</h2>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Step</th>
              <th scope="col">Kind</th>
              <th scope="col">Waits for</th>
              <th scope="col">Since</th>
              <th scope="col">Until</th>
              <th scope="col">Resolved</th>
            </tr>
          </thead>
          <tbody>
            {waits.map((wait) => (
              <tr key={`${wait.run}-${wait.name}`}>
                <td>{wait.run}</td>
                <th scope="row">{wait.name}</th>
                <td>{wait.kind}</td>
                <td>{waitsFor(wait)}</td>
                <td>{time(wait.createdAt)}</td>
                <td>{until(wait.until)}</td>
                <td>
                  {wait.resolvedAt === null || wait.resolution === null ? (
                    <StatusBadge status="waiting" />
                  ) : (
                    `${RESOLVED_BY[wait.resolution]}${wait.eventId ? ` ${wait.eventId}` : ''}, ${time(wait.resolvedAt)}`
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

interface Bar {
  key: string;
  label: string;
  kind: 'step' | 'call' | 'seeded';
  failed: boolean;
  start: number;
  end: number;
}

/** Steps and the connection calls made in them, on one time axis from the start of the run. */
function Waterfall({ detail, run }: { detail: InstanceDetail; run: number }) {
  const steps = detail.steps.filter((s) => s.run === run).sort((a, b) => a.position - b.position);
  const calls = detail.events.filter((e) => e.type === 'connection.call' && e.run === run);
  // Each call goes under the step during which it finished; calls of earlier attempts whose step
  // record was replaced stand on their own, so that no call is hidden.
  const bars: Bar[] = [];
  const placed = new Set<number>();
  for (const step of steps) {
    bars.push(stepBar(step));
    for (const call of calls) {
      if (placed.has(call.id) || call.at < step.startedAt || call.at > step.finishedAt) continue;
      placed.add(call.id);
      bars.push(callBar(call));
    }
  }
  for (const call of calls) if (!placed.has(call.id)) bars.push(callBar(call));
  if (bars.length === 0) return <p>No step has run yet.</p>;
  const origin = Math.min(...bars.map((b) => b.start));
  const span = Math.max(1, Math.max(...bars.map((b) => b.end)) - origin);
  return (
    <ol class="waterfall" aria-label="Steps and connection calls with their durations">
      {bars.map((bar) => (
        <li key={bar.key} class={`bar-${bar.kind}${bar.failed ? ' bar-failed' : ''}`}>
          <span class="bar-label">
            {bar.label}
            {bar.failed ? ' — failed' : ''}
            {bar.kind === 'seeded' ? ' — carried over' : ''}
          </span>
          <span class="bar-track">
            <span
              class="bar"
              style={{
                left: `${((bar.start - origin) / span) * 100}%`,
                width: `${Math.max(0.5, ((bar.end - bar.start) / span) * 100)}%`,
              }}
            />
          </span>
          <span class="bar-duration">{ms(bar.end - bar.start)}</span>
        </li>
      ))}
    </ol>
  );
}

function stepBar(step: Step): Bar {
  return {
    key: `step-${step.name}`,
    label: step.name,
    kind: step.seeded ? 'seeded' : 'step',
    failed: step.status === 'failed',
    start: step.startedAt,
    end: step.finishedAt,
  };
}

function callBar(call: ActivityEvent): Bar {
  const duration = Number(call.data.durationMs ?? 0);
  const status = call.data.status ?? 'no answer';
  return {
    key: `call-${call.id}`,
    label: `↳ ${String(call.data.method)} ${String(call.data.connection)} ${shortUrl(call.data.url)} → ${String(status)}`,
    kind: 'call',
    failed: typeof call.data.status !== 'number' || call.data.status >= 400,
    start: call.at - duration,
    end: call.at,
  };
}

const shortUrl = (url: unknown) => (typeof url === 'string' ? url.replace(/^https?:\/\/[^/]+/, '') : '');

function Actions({ detail, reload }: { detail: InstanceDetail; reload: () => void }) {
  const { instance } = detail;
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [input, setInput] = useState('');
  const [busy, setBusy] = useState(false);
  const finished = !UNFINISHED.has(instance.status);
  const act = async (what: string, path: string, body: unknown) => {
    setBusy(true);
    setError(null);
    try {
      await post(path, body);
      setMessage(what);
      setEditing(false);
      reload();
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const base = `/instances/${encodeURIComponent(instance.id)}`;
  if (instance.mode === 'sync') return <p>A sync instance answered its caller and cannot be rerun.</p>;
  return (
    <section class="actions" aria-label="Actions">
      {finished ? (
        <>
          {instance.status === 'failed' ? (
            <button
              type="button"
              disabled={busy}
              onClick={() =>
                act('Rerun from the failed step queued.', `${base}/rerun`, { from: 'failed-step' })
              }
            >
              Rerun from failed step
            </button>
          ) : null}
          <button
            type="button"
            disabled={busy}
            onClick={() => act('Rerun from the start queued.', `${base}/rerun`, { from: 'start' })}
          >
            Rerun from start
          </button>
          <button
            type="button"
            aria-expanded={editing}
            onClick={() => {
              setInput(JSON.stringify(instance.input, null, 2));
              setEditing(!editing);
            }}
          >
            Edit input and rerun
          </button>
        </>
      ) : null}
      {instance.status !== 'succeeded' && instance.status !== 'cancelled' ? (
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={() => confirm('Cancel this instance?') && act('Cancelled.', `${base}/cancel`, {})}
        >
          Cancel
        </button>
      ) : null}
      {editing ? (
        <form
          class="edit-input"
          onSubmit={(event) => {
            event.preventDefault();
            let parsed: unknown;
            try {
              parsed = JSON.parse(input);
            } catch {
              setError('The input is not valid JSON.');
              return;
            }
            if (input.includes('"[redacted]"')) {
              setError('The input still has redacted fields: fill in their values before the rerun.');
              return;
            }
            void act('Rerun from the start with the new input queued.', `${base}/rerun`, {
              from: 'start',
              input: parsed,
            });
          }}
        >
          <label for="new-input">Input (JSON)</label>
          <textarea id="new-input" rows={10} value={input} onInput={(e) => setInput(e.currentTarget.value)} />
          <button type="submit" disabled={busy}>
            Rerun with this input
          </button>
        </form>
      ) : null}
      <p aria-live="polite" class="notice">
        {message}
      </p>
      <Problem message={error} />
    </section>
  );
}
