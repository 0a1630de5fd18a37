/**
 * Reads of instances, runs and steps, the figures of integrations and of a fan-out's children, and
 * when work is next due.
 */
import { ACTIVE, DUE, emptyCounts, HOLDS_ORDER, LEASED, MEASURED, WAITING } from '../../lifecycle/index.js';
import type { ChildCounts, Instance, Run, Step } from '../../model.js';
import {
  asArray,
  attachCloudEvents,
  type CloudEventRow,
  cloudEventColumn,
  currentRunFromRow,
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
import type { PgConnection } from './connection.js';

export async function getInstance(db: PgConnection, id: string): Promise<Instance | null> {
  db.assertOpen();
  const { rows } = await db.q(db.pool, 'SELECT * FROM {{schema}}.instances WHERE id = $1', [id]);
  if (!rows[0]) return null;
  return (await withCloudEvents(db, [instanceFromRow(rows[0])]))[0]!;
}

export async function listInstances(db: PgConnection, request: ListRequest): Promise<Page<Instance>> {
  db.assertOpen();
  const limit = Math.max(1, Math.min(request.limit, 1000));
  const { where, params } = filterSql(request, 1);
  let sql = `SELECT * FROM {{schema}}.instances WHERE ${where}`;
  if (request.cursor) {
    params.push(request.cursor);
    sql += ` AND seq < $${params.length}::bigint`;
  }
  sql += ` ORDER BY seq DESC LIMIT ${limit + 1}`;
  const { rows } = await db.q(db.pool, sql, params);
  const items = await withCloudEvents(db, (rows as InstanceRow[]).slice(0, limit).map(instanceFromRow));
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? String(last.seq) : null };
}

export async function countInstances(db: PgConnection, filter: InstanceFilter): Promise<number> {
  db.assertOpen();
  const { where, params } = filterSql(filter, 1);
  const { rows } = await db.q(
    db.pool,
    `SELECT count(*)::int AS n FROM {{schema}}.instances WHERE ${where}`,
    params,
  );
  return rows[0].n;
}

export async function getRuns(db: PgConnection, instanceId: string): Promise<Run[]> {
  db.assertOpen();
  const current = await db.q(db.pool, 'SELECT * FROM {{schema}}.instances WHERE id = $1', [instanceId]);
  if (!current.rows[0]) return [];
  const { rows } = await db.q(db.pool, 'SELECT * FROM {{schema}}.runs WHERE instance_id = $1 ORDER BY run', [
    instanceId,
  ]);
  return [...(rows as RunRow[]).map(runFromRow), currentRunFromRow(current.rows[0])];
}

export async function getSteps(db: PgConnection, instanceId: string, run?: number): Promise<Step[]> {
  db.assertOpen();
  const { rows } =
    run === undefined
      ? await db.q(db.pool, 'SELECT * FROM {{schema}}.steps WHERE instance_id = $1 ORDER BY run, position', [
          instanceId,
        ])
      : await db.q(
          db.pool,
          'SELECT * FROM {{schema}}.steps WHERE instance_id = $1 AND run = $2 ORDER BY position',
          [instanceId, run],
        );
  return (rows as StepRow[]).map(stepFromRow);
}

export async function failedSteps(db: PgConnection, runs: RunKey[]): Promise<Record<string, string>> {
  db.assertOpen();
  if (runs.length === 0) return {};
  const { rows } = await db.q(
    db.pool,
    `SELECT DISTINCT ON (s.instance_id) s.instance_id, s.name
     FROM {{schema}}.steps s JOIN unnest($1::text[], $2::int[]) AS k(id, run)
       ON s.instance_id = k.id AND s.run = k.run
     WHERE s.status = 'failed'
     ORDER BY s.instance_id, s.position DESC`,
    [runs.map((r) => r.instanceId), runs.map((r) => r.run)],
  );
  return Object.fromEntries(
    (rows as { instance_id: string; name: string }[]).map((r) => [r.instance_id, r.name]),
  );
}

export async function integrationStats(db: PgConnection, request: StatsRequest): Promise<IntegrationStats[]> {
  db.assertOpen();
  const finished = `${statusIn(MEASURED)} AND duration_ms IS NOT NULL`;
  const { rows } = await db.q(
    db.pool,
    `SELECT integration_id, mode, count(*)::int AS total,
       count(*) FILTER (WHERE ${statusIs('succeeded')})::int AS succeeded,
       count(*) FILTER (WHERE ${statusIs('failed')})::int AS failed,
       count(*) FILTER (WHERE ${statusIs('cancelled')})::int AS cancelled,
       count(*) FILTER (WHERE ${statusIn(ACTIVE)})::int AS active,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p50,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p95,
       percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p99,
       coalesce(avg(greatest(attempt - 1, 0)) FILTER (WHERE ${statusIn(MEASURED)}), 0)::float8 AS retries
     FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2
     GROUP BY integration_id, mode ORDER BY integration_id`,
    [request.since, request.until],
  );
  const errors = await db.q(
    db.pool,
    `SELECT integration_id, code, count FROM (
       SELECT integration_id, error::jsonb ->> 'code' AS code, count(*)::int AS count,
         row_number() OVER (PARTITION BY integration_id ORDER BY count(*) DESC, error::jsonb ->> 'code') AS n
       FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2 AND ${statusIs('failed')}
       GROUP BY integration_id, error::jsonb ->> 'code') AS e
     WHERE n <= 5 ORDER BY integration_id, count DESC, code`,
    [request.since, request.until],
  );
  const byConnection = await db.q(
    db.pool,
    `SELECT integration_id, error::jsonb -> 'details' ->> 'connection' AS connection, count(*)::int AS count
     FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2 AND ${statusIs('failed')}
       AND error::jsonb -> 'details' ->> 'connection' IS NOT NULL
     GROUP BY 1, 2`,
    [request.since, request.until],
  );
  const toNumber = (value: string | number | null) => (value === null ? null : Number(value));
  return rows.map((row) => ({
    integrationId: row.integration_id,
    mode: row.mode,
    total: row.total,
    succeeded: row.succeeded,
    failed: row.failed,
    cancelled: row.cancelled,
    active: row.active,
    p50: toNumber(row.p50),
    p95: toNumber(row.p95),
    p99: toNumber(row.p99),
    retriesPerInstance: row.retries,
    errors: errors.rows
      .filter((e: { integration_id: string }) => e.integration_id === row.integration_id)
      .map((e: { code: string | null; count: number }) => ({ code: e.code, count: e.count })),
    failuresByConnection: Object.fromEntries(
      byConnection.rows
        .filter((r: { integration_id: string }) => r.integration_id === row.integration_id)
        .map((r: { connection: string; count: number }) => [r.connection, r.count]),
    ),
  }));
}

/** Due and not waiting durably: work a worker slot would take (as the admission gauge counts it). */
const BACKLOG = DUE.filter((status) => !WAITING.includes(status));

/**
 * The overview's figures. The window is read by `created_at`, as `integrationStats` reads it; the
 * unfinished instances through the partial indexes of the narrow state table (due, and leased),
 * whose predicates the status conditions repeat.
 */
export async function overview(db: PgConnection, request: OverviewRequest): Promise<OverviewFigures> {
  db.assertOpen();
  const finished = `${statusIn(MEASURED)} AND duration_ms IS NOT NULL`;
  const buckets = db.q(
    db.pool,
    `SELECT (created_at - $1::bigint) / $3::bigint AS bucket, count(*)::int AS accepted,
       count(*) FILTER (WHERE ${statusIs('succeeded')})::int AS succeeded,
       count(*) FILTER (WHERE ${statusIs('failed')})::int AS failed,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p95
     FROM {{schema}}.instances WHERE created_at >= $1::bigint AND created_at < $2::bigint
     GROUP BY 1 ORDER BY 1`,
    [request.since, request.until, request.bucketMs],
  );
  const unfinished = db.q(
    db.pool,
    `SELECT
       (SELECT count(*) FILTER (WHERE ${statusIn(BACKLOG)} AND run_at <= $1::bigint)::int
          FROM {{schema}}.instance_state WHERE ${statusIn(DUE)}) AS backlog,
       (SELECT count(*) FILTER (WHERE ${statusIs('queued')})::int
          FROM {{schema}}.instance_state WHERE ${statusIn(DUE)}) AS queued,
       (SELECT count(*)::int FROM {{schema}}.instance_state WHERE ${statusIn(LEASED)}) AS running,
       (SELECT count(*) FILTER (WHERE ${statusIs('retrying')})::int
          FROM {{schema}}.instance_state WHERE ${statusIn(DUE)}) AS retrying,
       (SELECT count(*) FILTER (WHERE ${statusIn(WAITING)})::int
          FROM {{schema}}.instance_state WHERE ${statusIn(DUE)}) AS waiting`,
    [request.now],
  );
  const oldest = db.q(
    db.pool,
    `SELECT r.id, r.integration_id, s.status, r.run_started_at
     FROM (SELECT seq, status FROM {{schema}}.instance_state WHERE ${statusIn(DUE)}
           UNION ALL SELECT seq, status FROM {{schema}}.instance_state WHERE ${statusIn(LEASED)}) AS s
     JOIN {{schema}}.instance_rows AS r ON r.seq = s.seq
     ORDER BY r.run_started_at, r.seq LIMIT 1`,
  );
  const [b, u, o] = await Promise.all([buckets, unfinished, oldest]);
  const first = o.rows[0];
  return {
    buckets: b.rows.map((row) => ({
      start: request.since + Number(row.bucket) * request.bucketMs,
      accepted: row.accepted,
      succeeded: row.succeeded,
      failed: row.failed,
      p95: row.p95 === null ? null : Number(row.p95),
    })),
    ...u.rows[0],
    oldestUnfinished: first
      ? {
          id: first.id,
          integrationId: first.integration_id,
          status: first.status,
          since: Number(first.run_started_at),
        }
      : null,
  };
}

export async function nextDueAt(db: PgConnection, integrationIds: string[]): Promise<number | null> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    `SELECT least(
       (SELECT min(run_at) FROM {{schema}}.instance_state
         WHERE ${statusIn(DUE)} AND integration_id = ANY($1::text[])),
       (SELECT min(lease_until) FROM {{schema}}.instance_state
         WHERE ${statusIn(LEASED)} AND integration_id = ANY($1::text[]))) AS due`,
    [integrationIds],
  );
  return rows[0].due === null ? null : Number(rows[0].due);
}

/**
 * Who holds an ordering key against instance `seq`: order_held's rule, answering the holder. The
 * status list repeats instance_state_ordering's predicate, so that the read walks that index.
 */
export async function orderingHolder(
  db: PgConnection,
  orderingKey: string,
  seq: number,
): Promise<OrderingHolder | null> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    `SELECT r.id, r.integration_id AS "integrationId", j.status
     FROM {{schema}}.instance_state AS j JOIN {{schema}}.instance_rows AS r ON r.seq = j.seq
     WHERE j.ordering_key = $1 AND ${statusIn(HOLDS_ORDER, 'j.status')} AND j.seq <> $2
       AND (${statusIn(LEASED, 'j.status')} OR j.seq < $2)
     ORDER BY j.seq LIMIT 1`,
    [orderingKey, seq],
  );
  return (rows[0] as OrderingHolder | undefined) ?? null;
}

export async function countChildren(db: PgConnection, parentId: string): Promise<ChildCounts> {
  db.assertOpen();
  const counts: ChildCounts = emptyCounts();
  const { rows } = await db.q(
    db.pool,
    'SELECT status, count(*)::int AS n FROM {{schema}}.instances WHERE parent_id = $1 GROUP BY status',
    [parentId],
  );
  for (const row of rows as { status: keyof ChildCounts; n: number }[]) {
    counts[row.status] = row.n;
    counts.total += row.n;
  }
  return counts;
}

/** Sets `cloudEvent` on the instances that came as one (one query for a page). */
async function withCloudEvents(db: PgConnection, instances: Instance[]): Promise<Instance[]> {
  if (instances.length === 0) return instances;
  const { rows } = await db.q(
    db.pool,
    'SELECT * FROM {{schema}}.cloud_events WHERE instance_id = ANY($1::text[])',
    [instances.map((i) => i.id)],
  );
  return attachCloudEvents(instances, rows as CloudEventRow[]);
}

/** WHERE clause of an instance filter with `$n` parameters starting at `first`. */
export function filterSql(filter: InstanceFilter, first: number): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${first + params.length - 1}`;
  };
  const ids = asArray(filter.integrationId);
  const statuses = asArray(filter.status);
  if (filter.ids) where.push(`id = ANY(${param(filter.ids)}::text[])`);
  if (ids) where.push(`integration_id = ANY(${param(ids)}::text[])`);
  if (statuses) {
    where.push(`status = ANY(${param(statuses)}::text[])`);
    // Spelled out as well when only waiting statuses are asked for, so that the planner can prove
    // the predicate of the partial index instances_due and count the backlog from it alone.
    if (statuses.every((status) => DUE.includes(status))) where.push(statusIn(DUE));
  }
  if (filter.parentId !== undefined) where.push(`parent_id = ${param(filter.parentId)}`);
  if (filter.createdAfter !== undefined) where.push(`created_at >= ${param(filter.createdAfter)}`);
  if (filter.createdBefore !== undefined) where.push(`created_at < ${param(filter.createdBefore)}`);
  if (filter.runStartedAfter !== undefined) where.push(`run_started_at >= ${param(filter.runStartedAfter)}`);
  if (filter.acknowledged !== undefined) {
    where.push(`acknowledged_at IS ${filter.acknowledged ? 'NOT NULL' : 'NULL'}`);
  }
  if (filter.cloudEvent !== undefined) {
    const { attribute, value } = filter.cloudEvent;
    const v = param(value);
    const match =
      attribute === null
        ? `type = ${v} OR source = ${v} OR subject = ${v}`
        : `${cloudEventColumn(attribute)} = ${v}`;
    where.push(`id IN (SELECT instance_id FROM {{schema}}.cloud_events WHERE ${match})`);
  }
  if (filter.tracking !== undefined) {
    const { name, value } = parseTrackingFilter(filter.tracking);
    const v = param(value);
    where.push(`(track_1 = ${v} OR track_2 = ${v} OR track_3 = ${v})`);
    if (name) where.push(`tracking ->> ${param(name)} = ${v}`);
  }
  return { where: where.length > 0 ? where.join(' AND ') : 'true', params };
}
