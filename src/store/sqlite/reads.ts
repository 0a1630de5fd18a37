/**
 * The SQLite store's reads: instances, runs, steps and events, the activity stream, statistics
 * and the few reads the dispatcher makes while idle. None of them writes; each runs in the caller's
 * store method after its closed check.
 */
import { ACTIVE, DUE, emptyCounts, MEASURED, WAITING } from '../../lifecycle/index.js';
import type { ActivityEvent, ChildCounts, Instance, InstanceStatus, Mode, Run, Step } from '../../model.js';
import {
  asArray,
  attachCloudEvents,
  type CloudEventRow,
  cloudEventColumn,
  currentRunFromRow,
  type EventRow,
  eventFromRow,
  type InstanceRow,
  instanceFromRow,
  parseTrackingFilter,
  type RunRow,
  runFromRow,
  type StepRow,
  stepFromRow,
} from '../rows.js';
import { statusIn, statusIs } from '../sql.js';
import type {
  EventQuery,
  EventStreamPage,
  EventStreamRequest,
  InstanceFilter,
  IntegrationStats,
  ListRequest,
  OrderingHolder,
  OverviewFigures,
  OverviewRequest,
  Page,
  RunKey,
  StatsRequest,
} from '../store.js';
import { EVENTS_PER_ROW } from './insert.js';
import type { Sqlite } from './statements.js';

export function getInstance(s: Sqlite, id: string): Instance | null {
  const row = s.stmt.byId.get(id) as InstanceRow | undefined;
  if (!row) return null;
  const cloudEvent = s.stmt.cloudEventOf.get(id) as CloudEventRow | undefined;
  return attachCloudEvents([instanceFromRow(row)], cloudEvent ? [cloudEvent] : [])[0]!;
}

export function listInstances(s: Sqlite, request: ListRequest): Page<Instance> {
  const limit = Math.max(1, Math.min(request.limit, 1000));
  const extra: string[] = [];
  const params: unknown[] = [];
  if (request.cursor) {
    extra.push('seq < ?');
    params.push(Number(request.cursor));
  }
  const rows = selectRows(s, request, extra.join(' AND ') || null, params, limit + 1);
  const items = rows.slice(0, limit).map(instanceFromRow);
  if (items.length > 0) {
    const events = s.stmt.cloudEventsOf.all(JSON.stringify(items.map((i) => i.id))) as CloudEventRow[];
    attachCloudEvents(items, events);
  }
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? String(last.seq) : null };
}

export function countInstances(s: Sqlite, filter: InstanceFilter): number {
  const { where, params } = filterSql(filter);
  return (s.db.prepare(`SELECT count(*) AS n FROM instances WHERE ${where}`).get(...params) as { n: number })
    .n;
}

/** Instances of a filter (and an extra condition), newest first. */
export function selectRows(
  s: Sqlite,
  filter: InstanceFilter,
  extra: string | null,
  extraParams: unknown[] = [],
  limit?: number,
) {
  const { where, params } = filterSql(filter);
  const sql = `SELECT * FROM instances WHERE ${where}${extra ? ` AND ${extra}` : ''} ORDER BY seq DESC${
    limit ? ` LIMIT ${limit}` : ''
  }`;
  return s.db.prepare(sql).all(...params, ...extraParams) as InstanceRow[];
}

export function getRuns(s: Sqlite, instanceId: string): Run[] {
  const row = s.stmt.byId.get(instanceId) as InstanceRow | undefined;
  if (!row) return [];
  const archived = (s.stmt.runsOf.all(instanceId) as RunRow[]).map(runFromRow);
  return [...archived, currentRunFromRow(row)];
}

export function getSteps(s: Sqlite, instanceId: string, run?: number): Step[] {
  const rows = run === undefined ? s.stmt.stepsOf.all(instanceId) : s.stmt.stepsOfRun.all(instanceId, run);
  return (rows as StepRow[]).map(stepFromRow);
}

export function failedSteps(s: Sqlite, runs: RunKey[]): Record<string, string> {
  const found: Record<string, string> = {};
  const last = s.db.prepare(
    "SELECT name FROM steps WHERE instance_id = ? AND run = ? AND status = 'failed' ORDER BY position DESC LIMIT 1",
  );
  // One indexed look-up per run (the steps' primary key leads with them): no round trip in SQLite.
  for (const { instanceId, run } of runs) {
    const row = last.get(instanceId, run) as { name: string } | undefined;
    if (row) found[instanceId] = row.name;
  }
  return found;
}

/** A row of the events table: one event in its columns, the ones written with it in `more`. */
interface EventsRow extends EventRow {
  id: number;
  more: string | null;
}

/**
 * The events of rows (in id order) with an id above `afterId`, in order: a row's first event has
 * the row id times EVENTS_PER_ROW, each further one the next id.
 */
function expand(
  rows: EventsRow[],
  afterId: number,
  keep?: (event: ActivityEvent) => boolean,
): ActivityEvent[] {
  const events: ActivityEvent[] = [];
  for (const row of rows) {
    const base = row.id * EVENTS_PER_ROW;
    const first = { ...eventFromRow(row), id: base };
    if (first.id > afterId && (!keep || keep(first))) events.push(first);
    if (row.more === null) continue;
    const more = JSON.parse(row.more) as [ActivityEvent['type'], number, ActivityEvent['data']][];
    for (let k = 0; k < more.length; k++) {
      const [type, at, data] = more[k]!;
      const event = { ...first, id: base + k + 1, type, at, data };
      if (event.id > afterId && (!keep || keep(event))) events.push(event);
    }
  }
  return events;
}

/** The first row that can hold an event with an id above `afterId`. */
const firstRowAfter = (afterId: number) => Math.floor((afterId + 1) / EVENTS_PER_ROW);

/** The last event id a row can hold. */
const rowEnd = (row: { id: number }) => row.id * EVENTS_PER_ROW + EVENTS_PER_ROW - 1;

export function getEvents(s: Sqlite, query: EventQuery): ActivityEvent[] {
  const limit = Math.max(1, Math.min(query.limit, 10_000));
  const where = ['id >= ?'];
  const params: unknown[] = [];
  if (query.instanceId) {
    where.push('instance_id = ?');
    params.push(query.instanceId);
  }
  if (query.integrationId) {
    where.push('integration_id = ?');
    params.push(query.integrationId);
  }
  const select = s.db.prepare(`SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`);
  // Rows hold one or more events: read rows until `limit` events are found or none are left.
  const events: ActivityEvent[] = [];
  let after = query.afterId ?? 0;
  for (;;) {
    const rows = select.all(firstRowAfter(after), ...params, limit) as EventsRow[];
    events.push(...expand(rows, after));
    if (rows.length < limit || events.length >= limit) break;
    after = Math.max(after, rowEnd(rows[rows.length - 1]!));
  }
  return events.slice(0, limit);
}

/** The stream's end: beyond every event of the newest row. */
function headCursor(s: Sqlite): number {
  const row = s.db.prepare('SELECT coalesce(max(id), 0) AS id FROM events').get() as { id: number };
  return row.id === 0 ? 0 : rowEnd(row);
}

/** A page of the activity stream after a cursor (an event id). */
export function readEventStream(s: Sqlite, request: EventStreamRequest): EventStreamPage {
  // One writer: ids are assigned in commit order, so the id itself is a gap-free cursor.
  const after = Number.parseInt(request.after, 10) || 0;
  return s.db.transaction(() => {
    const where = ['e.id >= ?'];
    const params: unknown[] = [];
    let join = '';
    if (request.integrationId) {
      where.push('e.integration_id = ?');
      params.push(request.integrationId);
    }
    const types = request.types ? new Set<string>(request.types) : null;
    if (request.types) {
      // A row qualifies when any of its events is of a type asked for; the others are left out below.
      where.push(`(e.type IN (SELECT value FROM json_each(?)) OR (e.more IS NOT NULL AND EXISTS (
        SELECT 1 FROM json_each(e.more) AS m WHERE m.value ->> 0 IN (SELECT value FROM json_each(?)))))`);
      params.push(JSON.stringify(request.types), JSON.stringify(request.types));
    }
    if (request.tracking !== undefined) {
      const { name, value } = parseTrackingFilter(request.tracking);
      join = 'JOIN instances i ON i.id = e.instance_id';
      where.push('(i.track_1 = ? OR i.track_2 = ? OR i.track_3 = ?)');
      params.push(value, value, value);
      if (name) {
        where.push('json_extract(i.tracking, ?) = ?');
        params.push(`$."${name}"`, value);
      }
    }
    const limit = Math.max(1, Math.min(request.limit, 10_000));
    const select = s.db.prepare(
      `SELECT e.* FROM events e ${join} WHERE ${where.join(' AND ')} ORDER BY e.id LIMIT ?`,
    );
    const keep = types ? (event: ActivityEvent) => types.has(event.type) : undefined;
    // Rows hold one or more events, some of them not asked for: read rows until more than `limit`
    // events are found (the page is full and continues after its last event) or none are left.
    const found: ActivityEvent[] = [];
    let from = after;
    let exhausted = false;
    while (found.length <= limit) {
      const rows = select.all(firstRowAfter(from), ...params, limit) as EventsRow[];
      found.push(...expand(rows, from, keep));
      if (rows.length < limit) {
        exhausted = true;
        break;
      }
      from = rowEnd(rows[rows.length - 1]!);
    }
    const events = found.slice(0, limit).map((event) => ({ ...event, cursor: String(event.id) }));
    const cursor =
      found.length > limit
        ? events[events.length - 1]!.cursor
        : exhausted
          ? String(Math.max(headCursor(s), after))
          : String(from);
    return { events, cursor };
  })();
}

export function eventStreamHead(s: Sqlite): string {
  return String(headCursor(s));
}

/** Figures per integration and mode; `active` and the timed ones by the lifecycle's sets. */
const STATS = `SELECT integration_id, mode, count(*) AS total,
    sum(${statusIs('succeeded')}) AS succeeded, sum(${statusIs('failed')}) AS failed,
    sum(${statusIs('cancelled')}) AS cancelled, sum(${statusIn(ACTIVE)}) AS active,
    sum(${statusIn(MEASURED)} AND duration_ms IS NOT NULL) AS timed,
    coalesce(avg(CASE WHEN ${statusIn(MEASURED)} THEN max(attempt - 1, 0) END), 0) AS retries
  FROM instances WHERE created_at >= @since AND created_at < @until
  GROUP BY integration_id, mode ORDER BY integration_id`;

const DURATION_AT_RANK = `SELECT duration_ms FROM instances
  WHERE integration_id = @id AND created_at >= @since AND created_at < @until
    AND ${statusIn(MEASURED)} AND duration_ms IS NOT NULL
  ORDER BY duration_ms LIMIT 1 OFFSET @offset`;

const TOP_ERRORS = `SELECT json_extract(error, '$.code') AS code, count(*) AS count FROM instances
  WHERE integration_id = @id AND created_at >= @since AND created_at < @until AND ${statusIs('failed')}
  GROUP BY code ORDER BY count DESC, code LIMIT 5`;

const FAILURES_BY_CONNECTION = `SELECT json_extract(error, '$.details.connection') AS connection, count(*) AS count
  FROM instances
  WHERE integration_id = @id AND created_at >= @since AND created_at < @until AND ${statusIs('failed')}
    AND json_extract(error, '$.details.connection') IS NOT NULL
  GROUP BY connection`;

export function integrationStats(s: Sqlite, request: StatsRequest): IntegrationStats[] {
  const window = { since: request.since, until: request.until };
  const rows = s.db.prepare(STATS).all(window) as {
    integration_id: string;
    mode: Mode;
    total: number;
    succeeded: number;
    failed: number;
    cancelled: number;
    active: number;
    timed: number;
    retries: number;
  }[];
  const rank = s.db.prepare(DURATION_AT_RANK);
  const errors = s.db.prepare(TOP_ERRORS);
  const byConnection = s.db.prepare(FAILURES_BY_CONNECTION);
  return rows.map((row) => {
    // Nearest rank: the smallest value with at least p of the values at or below it.
    const percentile = (p: number) =>
      row.timed === 0
        ? null
        : (
            rank.get({ ...window, id: row.integration_id, offset: Math.ceil(p * row.timed) - 1 }) as {
              duration_ms: number;
            }
          ).duration_ms;
    return {
      integrationId: row.integration_id,
      mode: row.mode,
      total: row.total,
      succeeded: row.succeeded,
      failed: row.failed,
      cancelled: row.cancelled,
      active: row.active,
      p50: percentile(0.5),
      p95: percentile(0.95),
      p99: percentile(0.99),
      retriesPerInstance: row.retries,
      errors: errors.all({ ...window, id: row.integration_id }) as { code: string | null; count: number }[],
      failuresByConnection: Object.fromEntries(
        (
          byConnection.all({ ...window, id: row.integration_id }) as { connection: string; count: number }[]
        ).map((r) => [r.connection, r.count]),
      ),
    };
  });
}

/** The bucket of an instance: parameters are bound as REAL, so the quotient is truncated explicitly. */
const BUCKET = 'CAST((created_at - @since) / @bucketMs AS INTEGER)';
const IN_WINDOW = 'created_at >= @since AND created_at < @until';

const BUCKET_COUNTS = `SELECT ${BUCKET} AS bucket, count(*) AS accepted,
    sum(${statusIs('succeeded')}) AS succeeded, sum(${statusIs('failed')}) AS failed
  FROM instances WHERE ${IN_WINDOW} GROUP BY bucket ORDER BY bucket`;

/**
 * Nearest rank per bucket: the first duration, in order, whose rank r reaches 0.95 × n — computed
 * in floating point as PostgreSQL's percentile_disc does, so that both stores pick the same one.
 */
const BUCKET_P95 = `SELECT bucket, duration_ms FROM (
    SELECT ${BUCKET} AS bucket, duration_ms,
      row_number() OVER (PARTITION BY ${BUCKET} ORDER BY duration_ms) AS r,
      count(*) OVER (PARTITION BY ${BUCKET}) AS n
    FROM instances WHERE ${IN_WINDOW} AND ${statusIn(MEASURED)} AND duration_ms IS NOT NULL)
  WHERE r >= 0.95 * n AND r - 1 < 0.95 * n`;

/** Due and not waiting durably: work a worker slot would take (as the admission gauge counts it). */
const BACKLOG = DUE.filter((status) => !WAITING.includes(status));

/** The unfinished instances, read through the status index. */
const UNFINISHED = `SELECT coalesce(sum(${statusIn(BACKLOG)} AND run_at <= @now), 0) AS backlog,
    coalesce(sum(${statusIs('queued')}), 0) AS queued, coalesce(sum(${statusIs('running')}), 0) AS running,
    coalesce(sum(${statusIs('retrying')}), 0) AS retrying, coalesce(sum(${statusIn(WAITING)}), 0) AS waiting
  FROM instances WHERE ${statusIn(ACTIVE)}`;

const OLDEST_UNFINISHED = `SELECT id, integration_id, status, run_started_at FROM instances
  WHERE ${statusIn(ACTIVE)} ORDER BY run_started_at, seq LIMIT 1`;

export function overview(s: Sqlite, request: OverviewRequest): OverviewFigures {
  const window = { since: request.since, until: request.until, bucketMs: request.bucketMs };
  return s.db.transaction(() => {
    const p95 = new Map(
      (s.db.prepare(BUCKET_P95).all(window) as { bucket: number; duration_ms: number }[]).map((row) => [
        row.bucket,
        row.duration_ms,
      ]),
    );
    const buckets = (
      s.db.prepare(BUCKET_COUNTS).all(window) as {
        bucket: number;
        accepted: number;
        succeeded: number;
        failed: number;
      }[]
    ).map((row) => ({
      start: request.since + row.bucket * request.bucketMs,
      accepted: row.accepted,
      succeeded: row.succeeded,
      failed: row.failed,
      p95: p95.get(row.bucket) ?? null,
    }));
    const counts = s.db.prepare(UNFINISHED).get({ now: request.now }) as Omit<
      OverviewFigures,
      'buckets' | 'oldestUnfinished'
    >;
    const oldest = s.db.prepare(OLDEST_UNFINISHED).get() as
      | { id: string; integration_id: string; status: InstanceStatus; run_started_at: number }
      | undefined;
    return {
      buckets,
      ...counts,
      oldestUnfinished: oldest
        ? {
            id: oldest.id,
            integrationId: oldest.integration_id,
            status: oldest.status,
            since: oldest.run_started_at,
          }
        : null,
    };
  })();
}

/** When the next instance of these integrations falls due or the next lease runs out. */
export function nextDueAt(s: Sqlite, integrationIds: string[]): number | null {
  let due: number | null = null;
  for (const id of new Set(integrationIds)) {
    const row = s.stmt.nextQueued.get(id) as { due: number | null };
    if (row.due !== null && (due === null || row.due < due)) due = row.due;
  }
  const lease = s.stmt.nextLeaseEnd.get(JSON.stringify(integrationIds)) as { due: number | null };
  if (lease.due !== null && (due === null || lease.due < due)) due = lease.due;
  return due;
}

export function countChildren(s: Sqlite, parentId: string): ChildCounts {
  const counts: ChildCounts = emptyCounts();
  for (const row of s.stmt.childCounts.all(parentId) as { status: keyof ChildCounts; n: number }[]) {
    counts[row.status] = row.n;
    counts.total += row.n;
  }
  return counts;
}

export function orderingHolder(s: Sqlite, orderingKey: string, seq: number): OrderingHolder | null {
  return (s.stmt.orderingHolder.get({ key: orderingKey, seq }) as OrderingHolder | undefined) ?? null;
}

/** WHERE clause of an instance filter, with positional parameters. */
function filterSql(filter: InstanceFilter): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const inList = (column: string, values: unknown[] | undefined) => {
    if (values === undefined) return;
    where.push(`${column} IN (SELECT value FROM json_each(?))`);
    params.push(JSON.stringify(values));
  };
  inList('id', filter.ids);
  inList('integration_id', asArray(filter.integrationId));
  inList('status', asArray(filter.status));
  if (filter.parentId !== undefined) {
    where.push('parent_id = ?');
    params.push(filter.parentId);
  }
  if (filter.createdAfter !== undefined) {
    where.push('created_at >= ?');
    params.push(filter.createdAfter);
  }
  if (filter.createdBefore !== undefined) {
    where.push('created_at < ?');
    params.push(filter.createdBefore);
  }
  if (filter.runStartedAfter !== undefined) {
    where.push('run_started_at >= ?');
    params.push(filter.runStartedAfter);
  }
  if (filter.acknowledged !== undefined) {
    where.push(`acknowledged_at IS ${filter.acknowledged ? 'NOT NULL' : 'NULL'}`);
  }
  if (filter.cloudEvent !== undefined) {
    const { attribute, value } = filter.cloudEvent;
    if (attribute === null) {
      where.push('id IN (SELECT instance_id FROM cloud_events WHERE type = ? OR source = ? OR subject = ?)');
      params.push(value, value, value);
    } else {
      where.push(`id IN (SELECT instance_id FROM cloud_events WHERE ${cloudEventColumn(attribute)} = ?)`);
      params.push(value);
    }
  }
  if (filter.tracking !== undefined) {
    const { name, value } = parseTrackingFilter(filter.tracking);
    where.push('(track_1 = ? OR track_2 = ? OR track_3 = ?)');
    params.push(value, value, value);
    if (name) {
      where.push('json_extract(tracking, ?) = ?');
      params.push(`$."${name}"`, value);
    }
  }
  return { where: where.length > 0 ? where.join(' AND ') : '1 = 1', params };
}
