/**
 * The statements of the hot path, hand-tuned: the claim of a batch, the commit of a batch of
 * attempt writes, and the lease renewals and releases, with the claim token they are keyed by.
 * Their status sets, column assignments and event rows are rendered from the lifecycle.
 */
import { FINISH, TRANSITIONS as LIFECYCLE, type Transition } from '../../lifecycle/index.js';
import { WORK_COLUMNS } from '../rows.js';
import { assignments, caseAssignments, eventColumns, statusIn } from '../sql.js';
import type { Lease } from '../store.js';
import { dialect, sources } from './lifecycle-sql.js';

/**
 * The instance a claim token was given for: a claim sets `claim_token = <batch>.<seq>`. Writes of an
 * attempt find its state row by this key, never by joining the instance id to `instance_rows` (the
 * planner may hash that whole table for a batch of a few hundred ids). The token itself is still
 * compared, so a token of another claim, or a malformed one (null here), matches nothing.
 */
export function tokenSeq(token: string): string | null {
  const seq = token.slice(token.lastIndexOf('.') + 1);
  return /^\d{1,19}$/.test(seq) ? seq : null;
}

/**
 * The parallel arrays (instance id, state row, token) that lease statements unnest. The state rows
 * are also matched with `seq = ANY(…)`, so that they are found by key whatever the planner
 * estimates for the unnested rows.
 */
export function leaseArrays(leases: Lease[]): [string[], (string | null)[], string[]] {
  return [
    leases.map((l) => l.instanceId),
    leases.map((l) => tokenSeq(l.claimToken)),
    leases.map((l) => l.claimToken),
  ];
}

/**
 * A claim and a takeover lead to the same status with the same columns, so one UPDATE does both
 * (a takeover's `status = 'running'` changes nothing).
 */
if (
  LIFECYCLE.takeOver.to !== LIFECYCLE.claim.to ||
  JSON.stringify(LIFECYCLE.takeOver.sets) !== JSON.stringify(LIFECYCLE.claim.sets)
)
  throw new Error('CLAIM_SQL claims and takes over in one UPDATE: both transitions must set the same');
const CLAIM_SETS = assignments(
  LIFECYCLE.claim,
  dialect({ now: '$1', token: '$4', owner: '$5', lease_until: '$6' }, 's.'),
);
/** Position of each event a takeover writes: its lease.expired precedes its started. */
const eventOrder = (type: 'lease.expired' | 'started') => LIFECYCLE.takeOver.events.indexOf(type);

/**
 * Claims a batch (parameters: now, integration ids, limit, batch token, owner, lease end). One
 * statement, so one round trip and one commit: pick expired leases first, then due instances. The
 * head of an ordering key is the only claimable instance of that key: an earlier one that is
 * queued, running, retrying or failed holds it, and so does any running one (a rerun can queue an
 * earlier instance while a later one runs). A head locked by another claimer is skipped, and the
 * instances behind it still see it holding the key.
 */
export const CLAIM_SQL = `WITH expired AS (
     SELECT seq, lease_owner FROM {{schema}}.instance_state
     WHERE ${statusIn(sources(LIFECYCLE.takeOver))} AND lease_until < $1 AND integration_id = ANY($2::text[])
     ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
   ), due AS (
     SELECT seq, resumed FROM {{schema}}.due_instances($1, $2::text[], $3::int)
   ), picked AS (
     (SELECT seq, true AS taken_over, lease_owner AS previous_owner, true AS resumed FROM expired)
     UNION ALL (SELECT seq, false, NULL, resumed FROM due) LIMIT $3
   ), updated AS (
     UPDATE {{schema}}.instance_state s SET ${CLAIM_SETS}
     FROM picked p WHERE s.seq = p.seq
     RETURNING s.seq, s.attempt, s.started_at, p.taken_over, p.previous_owner, p.resumed
   ), claimed AS (
     SELECT ${WORK_COLUMNS.split(', ')
       .map((c) => (c === 'seq' || c === 'attempt' || c === 'started_at' ? `u.${c}` : `i.${c}`))
       .join(', ')}, u.taken_over, u.previous_owner, u.resumed
     FROM updated u JOIN {{schema}}.instance_rows i ON i.seq = u.seq
   ), claim_events AS (
     -- One insert for both kinds, so that a takeover's lease.expired precedes its started.
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT id, integration_id, run, type, $1, data FROM (
       SELECT seq, ${eventOrder('lease.expired')}, id, integration_id, run,
         ${eventColumns('lease.expired', { attempt: 'attempt - 1', owner: 'previous_owner' }, 'json_build_object')}::text
       FROM claimed WHERE taken_over
       UNION ALL
       SELECT seq, ${eventOrder('started')}, id, integration_id, run,
         ${eventColumns('started', { attempt: 'attempt' }, 'json_build_object')}::text
       FROM claimed
     ) AS e(seq, ord, id, integration_id, run, type, data) ORDER BY seq, ord
   )
   SELECT * FROM claimed ORDER BY seq`;

/** The SET list of a batch's finishes: each row's outcome kind picks its transition (FINISH). */
const FINISH_SETS = caseAssignments(
  'f.kind',
  FINISH,
  dialect(
    {
      output: 'f.output',
      error: 'f.error',
      now: 'f.now',
      duration: 'f.duration',
      run_at: 'f.run_at',
      refund: 'f.refund',
    },
    's.',
  ),
);

/**
 * Commits a batch of step writes, attempt ends and events (parameters: four JSON arrays of rows,
 * each row an array of fields; see `commit`). One statement (one round trip, one commit). All
 * parts see the same snapshot, so each step write and each finish is checked against the claim
 * token the attempt was given; events of a write that was refused are dropped with it.
 */
export const COMMIT_SQL = `WITH st AS (
     SELECT (r->>0)::bigint AS seq, r->>1 AS token, r->>2 AS instance_id, (r->>3)::int AS run, r->>4 AS name,
       (r->>5)::int AS position, r->>6 AS status, r->>7 AS output, r->>8 AS error, (r->>9)::int AS attempt,
       (r->>10)::bigint AS started_at, (r->>11)::bigint AS finished_at
     FROM jsonb_array_elements($1::jsonb) AS r
   ), held AS (
     -- Read in the statement's snapshot, not locked: a row lock would follow this statement's own
     -- finish of the same instance and see its token already cleared.
     SELECT s.seq, s.claim_token FROM {{schema}}.instance_state s WHERE s.seq = ANY(ARRAY(SELECT seq FROM st))
   ), steps_written AS (
     INSERT INTO {{schema}}.steps (instance_id, run, name, position, status, output, error, attempt, started_at,
       finished_at, seeded)
     SELECT s.instance_id, s.run, s.name, s.position, s.status, s.output, s.error, s.attempt, s.started_at,
       s.finished_at, false
     FROM st s JOIN held h ON h.seq = s.seq AND h.claim_token = s.token
     ON CONFLICT (instance_id, run, name) DO UPDATE SET position = excluded.position, status = excluded.status,
       output = excluded.output, error = excluded.error, attempt = excluded.attempt,
       started_at = excluded.started_at, finished_at = excluded.finished_at, seeded = false
     RETURNING instance_id
   ), fin AS (
     SELECT (r->>0)::bigint AS seq, r->>1 AS token, r->>2 AS id, r->>3 AS kind, r->>4 AS output, r->>5 AS error,
       (r->>6)::bigint AS run_at, (r->>7)::int AS refund, (r->>8)::bigint AS now, (r->>9)::bigint AS duration
     FROM jsonb_array_elements($2::jsonb) AS r
   ), done AS (
     UPDATE {{schema}}.instance_state s SET
       ${FINISH_SETS}
     FROM fin f
     -- Found by key through the array, whatever the planner estimates for the JSON rows (joined
     -- to them directly, a few hundred rows estimated against stale statistics were planned as a
     -- hash of the whole table).
     WHERE s.seq = ANY(ARRAY(SELECT seq FROM fin)) AND s.seq = f.seq AND s.claim_token = f.token
     RETURNING f.id, s.ordering_key
   ), events_written AS (
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT r->>0, r->>1, (r->>2)::int, r->>3, (r->>4)::bigint, r->>5
     FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(r, ord)
     WHERE r->>6 = 'none'
       OR (r->>6 = 'step' AND r->>0 IN (SELECT instance_id FROM steps_written))
       OR (r->>6 = 'finish' AND r->>0 IN (SELECT id FROM done))
     ORDER BY e.ord
   ), parameters_written AS (
     -- Schedule parameters set by a handler: merged only when its succeeded finish was applied.
     -- jsonb || keeps keys whose value is null (a handler may clear a value).
     INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at)
     SELECT r->>1, r->>2, (r->>3)::bigint, (r->>3)::bigint
     FROM jsonb_array_elements($4::jsonb) AS r
     WHERE r->>0 IN (SELECT id FROM done)
     ON CONFLICT (integration_id) DO UPDATE
       SET parameters = (schedules.parameters::jsonb || excluded.parameters::jsonb)::text,
           updated_at = excluded.updated_at
   )
   -- The writes refused (their attempt lost its lease), and whether a head of an ordering key finished.
   SELECT ARRAY(
       SELECT instance_id FROM st WHERE instance_id NOT IN (SELECT instance_id FROM steps_written)
       UNION SELECT id FROM fin WHERE id NOT IN (SELECT id FROM done)) AS lost,
     EXISTS (SELECT 1 FROM done WHERE ordering_key IS NOT NULL) AS ordered`;

/** The hot-path statements, for tests that check their plans. */
export const HOT_PATH_SQL = { claim: CLAIM_SQL, commit: COMMIT_SQL } as const;

/**
 * The leases of a batch (parameters: instance ids, state rows, tokens; see `leaseArrays`), each
 * found by key and guarded by its token, as a renewal or a release changes them.
 */
const leaseUpdate = (transition: Transition) =>
  `UPDATE {{schema}}.instance_state s SET ${assignments(transition, dialect({ lease_until: '$4', now: '$4' }, 's.'))}
   FROM unnest($1::text[], $2::bigint[], $3::text[]) AS l(id, seq, token)
   WHERE s.seq = ANY($2::bigint[]) AND s.seq = l.seq AND s.claim_token = l.token AND ${statusIn(sources(transition), 's.status')}`;
export const RENEW_SQL = `${leaseUpdate(LIFECYCLE.renew)}
   RETURNING l.id`;
export const RELEASE_SQL = leaseUpdate(LIFECYCLE.release);
