import { useState } from 'preact/hooks';
import { ACTIVE, api, type InstanceDetail, NEVER, post, type Wait } from '../api';
import { time } from '../format';
import { useLoad } from '../hooks';
import { useCan } from '../session';
import { Ms, RunTimelineView } from '../timeline';
import { Json, Loading, Page, Problem, Scroller, StatusBadge } from '../ui';

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
  const { instance, runs, timeline, waitingFor } = detail;
  const [chosenRun, setChosenRun] = useState<number | null>(null);
  const run = chosenRun ?? instance.run;
  const current = timeline.runs.find((r) => r.run === instance.run);
  const shown = timeline.runs.find((r) => r.run === run);
  return (
    <>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={waitingFor?.kind === 'ordering' ? 'held' : instance.status} />
        </dd>
        {waitingFor ? (
          <>
            <dt>{waitingFor.kind === 'running' ? 'Now' : 'Waiting for'}</dt>
            <dd class="why">
              <Why why={waitingFor} />
            </dd>
          </>
        ) : null}
        <dt>Integration</dt>
        <dd>{instance.integrationId}</dd>
        <dt>Tracking</dt>
        <dd>
          {Object.entries(instance.tracking)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ') || '—'}
        </dd>
        {instance.cloudEvent ? (
          <>
            <dt>CloudEvent</dt>
            <dd>
              <a href={`#/instances?cloudEvent=${encodeURIComponent(`type=${instance.cloudEvent.type}`)}`}>
                {instance.cloudEvent.type}
              </a>{' '}
              from {instance.cloudEvent.source}
              {instance.cloudEvent.subject === null ? '' : `, subject ${instance.cloudEvent.subject}`} (id{' '}
              {instance.cloudEvent.id})
            </dd>
          </>
        ) : null}
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
        <dt>Accepted</dt>
        <dd>{time(current?.acceptedAt ?? instance.createdAt)}</dd>
        <dt>Finished</dt>
        <dd>{time(current?.finishedAt)}</dd>
        {detail.events.some((e) => e.type === 'accepted' && e.data.source === 'console') ? (
          <>
            <dt>Origin</dt>
            <dd>Started from the console</dd>
          </>
        ) : null}
        <dt>Duration</dt>
        <dd class="duration">
          {current ? (
            <>
              <Ms value={current.totalMs} /> {current.finishedAt === null ? 'so far ' : ''}(accepted →{' '}
              {current.finishedAt === null ? 'now' : 'finished'}): <Ms value={current.runningMs} /> running,{' '}
              <Ms value={current.waitingMs} /> waiting
            </>
          ) : (
            '—'
          )}
        </dd>
        {detail.children ? (
          <>
            <dt>Children</dt>
            <dd class="children">
              <Children counts={detail.children} parent={instance.id} />
            </dd>
          </>
        ) : null}
        {instance.traceId ? (
          <>
            <dt>Trace</dt>
            <dd>
              <code class="trace-id" title="W3C trace id: find the instance's spans in your tracing backend">
                {instance.traceId}
              </code>
            </dd>
          </>
        ) : null}
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
      {shown ? <RunTimelineView run={shown} now={timeline.now} /> : null}
      <Waits waits={detail.waits} />
      <div class="columns">
        <Json label="Input" value={instance.input} />
        <Json label="Output" value={instance.output} />
      </div>
      <h2>Runs</h2>
      <Scroller label="Runs (scrolls sideways on a narrow screen)">
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
                  {/* An unfinished run is where its instance is (queued, held, retrying …), not "running". */}
                  <StatusBadge
                    status={
                      run.status !== 'running' || run.run !== instance.run
                        ? run.status
                        : waitingFor?.kind === 'ordering'
                          ? 'held'
                          : instance.status
                    }
                  />
                </td>
                <td>{time(run.startedAt)}</td>
                <td>{time(run.finishedAt)}</td>
                <td>{run.error?.message ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Scroller>
    </>
  );
}

type WaitingFor = NonNullable<InstanceDetail['waitingFor']>;
type ChildCounts = NonNullable<InstanceDetail['children']>;

/** Why an unfinished instance is not done yet, in plain words (the API's `waitingFor`). */
function Why({ why }: { why: WaitingFor }) {
  switch (why.kind) {
    case 'running':
      return (
        <>
          Running attempt {why.attempt}, since {time(why.since)}
        </>
      );
    case 'ordering':
      return (
        <>
          Queued behind{' '}
          <a href={`#/instances/${encodeURIComponent(why.holder.id)}`}>
            {why.holder.integrationId} {why.holder.id.slice(-12)}
          </a>{' '}
          (<StatusBadge status={why.holder.status} />) of ordering key <code>{why.orderingKey}</code>
          {why.holder.status === 'failed'
            ? ': it keeps the key until it is rerun or cancelled'
            : ': it runs first'}
        </>
      );
    case 'retry':
      return (
        <>
          Next attempt at {time(why.at)}, after the error{why.error.code ? ` (${why.error.code})` : ''}:{' '}
          {why.error.message}
        </>
      );
    case 'circuit':
      return (
        <>
          The circuit of connection <strong>{why.connection}</strong> is open
          {why.until === null ? '' : `; next probe at ${time(why.until)}`}
        </>
      );
    case 'worker':
      return <>A free worker slot: due since {time(why.since)}, nothing holds it</>;
    case 'scheduled':
      return <>Its time: scheduled for {time(why.at)}</>;
    case 'wait':
      return (
        <>
          {why.wait === 'sleep'
            ? `Sleep "${why.step}" until ${until(why.until)}`
            : why.wait === 'callback'
              ? `A call to the callback URL of "${why.step}" (timeout: ${until(why.until)})`
              : `Event ${why.event}${why.match && Object.keys(why.match).length > 0 ? ` where ${JSON.stringify(why.match)}` : ''} ("${why.step}", timeout: ${until(why.until)})`}
        </>
      );
    case 'children':
      return (
        <>
          Its children: <Children counts={why.children} /> — next check at {time(why.at)}
        </>
      );
  }
}

/** A fan-out's (or hand-off's) children: how many are done, by status. */
function Children({ counts, parent }: { counts: ChildCounts; parent?: string }) {
  const done = (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
  const parts = (['succeeded', 'failed', 'cancelled', 'queued', 'running', 'retrying', 'waiting'] as const)
    .filter((status) => (counts[status] ?? 0) > 0)
    .map((status) => `${counts[status]} ${status}`);
  return (
    <>
      <progress max={counts.total} value={done} aria-label="Children done" /> {done} of {counts.total} done
      {parts.length > 0 ? ` (${parts.join(', ')})` : ''}
      {parent ? (
        <>
          {' '}
          <a href={`#/instances?parent=${encodeURIComponent(parent)}`}>list them</a>
        </>
      ) : null}
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
      <Scroller label="Waits (scrolls sideways on a narrow screen)">
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
      </Scroller>
    </section>
  );
}

function Actions({ detail, reload }: { detail: InstanceDetail; reload: () => void }) {
  const { instance } = detail;
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [input, setInput] = useState('');
  const [busy, setBusy] = useState(false);
  const finished = !UNFINISHED.has(instance.status);
  const operator = useCan('operator');
  const admin = useCan('admin');
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
  // A role without these actions sees none of them (the API would refuse them).
  if (!operator) return null;
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
          {admin ? (
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
          ) : null}
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
