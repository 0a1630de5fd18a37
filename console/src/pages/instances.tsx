import { useEffect, useState } from 'preact/hooks';
import { api, followActivity, INSTANCE_STATUSES, type Instance, type IntegrationSummary } from '../api';
import { ms, time } from '../format';
import { navigate, useLoad } from '../hooks';
import { Loading, Page, Problem, StatusBadge } from '../ui';

const LIST_CHANGES = new Set([
  'accepted',
  'started',
  'retry.scheduled',
  'wait.started',
  'wait.resumed',
  'succeeded',
  'failed',
  'rerun',
  'cancelled',
]);
// `parent`: the children of an instance (linked from its page), kept while the other filters change.
const FIELDS = ['integration', 'status', 'tracking', 'cloudEvent', 'from', 'to', 'parent'] as const;
const PAGE = 50;
const MOST = 1000;

export function InstancesPage({ query }: { query: URLSearchParams }) {
  const filter = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) ?? ''])) as Record<
    (typeof FIELDS)[number],
    string
  >;
  const key = JSON.stringify(filter);
  const integrations = useLoad(() => api<{ items: IntegrationSummary[] }>('/integrations'), []);
  // Grows with "Show more"; the list stays one query, so live reloads keep every row shown.
  const [limit, setLimit] = useState(PAGE);
  const list = useLoad(
    () => api<{ items: Instance[]; nextCursor: string | null }>(`/instances?${toQuery(filter, limit)}`),
    [key],
  );
  const live = useLiveReload(filter.integration, list.reload);

  return (
    <Page title="Instances">
      <form
        class="filters"
        aria-label="Filter instances"
        onSubmit={(event) => {
          event.preventDefault();
          const form = new FormData(event.currentTarget);
          navigate(
            '/instances',
            Object.fromEntries(FIELDS.map((f) => [f, String(form.get(f) ?? filter[f]).trim()])),
          );
        }}
        key={key}
      >
        <label>
          Tracking value
          <input
            name="tracking"
            type="search"
            placeholder="Order number, employee id…"
            defaultValue={filter.tracking}
          />
        </label>
        <label>
          CloudEvent
          <input
            name="cloudEvent"
            type="search"
            placeholder="Type, source or subject"
            defaultValue={filter.cloudEvent}
          />
        </label>
        <label>
          Integration
          <select name="integration" defaultValue={filter.integration}>
            <option value="">All</option>
            {integrations.data?.items.map((i) => (
              <option key={i.id} value={i.id} selected={i.id === filter.integration}>
                {i.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status" defaultValue={filter.status}>
            <option value="">All</option>
            {INSTANCE_STATUSES.map((s) => (
              // Selected explicitly, as the integration's: the select's defaultValue alone showed "All".
              <option key={s} value={s} selected={s === filter.status}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created from
          <input name="from" type="datetime-local" defaultValue={filter.from} />
        </label>
        <label>
          Created before
          <input name="to" type="datetime-local" defaultValue={filter.to} />
        </label>
        <button type="submit">Search</button>
      </form>
      <p class="live" aria-live="polite">
        {live ? 'Live: new instances appear as they come.' : 'Connecting to the live stream…'}
      </p>
      <Problem message={list.error} />
      <Loading when={list.data}>
        {() =>
          list.data!.items.length === 0 ? (
            <p>No instance matches.</p>
          ) : (
            <div class="table-scroll">
              <table>
                <caption>Newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Instance</th>
                    <th scope="col">Integration</th>
                    <th scope="col">Status</th>
                    <th scope="col">Tracking</th>
                    <th scope="col">Created</th>
                    <th scope="col">Duration</th>
                    <th scope="col">Run</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data!.items.map((instance) => (
                    <tr key={instance.id} data-instance={instance.id}>
                      <th scope="row">
                        <a href={`#/instances/${encodeURIComponent(instance.id)}`}>
                          {instance.id.slice(-12)}
                        </a>
                      </th>
                      <td>{instance.integrationId}</td>
                      <td>
                        <StatusBadge status={instance.status} />
                      </td>
                      <td>
                        {Object.entries(instance.tracking)
                          .map(([k, v]) => `${k}: ${v}`)
                          .join(', ')}
                      </td>
                      <td>{time(instance.createdAt)}</td>
                      <td>{ms(instance.durationMs)}</td>
                      <td>{instance.run}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {list.data!.nextCursor !== null && limit < MOST ? (
                <button
                  type="button"
                  class="secondary"
                  onClick={() => {
                    setLimit(limit + PAGE);
                    list.reload();
                  }}
                >
                  Show {PAGE} more
                </button>
              ) : null}
            </div>
          )
        }
      </Loading>
    </Page>
  );
}

function toQuery(filter: Record<string, string>, limit: number): string {
  const params = new URLSearchParams({ limit: String(limit) });
  for (const [name, value] of Object.entries(filter)) {
    if (value === '') continue;
    params.set(name, name === 'from' || name === 'to' ? new Date(value).toISOString() : value);
  }
  return params.toString();
}

/** Reloads the list shortly after the live stream tells of a change; true once connected. */
function useLiveReload(integration: string, reload: () => void): boolean {
  const [live, setLive] = useState(false);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = followActivity(
      integration ? { integration } : {},
      (event) => {
        if (!LIST_CHANGES.has(event.type) || timer) return;
        timer = setTimeout(() => {
          timer = null;
          reload();
        }, 250);
      },
      () => setLive(true),
    );
    return () => {
      setLive(false);
      stop();
      if (timer) clearTimeout(timer);
    };
  }, [integration, reload]);
  return live;
}
