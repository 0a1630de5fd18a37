/**
 * The overview: stored figures per minute (last hour) or per hour (last day) from the server, so
 * that they survive a reload and a restart; the activity stream only says when to read them again.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, followActivity, type IntegrationSummary, type Overview } from '../api';
import { LineChart, viewerZone } from '../chart';
import { ms, percent } from '../format';
import { useLoad } from '../hooks';
import { Loading, Page, Problem, StatusBadge } from '../ui';

type Window = 'hour' | 'day';

/** Activity is read again at most this often; sync calls, which have no events, by the timer. */
const AFTER_ACTIVITY_MS = 5_000;
const EVERY_MS = 15_000;

export function OverviewPage() {
  const { data, error } = useLoad(() => api<{ items: IntegrationSummary[] }>('/integrations'), [], 5_000);
  const [span, setSpan] = useState<Window>('hour');
  const figures = useOverview(span);
  return (
    <Page title="Overview">
      <Problem message={error ?? figures.error} />
      <h2>Work now</h2>
      <Loading when={figures.data}>{() => <WorkNow overview={figures.data!} />}</Loading>
      <h2>Throughput and failures</h2>
      <div class="actions">
        <span>Window:</span>
        {(['hour', 'day'] as const).map((w) => (
          <button
            key={w}
            type="button"
            class={span === w ? '' : 'secondary'}
            aria-pressed={span === w}
            onClick={() => setSpan(w)}
          >
            {w === 'hour' ? 'Last hour, per minute' : 'Last day, per hour'}
          </button>
        ))}
        <span class="live" aria-live="polite">
          {figures.data
            ? `Stored figures as of ${clock(figures.data.until)}; updated as activity arrives`
            : ''}
        </span>
      </div>
      <Loading when={figures.data}>{() => <Charts overview={figures.data!} />}</Loading>
      <h2>Integrations</h2>
      <Loading when={data}>
        {() => (
          <div class="table-scroll">
            <table>
              <caption>
                Instances created in the last hour; durations and error rate of the last 24 hours
              </caption>
              <thead>
                <tr>
                  <th scope="col">Integration</th>
                  <th scope="col">Mode</th>
                  <th scope="col">Throughput</th>
                  <th scope="col">p50</th>
                  <th scope="col">p95</th>
                  <th scope="col">p99</th>
                  <th scope="col">Error rate</th>
                  <th scope="col">Advice</th>
                  <th scope="col">Test</th>
                </tr>
              </thead>
              <tbody>
                {data!.items.map((integration) => {
                  const day = integration.stats.windows['24h'];
                  const hour = integration.stats.windows['1h'];
                  return (
                    <tr key={integration.id}>
                      <th scope="row">
                        <a href={`#/instances?integration=${encodeURIComponent(integration.id)}`}>
                          {integration.id}
                        </a>
                      </th>
                      <td>{integration.mode}</td>
                      <td>{hour.total} in the last hour</td>
                      <td>{ms(day.p50)}</td>
                      <td>{ms(day.p95)}</td>
                      <td>{ms(day.p99)}</td>
                      <td>{percent(day.failureRate)}</td>
                      <td>
                        {integration.advice.length === 0
                          ? 'None'
                          : integration.advice.map((a) => <p key={a.kind}>{a.message}</p>)}
                      </td>
                      <td>
                        <a
                          href={`#/integrations/${encodeURIComponent(integration.id)}/run`}
                          aria-label={`Run ${integration.id} with test input`}
                        >
                          Run
                        </a>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Loading>
    </Page>
  );
}

/** The stored figures of a window, read again after activity (throttled) and every 15 s. */
function useOverview(span: Window) {
  const loaded = useLoad(() => api<Overview>(`/overview?window=${span}`), [span], EVERY_MS);
  const { reload } = loaded;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = followActivity({}, (event) => {
      if (timer !== undefined) return;
      if (event.type !== 'accepted' && event.type !== 'succeeded' && event.type !== 'failed') return;
      timer = setTimeout(() => {
        timer = undefined;
        reload();
      }, AFTER_ACTIVITY_MS);
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [reload]);
  return loaded;
}

const clock = (at: number) => new Date(at).toLocaleTimeString();

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function WorkNow({ overview }: { overview: Overview }) {
  const oldest = overview.oldestUnfinished;
  return (
    <>
      <dl class="facts">
        <dt>Backlog</dt>
        <dd data-figure="backlog">{overview.backlog}</dd>
        <dt>Running</dt>
        <dd data-figure="running">{overview.running}</dd>
        <dt>Retrying</dt>
        <dd data-figure="retrying">{overview.retrying}</dd>
        <dt>Waiting</dt>
        <dd data-figure="waiting">{overview.waiting}</dd>
        <dt>Oldest unfinished</dt>
        <dd data-figure="oldest">
          {oldest ? (
            <>
              <a href={`#/instances/${encodeURIComponent(oldest.id)}`}>{oldest.integrationId}</a>{' '}
              <StatusBadge status={oldest.status} /> for {age(oldest.ageMs)} (since {clock(oldest.since)})
            </>
          ) : (
            'None'
          )}
        </dd>
      </dl>
      <p class="live">
        Backlog: queued or retrying instances due now, waiting for a worker (or held behind their ordering
        key). Waiting: in a durable wait (a sleep, an event or a callback).
      </p>
    </>
  );
}

function Charts({ overview }: { overview: Overview }) {
  const per = overview.window === 'hour' ? 'minute' : 'hour';
  const data = useMemo(() => {
    const x = overview.buckets.map((b) => b.start / 1000);
    return {
      counts: [
        x,
        overview.buckets.map((b) => b.accepted),
        overview.buckets.map((b) => b.succeeded),
        overview.buckets.map((b) => b.failed),
      ],
      p95: [x, overview.buckets.map((b) => b.p95)],
    };
  }, [overview]);
  const shown = overview.buckets.filter((b) => b.accepted > 0);
  const total = (key: 'accepted' | 'succeeded' | 'failed') =>
    overview.buckets.reduce((n, b) => n + b[key], 0);
  return (
    <>
      <p>
        {overview.window === 'hour' ? 'In the last hour' : 'In the last day'}:{' '}
        <strong>{total('accepted')}</strong> accepted, <strong>{total('succeeded')}</strong> succeeded,{' '}
        <strong>{total('failed')}</strong> failed (of the instances accepted in each {per}, as they stand
        now). Times in {viewerZone()}.
      </p>
      <LineChart
        key={`counts-${overview.window}`}
        title={`Instances accepted, succeeded and failed per ${per}`}
        yLabel={`Instances per ${per}`}
        bucketS={overview.bucketMs / 1000}
        series={[
          { label: 'accepted', color: '#a5b8f3', bars: { size: 0.8, align: 0 } },
          { label: 'succeeded', color: '#1b7f3b', bars: { size: 0.4, align: 1 } },
          { label: 'failed', color: '#b3261e', bars: { size: 0.4, align: -1 } },
        ]}
        data={data.counts}
      />
      <LineChart
        key={`p95-${overview.window}`}
        title={`p95 duration per ${per} (ms); no point where nothing finished`}
        yLabel="p95 duration (ms)"
        bucketS={overview.bucketMs / 1000}
        series={[{ label: 'p95', color: '#8a4baf' }]}
        data={data.p95}
      />
      <details>
        <summary>
          Figures as a table ({shown.length} {shown.length === 1 ? per : `${per}s`} with instances)
        </summary>
        <div class="table-scroll">
          <table class="overview-figures">
            <caption>
              Per {per} in which instances were accepted; times in {viewerZone()}
            </caption>
            <thead>
              <tr>
                <th scope="col">{per === 'minute' ? 'Minute' : 'Hour'} from</th>
                <th scope="col">Accepted</th>
                <th scope="col">Succeeded</th>
                <th scope="col">Failed</th>
                <th scope="col">p95</th>
                <th scope="col">Failure rate</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((b) => (
                <tr key={b.start} data-start={b.start}>
                  <th scope="row">{new Date(b.start).toLocaleString()}</th>
                  <td>{b.accepted}</td>
                  <td>{b.succeeded}</td>
                  <td>{b.failed}</td>
                  <td>{ms(b.p95)}</td>
                  <td>
                    {percent(b.succeeded + b.failed === 0 ? null : b.failed / (b.succeeded + b.failed))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </>
  );
}
