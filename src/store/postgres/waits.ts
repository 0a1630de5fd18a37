/**
 * Durable waits in the PostgreSQL store: an attempt's wait finish (arm the wait, take an event kept
 * in the look-back window), business events and callbacks that resolve waits and wake their
 * instances, and a wait's settling once its time has come.
 *
 * Under READ COMMITTED a wait being armed and a matching event being sent at the same moment would
 * each miss the other (neither sees the other's uncommitted row), so both take a transaction-level
 * advisory lock on the event name first, and read only in statements after it: whichever comes
 * second sees what the first committed. A callback's wait row exists before its finish (armCallback),
 * so a callback and the finish meet on that row's lock instead; each wakes the instance in a
 * statement of its own, which sees the other's commit.
 */
import type pg from 'pg';
import {
  activity,
  FINAL,
  isFinal,
  LEASED,
  TRANSITIONS as LIFECYCLE,
  NEVER,
  type WaitResolution,
} from '../../lifecycle/index.js';
import type { InstanceStatus, Json, NewActivityEvent } from '../../model.js';
import { payloadKey } from '../../waits/match.js';
import { type WaitRow, waitFromRow } from '../rows.js';
import { assignments, eventColumns, statusIn } from '../sql.js';
import type {
  ArmCallback,
  CallbackOutcome,
  FinishWrite,
  NewBusinessEvent,
  NewWait,
  SentEventOutcome,
  WaitKey,
  WaitRecord,
} from '../store.js';
import type { PgConnection, Queryable } from './connection.js';
import { tokenSeq } from './hot-path.js';
import { dialect, sources } from './lifecycle-sql.js';

/** A new wait's columns, in the order both arming statements list them (name … created_at). */
const waitValues = (wait: NewWait) =>
  [
    wait.name,
    wait.kind,
    wait.event,
    wait.matchKey,
    wait.matchShape,
    wait.expiresAt,
    wait.lookBackFrom,
    wait.createdAt,
  ] as const;

const numOrNever = (value: string | number | null): number => (value === null ? NEVER : Number(value));

/** Kept events a wait finish reads per round trip while it looks for one that fits. */
const EVENT_PAGE = 500;

/**
 * Serialises, per event name, the wait finishes that arm event waits and the sends of events, until
 * the transaction ends. Several names are locked in one sorted order, so that two transactions never
 * wait for each other's names. The schema is part of the key: stores in other schemas do not contend.
 */
export async function lockEventNames(
  db: PgConnection,
  client: pg.PoolClient,
  names: string[],
): Promise<void> {
  const sorted = [...new Set(names)].sort();
  if (sorted.length === 0) return;
  await db.q(client, LOCK_SQL, lockParams(db, sorted));
}

/**
 * Takes the locks of event names (parameters: the key prefix, the names in sorted order). unnest
 * yields the array in order, and the aggregate takes each lock as the row passes. A read that must
 * see what the previous holder committed runs in a later statement (a statement's snapshot is taken
 * when it starts, before it waits for a lock).
 */
const LOCK_SQL =
  'SELECT count(pg_advisory_xact_lock(hashtextextended($1 || n, 0))) AS n FROM unnest($2::text[]) AS n';

const lockParams = (db: PgConnection, sorted: string[]) => [`tandem-event:${db.schema}:`, sorted];

/**
 * Wakes the instances of resolved waits that are waiting on the wait's run (due at once), with the
 * `wait.resumed` events given for them, and a wake-up notice (parameters: ids, runs, now, events,
 * channel, schema); returns the ids it woke. A running instance is left alone:
 * its wait finish finds the wait resolved and wakes it. Its own statement, so that it sees a wait
 * finish that committed while this transaction waited for the wait's row.
 */
const WAKE_SQL = `WITH woke AS (
     UPDATE {{schema}}.instance_state s SET ${assignments(LIFECYCLE.wake, dialect({ now: '$3' }, 's.'))}
     FROM unnest($1::text[], $2::int[]) AS k(id, run) JOIN {{schema}}.instance_rows r ON r.id = k.id AND r.run = k.run
     WHERE s.seq = r.seq AND ${statusIn(sources(LIFECYCLE.wake), 's.status')}
     RETURNING r.id
   ), events_written AS (
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT e->>0, e->>1, (e->>2)::int, e->>3, (e->>4)::bigint, e->>5
     FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x(e, ord)
     WHERE e->>0 IN (SELECT id FROM woke)
     ORDER BY x.ord
   )
   SELECT ARRAY(SELECT id FROM woke) AS woke,
     (SELECT count(pg_notify($5, $6)) FROM (SELECT 1 FROM woke LIMIT 1) AS any_woke) AS notified`;

interface Resolved {
  instanceId: string;
  integrationId: string;
  run: number;
  name: string;
  resolution: WaitResolution;
  eventId: string | null;
}

async function wake(
  db: PgConnection,
  client: pg.PoolClient,
  waits: Resolved[],
  now: number,
): Promise<string[]> {
  if (waits.length === 0) return [];
  const events: NewActivityEvent[] = waits.map((w) =>
    activity(
      'wait.resumed',
      { instanceId: w.instanceId, integrationId: w.integrationId, run: w.run, at: now },
      { step: w.name, by: w.resolution, eventId: w.eventId },
    ),
  );
  const { rows } = await db.q(client, WAKE_SQL, [
    waits.map((w) => w.instanceId),
    waits.map((w) => w.run),
    now,
    JSON.stringify(
      events.map((e) => [e.instanceId, e.integrationId, e.run, e.type, e.at, JSON.stringify(e.data)]),
    ),
    ...db.wakeNotice(),
  ]);
  return rows[0].woke as string[];
}

/** Resolves an armed wait (one resolved already keeps its resolution); the row, or null if it was resolved. */
async function resolve(
  db: PgConnection,
  on: Queryable,
  key: { instanceId: string; run: number; name: string },
  now: number,
  resolution: WaitResolution,
  taken: { payload: string | null; eventId: string | null; seq: number | null } = {
    payload: null,
    eventId: null,
    seq: null,
  },
): Promise<WaitRow | null> {
  const { rows } = await db.q(
    on,
    `UPDATE {{schema}}.waits SET resolved_at = $4, resolution = $5, payload = $6, event_id = $7, event_seq = $8
     WHERE instance_id = $1 AND run = $2 AND name = $3 AND resolved_at IS NULL
     RETURNING *`,
    [key.instanceId, key.run, key.name, now, resolution, taken.payload, taken.eventId, taken.seq],
  );
  return (rows[0] as WaitRow | undefined) ?? null;
}

/**
 * The wait finishes of a commit, after the batch statement suspended their instances (only the ones
 * whose claim token held): arm each wait unless the run has it already, take a kept event that fits
 * an event wait, and wake at once an instance whose wait is resolved — before (a callback that came
 * early, an event sent while it ran) or now. The caller holds the locks of the event names.
 * Returns whether it woke any.
 */
export async function finishWaits(
  db: PgConnection,
  client: pg.PoolClient,
  finishes: FinishWrite[],
): Promise<boolean> {
  const armed = finishes.map((f) => ({ finish: f, wait: (f.outcome as { wait: NewWait }).wait }));
  if (armed.length === 0) return false;
  const { rows: keys } = await db.q(
    client,
    `WITH w AS (
       SELECT (r->>0)::bigint AS seq, r->>1 AS name, r->>2 AS kind, r->>3 AS event, r->>4 AS match_key,
         r->>5 AS match_shape, (r->>6)::bigint AS expires_at, (r->>7)::bigint AS look_back_from,
         (r->>8)::bigint AS created_at, (r->>9)::bigint AS now
       FROM jsonb_array_elements($1::jsonb) AS r
     ), k AS (
       SELECT i.id, i.run, i.integration_id, w.* FROM w JOIN {{schema}}.instance_rows i ON i.seq = w.seq
     ), armed AS (
       INSERT INTO {{schema}}.waits (instance_id, run, name, kind, event, match_key, match_shape, expires_at,
         look_back_from, created_at)
       SELECT id, run, name, kind, event, match_key, match_shape, expires_at, look_back_from, created_at FROM k
       ON CONFLICT (instance_id, run, name) DO NOTHING
       RETURNING instance_id, run, name
     ), shapes AS (
       INSERT INTO {{schema}}.wait_shapes (event, shape)
       SELECT DISTINCT event, coalesce(match_shape, '[]') FROM k WHERE kind = 'event' AND event IS NOT NULL
       ON CONFLICT DO NOTHING
     )
     SELECT id, run, integration_id, name, now,
       EXISTS (SELECT 1 FROM armed a WHERE a.instance_id = k.id AND a.run = k.run AND a.name = k.name) AS fresh
     FROM k`,
    [
      JSON.stringify(
        armed.map(({ finish, wait }) => [tokenSeq(finish.claimToken), ...waitValues(wait), finish.now]),
      ),
    ],
  );
  const heads = keys as {
    id: string;
    run: number;
    integration_id: string;
    name: string;
    now: string;
    fresh: boolean;
  }[];
  // A wait armed by this statement is as the finish brought it: no other transaction has seen it (an
  // event of its name waits for the name's lock; a callback's wait is armed before its finish).
  const waitOf = new Map(armed.map(({ finish, wait }) => [finish.instanceId, wait]));
  const stored: WaitRow[] = heads
    .filter((h) => h.fresh)
    .map((h) => {
      const wait = waitOf.get(h.id)!;
      return {
        instance_id: h.id,
        run: h.run,
        name: h.name,
        kind: wait.kind,
        event: wait.event,
        match_key: wait.matchKey,
        match_shape: wait.matchShape,
        expires_at: wait.expiresAt,
        look_back_from: wait.lookBackFrom,
        created_at: wait.createdAt,
        resolved_at: null,
        resolution: null,
        payload: null,
        event_id: null,
        event_seq: null,
      };
    });
  const earlier = heads.filter((h) => !h.fresh);
  if (earlier.length > 0) {
    // Locked: a callback resolving one of them at this moment is waited for, and then seen.
    const { rows } = await db.q(
      client,
      `SELECT w.* FROM {{schema}}.waits w
       JOIN unnest($1::text[], $2::int[], $3::text[]) AS k(id, run, name)
         ON w.instance_id = k.id AND w.run = k.run AND w.name = k.name
       FOR UPDATE OF w`,
      [earlier.map((h) => h.id), earlier.map((h) => h.run), earlier.map((h) => h.name)],
    );
    stored.push(...(rows as WaitRow[]));
  }
  const byKey = new Map(stored.map((w) => [`${w.instance_id}\u0000${w.run}\u0000${w.name}`, w]));
  const nowOf = new Map(heads.map((h) => [h.id, Number(h.now)]));
  const waits = heads.flatMap((h) => byKey.get(`${h.id}\u0000${h.run}\u0000${h.name}`) ?? []);
  // A run that had the wait already keeps it, its time included: the instance waits until the
  // stored wait's time, not the one this finish brought (the batch statement set that one).
  const retimed = waits.filter(
    (w) =>
      w.resolved_at === null && numOrNever(w.expires_at) !== (waitOf.get(w.instance_id)?.expiresAt ?? NEVER),
  );
  if (retimed.length > 0)
    await db.q(
      client,
      `UPDATE {{schema}}.instance_state s SET run_at = k.run_at
       FROM unnest($1::text[], $2::bigint[]) AS k(id, run_at) JOIN {{schema}}.instance_rows r ON r.id = k.id
       WHERE s.seq = r.seq AND ${statusIn([LIFECYCLE.suspend.to], 's.status')}`,
      [retimed.map((w) => w.instance_id), retimed.map((w) => numOrNever(w.expires_at))],
    );
  const taken = await takeKeptEvents(
    db,
    client,
    waits.filter((w) => w.resolved_at === null && w.kind === 'event'),
    nowOf,
  );
  const resolved: Resolved[] = [];
  const nowById = new Map<string, number>();
  for (const head of heads) {
    const key = `${head.id}\u0000${head.run}\u0000${head.name}`;
    const wait = taken.get(key) ?? byKey.get(key);
    if (!wait || wait.resolved_at === null) continue;
    nowById.set(head.id, Number(head.now));
    resolved.push({
      instanceId: head.id,
      integrationId: head.integration_id,
      run: head.run,
      name: head.name,
      resolution: wait.resolution as WaitResolution,
      eventId: wait.event_id,
    });
  }
  if (resolved.length === 0) return false;
  // Finishes of one batch share their time but for test clocks; each wake takes its finish's time.
  let woke = false;
  for (const now of new Set(nowById.values())) {
    const group = resolved.filter((r) => nowById.get(r.instanceId) === now);
    woke = (await wake(db, client, group, now)).length > 0 || woke;
  }
  return woke;
}

/**
 * The kept events each armed event wait may take, in sequence order, a page per wait in one
 * statement: of its name, received within its look-back window, not taken by another wait of the
 * same instance and run (and after the page before, when a wait pages on).
 */
const KEPT_EVENTS_SQL = `SELECT k.ord, e.seq, e.event_id, e.payload
   FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[])
     WITH ORDINALITY AS k(instance_id, run, event, from_at, after_seq, ord)
   CROSS JOIN LATERAL (
     SELECT b.seq, b.event_id, b.payload FROM {{schema}}.business_events b
     WHERE b.name = k.event AND b.received_at >= k.from_at
       AND b.seq > k.after_seq
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.waits w
         WHERE w.instance_id = k.instance_id AND w.run = k.run AND w.event_seq = b.seq)
     ORDER BY b.seq LIMIT ${EVENT_PAGE}
   ) AS e
   ORDER BY k.ord, e.seq`;

/**
 * Resolves armed event waits with the first kept event that fits each. The match is decided by
 * `payloadKey`, the function events are looked up by, so that both ways agree to the byte. Returns
 * the waits it resolved, by key.
 */
async function takeKeptEvents(
  db: PgConnection,
  client: pg.PoolClient,
  waits: WaitRow[],
  nowOf: Map<string, number>,
): Promise<Map<string, WaitRow>> {
  const taken = new Map<string, WaitRow>();
  let pending = waits.map((wait) => ({ wait, after: 0 }));
  while (pending.length > 0) {
    const { rows } = await db.q(client, KEPT_EVENTS_SQL, [
      pending.map((p) => p.wait.instance_id),
      pending.map((p) => p.wait.run),
      pending.map((p) => p.wait.event),
      pending.map((p) => p.wait.look_back_from ?? p.wait.created_at),
      pending.map((p) => p.after),
    ]);
    const pages = new Map<number, { seq: string; event_id: string | null; payload: string }[]>();
    for (const row of rows) {
      const page = pages.get(Number(row.ord)) ?? [];
      page.push(row);
      pages.set(Number(row.ord), page);
    }
    const next: typeof pending = [];
    for (const [i, { wait }] of pending.entries()) {
      const page = pages.get(i + 1) ?? [];
      const shape = wait.match_shape ?? '[]';
      const event = page.find((e) => payloadKey(JSON.parse(e.payload) as Json, shape) === wait.match_key);
      if (event) {
        const key = { instanceId: wait.instance_id, run: wait.run, name: wait.name };
        const row = await resolve(db, client, key, nowOf.get(wait.instance_id)!, 'event', {
          payload: event.payload,
          eventId: event.event_id ?? event.seq,
          seq: Number(event.seq),
        });
        if (row) taken.set(`${wait.instance_id}\u0000${wait.run}\u0000${wait.name}`, row);
      } else if (page.length === EVENT_PAGE) next.push({ wait, after: Number(page.at(-1)!.seq) });
    }
    pending = next;
  }
  return taken;
}

export async function settleWait(db: PgConnection, key: WaitKey, now: number): Promise<WaitRecord | null> {
  db.assertOpen();
  // Guarded by `resolved_at IS NULL`: an event or a callback that came first keeps its resolution.
  const time: WaitResolution = 'time';
  const timeout: WaitResolution = 'timeout';
  const settled = await db.q(
    db.pool,
    `UPDATE {{schema}}.waits SET resolved_at = $4, resolution = CASE kind WHEN 'sleep' THEN $5 ELSE $6 END
     WHERE instance_id = $1 AND run = $2 AND name = $3 AND resolved_at IS NULL AND expires_at <= $4
     RETURNING *`,
    [key.instanceId, key.run, key.name, now, time, timeout],
  );
  if (settled.rows[0]) return waitFromRow(settled.rows[0]);
  // A statement of its own: it sees a resolution that made the update above skip the row.
  const { rows } = await db.q(
    db.pool,
    'SELECT * FROM {{schema}}.waits WHERE instance_id = $1 AND run = $2 AND name = $3',
    [key.instanceId, key.run, key.name],
  );
  return rows[0] ? waitFromRow(rows[0]) : null;
}

export async function armCallback(db: PgConnection, request: ArmCallback): Promise<WaitRecord | null> {
  const { wait } = request;
  return db.tx(async (client) => {
    const { rows } = await db.q(
      client,
      `WITH held AS (
         SELECT 1 FROM {{schema}}.instance_state
         WHERE seq = $1 AND claim_token = $2 AND ${statusIn(LEASED)}
       ), armed AS (
         INSERT INTO {{schema}}.waits (instance_id, run, name, kind, event, match_key, match_shape, expires_at,
           look_back_from, created_at)
         SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM held
         ON CONFLICT (instance_id, run, name) DO NOTHING
       ), token AS (
         INSERT INTO {{schema}}.callback_tokens (token_id, hash, instance_id, run, name, issued_at)
         SELECT $13, $14, $3, $4, $5, $12 FROM held
       )
       SELECT count(*)::int AS held FROM held`,
      [
        tokenSeq(request.claimToken),
        request.claimToken,
        request.instanceId,
        request.run,
        ...waitValues(wait),
        request.tokenId,
        request.tokenHash,
      ],
    );
    if (rows[0].held === 0) return null;
    const stored = await db.q(
      client,
      'SELECT * FROM {{schema}}.waits WHERE instance_id = $1 AND run = $2 AND name = $3',
      [request.instanceId, request.run, wait.name],
    );
    return waitFromRow(stored.rows[0]);
  });
}

/**
 * Resolves the armed waits the events of a batch fit and wakes their instances that wait, in one
 * statement, as the events one after another would: each wait is taken by the first event (in
 * batch order) that fits it, and an instance is woken, with one `wait.resumed` per wait, by the
 * first event that resolved one of its waits (a later one finds it queued). Parameters: the
 * (event's position, name, key) pairs, one per key an event's payload gives for the shapes armed
 * for its name; now; resolution; per event in batch order its payload, event id and sequence
 * number; wake-up channel and schema; per event its sender (`actor` JSON, or null), added to the
 * data of the `wait.resumed` events it writes. The waits are found by the index of armed event waits however
 * many instances wait, and only on the current run of an instance that is not over; a running
 * instance is left alone (its wait finish finds the wait resolved). Run after the names' locks were
 * taken, so its snapshot holds every wait finish that committed before.
 */
const RESUMED_COLUMNS = eventColumns(
  'wait.resumed',
  { step: 'v.name', by: '$5::text', eventId: 'v.event_id' },
  'json_build_object',
);
/** The type and data of a `wait.resumed` an event writes: its sender's `actor` last, absent without one. */
const RESUMED_BY_EVENT = (() => {
  const comma = RESUMED_COLUMNS.indexOf(', ');
  const type = RESUMED_COLUMNS.slice(0, comma);
  const data = RESUMED_COLUMNS.slice(comma + 2);
  const withActor = `${data.slice(0, -1)}, 'actor', v.actor::json)`;
  return `${type}, CASE WHEN v.actor IS NULL THEN ${data} ELSE ${withActor} END::text`;
})();
const RESOLVE_EVENTS_SQL = `WITH pairs AS (
     SELECT * FROM unnest($1::int[], $2::text[], $3::text[]) AS p(ord, event, key)
   ), sent AS (
     SELECT * FROM unnest($6::text[], $7::text[], $8::bigint[], $11::text[])
       WITH ORDINALITY AS e(payload, event_id, seq, actor, ord)
   ), fits AS (
     SELECT DISTINCT ON (w.instance_id, w.run, w.name) w.instance_id, w.run, w.name, p.ord
     FROM pairs p CROSS JOIN LATERAL (
       -- Kept a subquery (OFFSET 0) so that each pair looks its key up in the index, whatever the
       -- statistics say: joined flat, a plan could read the whole index of armed waits per event.
       SELECT w.instance_id, w.run, w.name FROM {{schema}}.waits w
       WHERE w.event = p.event AND w.match_key = p.key AND w.resolved_at IS NULL AND w.kind = 'event'
         AND (w.expires_at IS NULL OR w.expires_at > $4)
       OFFSET 0
     ) AS w
     ORDER BY w.instance_id, w.run, w.name, p.ord
   ), resolved AS (
     UPDATE {{schema}}.waits w
     SET resolved_at = $4, resolution = $5::text, payload = e.payload, event_id = e.event_id, event_seq = e.seq
     FROM fits f JOIN sent e ON e.ord = f.ord,
       {{schema}}.instance_rows r JOIN {{schema}}.instance_state s ON s.seq = r.seq
     WHERE w.instance_id = f.instance_id AND w.run = f.run AND w.name = f.name AND w.resolved_at IS NULL
       AND r.id = w.instance_id AND r.run = w.run AND NOT (${statusIn(FINAL, 's.status')})
     RETURNING w.instance_id, w.run, w.name, w.event_id, r.seq, r.integration_id, f.ord, e.actor
   ), woke AS (
     UPDATE {{schema}}.instance_state s SET ${assignments(LIFECYCLE.wake, dialect({ now: '$4' }, 's.'))}
     FROM (SELECT DISTINCT seq FROM resolved) v WHERE s.seq = v.seq AND ${statusIn(sources(LIFECYCLE.wake), 's.status')}
     RETURNING s.seq
   ), events_written AS (
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, at, type, data)
     SELECT v.instance_id, v.integration_id, v.run, $4,
       ${RESUMED_BY_EVENT}
     FROM resolved v
     WHERE v.seq IN (SELECT seq FROM woke) AND v.ord = (SELECT min(o.ord) FROM resolved o WHERE o.seq = v.seq)
     ORDER BY v.ord, v.seq
   )
   SELECT coalesce((SELECT json_agg(json_build_array(x.ord, x.instance_id))
       FROM (SELECT DISTINCT ord, instance_id FROM resolved) AS x), '[]') AS resumed,
     (SELECT count(pg_notify($9, $10)) FROM (SELECT 1 FROM woke LIMIT 1) AS any_woke) AS notified`;

/** The statements that find waits and instances by key, for tests that check their plans. */
export const WAIT_SQL = {
  resolveEvents: RESOLVE_EVENTS_SQL,
  wake: WAKE_SQL,
  keptEvents: KEPT_EVENTS_SQL,
} as const;

/**
 * Takes the locks of the batch's event names and stores its events, in one round trip: in batch
 * order (the sequence numbers follow it), an id stored before or earlier in the batch skipped (a
 * repeated id sent at the same moment by another transaction: the unique index waits for it).
 */
const INSERT_EVENTS_SQL = `WITH locked AS (${LOCK_SQL})
   INSERT INTO {{schema}}.business_events (name, event_id, payload, received_at)
   SELECT e.name, e.event_id, e.payload, e.received_at
   FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[])
     WITH ORDINALITY AS e(name, event_id, payload, received_at, ord)
   CROSS JOIN locked
   ORDER BY e.ord
   ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING
   RETURNING seq, event_id`;

export function sendEvent(db: PgConnection, event: NewBusinessEvent, now: number): Promise<SentEventOutcome> {
  return sendEvents(db, [event], now).then((outcomes) => outcomes[0]!);
}

/**
 * Stores business events in one transaction, each exactly as if it were sent alone, in order: the
 * names' locks first (sorted), then the events, then for each in turn the armed waits it fits that an
 * earlier one did not take. The shapes armed for the names are read once, after the locks: no wait
 * finish of these names commits before this transaction ends.
 */
export async function sendEvents(
  db: PgConnection,
  events: NewBusinessEvent[],
  now: number,
): Promise<SentEventOutcome[]> {
  if (events.length === 0) return [];
  const names = [...new Set(events.map((e) => e.name))].sort();
  return db.tx(async (client): Promise<SentEventOutcome[]> => {
    const inserted = await db.q(client, INSERT_EVENTS_SQL, [
      ...lockParams(db, names),
      events.map((e) => e.name),
      events.map((e) => e.id),
      events.map((e) => e.payloadJson),
      events.map((e) => e.receivedAt),
    ]);
    // Sequence numbers were drawn in batch order; an event was stored unless its id was stored before.
    const rows = (inserted.rows as { seq: string; event_id: string | null }[])
      .map((r) => ({ seq: Number(r.seq), id: r.event_id }))
      .sort((x, y) => x.seq - y.seq);
    const storedIds = new Set(rows.flatMap((r) => (r.id === null ? [] : [r.id])));
    let next = 0;
    const seqs = events.map((e) => {
      if (e.id !== null && !storedIds.delete(e.id)) return null;
      return rows[next++]!.seq;
    });
    const repeated = events.flatMap((e, i) => (seqs[i] === null ? [e.id!] : []));
    const existing = new Map<string, number>();
    if (repeated.length > 0) {
      const found = await db.q(
        client,
        'SELECT seq, event_id FROM {{schema}}.business_events WHERE event_id = ANY($1::text[])',
        [repeated],
      );
      for (const r of found.rows as { seq: string; event_id: string }[])
        existing.set(r.event_id, Number(r.seq));
    }
    const shapes = await db.q(
      client,
      'SELECT event, shape FROM {{schema}}.wait_shapes WHERE event = ANY($1::text[])',
      [names],
    );
    const shapesOf = new Map<string, string[]>();
    for (const { event, shape } of shapes.rows as { event: string; shape: string }[])
      shapesOf.set(event, [...(shapesOf.get(event) ?? []), shape]);
    // The keys each stored event gives for the shapes armed for its name; its position is 1-based.
    const pairs = { ords: [] as number[], names: [] as string[], keys: [] as string[] };
    for (const [i, event] of events.entries()) {
      const shapesOfName = seqs[i] === null ? [] : (shapesOf.get(event.name) ?? []);
      if (shapesOfName.length === 0) continue;
      const payload = JSON.parse(event.payloadJson) as Json;
      for (const key of new Set(shapesOfName.map((shape) => payloadKey(payload, shape)))) {
        if (key === null) continue;
        pairs.ords.push(i + 1);
        pairs.names.push(event.name);
        pairs.keys.push(key);
      }
    }
    const resumed = events.map(() => [] as string[]);
    if (pairs.keys.length > 0) {
      const { rows } = await db.q(client, RESOLVE_EVENTS_SQL, [
        pairs.ords,
        pairs.names,
        pairs.keys,
        now,
        'event' satisfies WaitResolution,
        events.map((e) => e.payloadJson),
        events.map((e, i) => e.id ?? String(seqs[i])),
        seqs,
        ...db.wakeNotice(),
        events.map((e) => (e.actor === undefined ? null : JSON.stringify(e.actor))),
      ]);
      for (const [ord, instanceId] of rows[0].resumed as [number, string][])
        resumed[ord - 1]!.push(instanceId);
    }
    const outcomes = events.map((event, i): SentEventOutcome => {
      const seq = seqs[i];
      if (seq === null || seq === undefined)
        return { seq: existing.get(event.id!)!, duplicate: true, resumed: [] };
      return { seq, duplicate: false, resumed: resumed[i]! };
    });
    return outcomes;
  });
}

export async function callbackTokenHash(db: PgConnection, tokenId: string): Promise<string | null> {
  db.assertOpen();
  const { rows } = await db.q(db.pool, 'SELECT hash FROM {{schema}}.callback_tokens WHERE token_id = $1', [
    tokenId,
  ]);
  return (rows[0]?.hash as string | undefined) ?? null;
}

export async function resolveCallback(
  db: PgConnection,
  tokenId: string,
  payloadJson: string,
  now: number,
): Promise<CallbackOutcome> {
  return db.tx(async (client): Promise<CallbackOutcome> => {
    const token = await db.q(
      client,
      'SELECT instance_id, run, name FROM {{schema}}.callback_tokens WHERE token_id = $1',
      [tokenId],
    );
    const key = token.rows[0] as { instance_id: string; run: number; name: string } | undefined;
    if (!key) return { outcome: 'not-found' };
    // Locked: of two calls at once, the second reads the wait the first resolved.
    const found = await db.q(
      client,
      'SELECT * FROM {{schema}}.waits WHERE instance_id = $1 AND run = $2 AND name = $3 FOR UPDATE',
      [key.instance_id, key.run, key.name],
    );
    const wait = found.rows[0] as WaitRow | undefined;
    // Read after the lock (not locked itself: a wait finish holds the instance and waits for the wait row).
    const state = await db.q(
      client,
      'SELECT status, run, integration_id, finished_at FROM {{schema}}.instances WHERE id = $1',
      [key.instance_id],
    );
    const instance = state.rows[0] as
      | { status: InstanceStatus; run: number; integration_id: string; finished_at: string | null }
      | undefined;
    if (!wait || !instance) return { outcome: 'not-found' };
    const expiresAt = wait.expires_at === null ? null : Number(wait.expires_at);
    // A wait its timeout resolved was not answered in time: the callback is late, not a repeat.
    if (wait.resolution === 'timeout') return { outcome: 'expired', expiredAt: expiresAt ?? now };
    if (wait.resolved_at !== null) return { outcome: 'used', resolvedAt: Number(wait.resolved_at) };
    if (expiresAt !== null && expiresAt <= now) return { outcome: 'expired', expiredAt: expiresAt };
    if (isFinal(instance.status) || instance.run !== wait.run) {
      return {
        outcome: 'expired',
        expiredAt: instance.finished_at === null ? now : Number(instance.finished_at),
      };
    }
    const k = { instanceId: key.instance_id, run: key.run, name: key.name };
    const resolved = await resolve(db, client, k, now, 'callback', {
      payload: payloadJson,
      eventId: null,
      seq: null,
    });
    if (!resolved) return { outcome: 'used', resolvedAt: now };
    // A running instance (the callback came before its wait finish) wakes when that finish sees it.
    await wake(
      db,
      client,
      [{ ...k, integrationId: instance.integration_id, resolution: 'callback', eventId: null }],
      now,
    );
    return { outcome: 'resumed', instanceId: key.instance_id };
  });
}

export async function getWaits(db: PgConnection, instanceId: string): Promise<WaitRecord[]> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    'SELECT * FROM {{schema}}.waits WHERE instance_id = $1 ORDER BY run, created_at, name',
    [instanceId],
  );
  return (rows as WaitRow[]).map(waitFromRow);
}

export async function purgeEvents(db: PgConnection, receivedBefore: number, limit: number): Promise<number> {
  db.assertOpen();
  const { rowCount } = await db.q(
    db.pool,
    `DELETE FROM {{schema}}.business_events WHERE seq IN (
       SELECT seq FROM {{schema}}.business_events WHERE received_at < $1 ORDER BY received_at LIMIT $2)`,
    [receivedBefore, Math.max(0, limit)],
  );
  return rowCount ?? 0;
}
