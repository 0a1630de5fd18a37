/**
 * Versioned schema migrations for the PostgreSQL store, applied at start under an advisory lock so
 * that processes starting together apply each migration once. `{{schema}}` is the store's schema.
 * Never edit a migration that has shipped: add a new one.
 */
export const POSTGRES_MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'core',
    sql: `
CREATE TABLE {{schema}}.instances (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  integration_id TEXT NOT NULL,
  mode TEXT NOT NULL,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  input_hash TEXT,
  output TEXT,
  error TEXT,
  run INTEGER NOT NULL DEFAULT 1,
  run_from TEXT,
  run_started_at BIGINT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  tracking JSONB,
  track_1 TEXT,
  track_2 TEXT,
  track_3 TEXT,
  ordering_key TEXT,
  idempotency_key TEXT,
  parent_id TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  run_at BIGINT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  duration_ms BIGINT,
  claim_token TEXT,
  lease_owner TEXT,
  lease_until BIGINT
);
CREATE INDEX instances_due ON {{schema}}.instances (run_at, seq) WHERE status IN ('queued', 'retrying');
CREATE INDEX instances_lease ON {{schema}}.instances (lease_until) WHERE status = 'running';
CREATE INDEX instances_ordering ON {{schema}}.instances (ordering_key, seq)
  WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'failed');
CREATE UNIQUE INDEX instances_idempotency ON {{schema}}.instances (integration_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX instances_integration ON {{schema}}.instances (integration_id, seq);
-- No index on status as a whole: every state change would write one more index entry (a status
-- change is never a HOT update). Failed instances, the ones operators look for, get a small one.
CREATE INDEX instances_failed ON {{schema}}.instances (integration_id, seq) WHERE status = 'failed';
CREATE INDEX instances_parent ON {{schema}}.instances (parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX instances_track_1 ON {{schema}}.instances (track_1) WHERE track_1 IS NOT NULL;
CREATE INDEX instances_track_2 ON {{schema}}.instances (track_2) WHERE track_2 IS NOT NULL;
CREATE INDEX instances_track_3 ON {{schema}}.instances (track_3) WHERE track_3 IS NOT NULL;

CREATE TABLE {{schema}}.runs (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  run_from TEXT,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  PRIMARY KEY (instance_id, run)
);

CREATE TABLE {{schema}}.steps (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  status TEXT NOT NULL,
  output TEXT,
  error TEXT,
  attempt INTEGER NOT NULL,
  started_at BIGINT NOT NULL,
  finished_at BIGINT NOT NULL,
  seeded BOOLEAN NOT NULL DEFAULT false,
  PRIMARY KEY (instance_id, run, name)
);

CREATE TABLE {{schema}}.events (
  id BIGSERIAL PRIMARY KEY,
  instance_id TEXT NOT NULL,
  integration_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  type TEXT NOT NULL,
  at BIGINT NOT NULL,
  data TEXT NOT NULL,
  -- The writing transaction: the stream delivers an event only once every transaction that could
  -- still add an earlier one has ended (see readEventStream).
  xid XID8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX events_instance ON {{schema}}.events (instance_id, id);
CREATE INDEX events_stream ON {{schema}}.events (xid, id);
`,
  },
  {
    version: 2,
    name: 'schedules',
    sql: `
CREATE TABLE {{schema}}.schedules (
  integration_id TEXT PRIMARY KEY,
  parameters TEXT NOT NULL DEFAULT '{}',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- One row per handled cron slot: the primary key is what makes a slot fire once across processes.
CREATE TABLE {{schema}}.schedule_slots (
  integration_id TEXT NOT NULL,
  slot_at BIGINT NOT NULL,
  outcome TEXT NOT NULL,
  instance_id TEXT,
  at BIGINT NOT NULL,
  PRIMARY KEY (integration_id, slot_at)
);

CREATE INDEX instances_scheduled_active ON {{schema}}.instances (integration_id)
  WHERE mode = 'scheduled' AND status IN ('queued', 'running', 'retrying');
CREATE INDEX instances_parent_status ON {{schema}}.instances (parent_id, status) WHERE parent_id IS NOT NULL;
`,
  },
  {
    version: 3,
    name: 'due instances in index order',
    sql: `
-- Whether another instance holds the ordering key for instance seq: an earlier one that is queued,
-- running, retrying or failed, or any running one (a rerun can queue an earlier instance while a
-- later one runs). Planned with the default settings (its SET clause also keeps it from being
-- inlined into due_instances, whose settings would push it to a sequential scan).
CREATE FUNCTION {{schema}}.order_held(key TEXT, s BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE
SET enable_bitmapscan = on
AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM {{schema}}.instances AS j
    WHERE j.ordering_key = key AND j.seq <> s
    AND (j.status = 'running' OR (j.seq < s AND j.status IN ('queued', 'running', 'retrying', 'failed'))))
$fn$;

-- The due instances a claim takes, in (run_at, seq) order, read along instances_due and stopping
-- after n. Without this, a queue table whose statistics lag a burst of accepts (the usual case: the
-- burst is the news) is planned as a bitmap scan of every due row and a sort, 80 times slower for
-- 20,000 due rows. The function's settings leave the ordered index scan as the only sensible plan.
CREATE FUNCTION {{schema}}.due_instances(now BIGINT, integration_ids TEXT[], n INTEGER)
RETURNS TABLE (seq BIGINT, resumed BOOLEAN)
LANGUAGE sql VOLATILE
-- A claim's batch is small next to the table: join it by primary key, never by scanning the table.
ROWS 10
SET enable_bitmapscan = off
SET enable_sort = off
AS $fn$
  SELECT i.seq, i.started_at IS NOT NULL FROM {{schema}}.instances AS i
  WHERE i.status IN ('queued', 'retrying') AND i.run_at <= now AND i.integration_id = ANY(integration_ids)
    AND (i.ordering_key IS NULL OR NOT {{schema}}.order_held(i.ordering_key, i.seq))
  ORDER BY i.run_at, i.seq LIMIT n FOR UPDATE OF i SKIP LOCKED
$fn$;
`,
  },
  {
    version: 4,
    name: 'instance state beside the instance',
    sql: `
-- What changes while an instance is scheduled and run (status, attempt, lease, result, times) moves
-- to a narrow table beside the wide, mostly immutable instance row. A status change cannot be a HOT
-- update (status is in the queue indexes' predicates), so every claim and every finish writes a new
-- row version and new index entries: on the narrow row that is two or three small entries instead
-- of a copy of the input and the tracking fields plus an entry in every index of the wide table.
-- integration_id, mode, ordering_key and parent_id are copied (they never change) for the queue
-- indexes. The view "instances" joins the two, so that readers see the columns they always saw.
CREATE TABLE {{schema}}.instance_state (
  seq BIGINT PRIMARY KEY,
  integration_id TEXT NOT NULL,
  mode TEXT NOT NULL,
  ordering_key TEXT,
  parent_id TEXT,
  status TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  run_at BIGINT NOT NULL,
  claim_token TEXT,
  lease_owner TEXT,
  lease_until BIGINT,
  started_at BIGINT,
  finished_at BIGINT,
  duration_ms BIGINT,
  updated_at BIGINT NOT NULL,
  output TEXT,
  error TEXT
);
INSERT INTO {{schema}}.instance_state (seq, integration_id, mode, ordering_key, parent_id, status, attempt, run_at,
  claim_token, lease_owner, lease_until, started_at, finished_at, duration_ms, updated_at, output, error)
SELECT seq, integration_id, mode, ordering_key, parent_id, status, attempt, run_at, claim_token, lease_owner,
  lease_until, started_at, finished_at, duration_ms, updated_at, output, error
FROM {{schema}}.instances;

ALTER TABLE {{schema}}.instances RENAME TO instance_rows;
-- Drops the indexes whose predicates read status (they are made again on instance_state below).
ALTER TABLE {{schema}}.instance_rows DROP COLUMN status, DROP COLUMN attempt, DROP COLUMN run_at,
  DROP COLUMN claim_token, DROP COLUMN lease_owner, DROP COLUMN lease_until, DROP COLUMN started_at,
  DROP COLUMN finished_at, DROP COLUMN duration_ms, DROP COLUMN updated_at, DROP COLUMN output,
  DROP COLUMN error;

CREATE INDEX instance_state_due ON {{schema}}.instance_state (run_at, seq) WHERE status IN ('queued', 'retrying');
CREATE INDEX instance_state_lease ON {{schema}}.instance_state (lease_until) WHERE status = 'running';
CREATE INDEX instance_state_ordering ON {{schema}}.instance_state (ordering_key, seq)
  WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'failed');
CREATE INDEX instance_state_failed ON {{schema}}.instance_state (integration_id, seq) WHERE status = 'failed';
CREATE INDEX instance_state_scheduled_active ON {{schema}}.instance_state (integration_id)
  WHERE mode = 'scheduled' AND status IN ('queued', 'running', 'retrying');
CREATE INDEX instance_state_parent_status ON {{schema}}.instance_state (parent_id, status) WHERE parent_id IS NOT NULL;

CREATE VIEW {{schema}}.instances AS
SELECT r.seq, r.id, r.integration_id, r.mode, s.status, r.input, r.input_hash, s.output, s.error, r.run, r.run_from,
  r.run_started_at, s.attempt, r.tracking, r.track_1, r.track_2, r.track_3, r.ordering_key, r.idempotency_key,
  r.parent_id, r.created_at, s.updated_at, s.run_at, s.started_at, s.finished_at, s.duration_ms, s.claim_token,
  s.lease_owner, s.lease_until
FROM {{schema}}.instance_rows AS r JOIN {{schema}}.instance_state AS s ON s.seq = r.seq;

CREATE OR REPLACE FUNCTION {{schema}}.order_held(key TEXT, s BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE
SET enable_bitmapscan = on
AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM {{schema}}.instance_state AS j
    WHERE j.ordering_key = key AND j.seq <> s
    AND (j.status = 'running' OR (j.seq < s AND j.status IN ('queued', 'running', 'retrying', 'failed'))))
$fn$;

-- PL/pgSQL rather than SQL: a SQL function with settings is planned again at every call (a quarter
-- of a millisecond per claim); a PL/pgSQL function keeps its plan for the session.
CREATE OR REPLACE FUNCTION {{schema}}.due_instances(now BIGINT, integration_ids TEXT[], n INTEGER)
RETURNS TABLE (seq BIGINT, resumed BOOLEAN)
LANGUAGE plpgsql VOLATILE
ROWS 10
SET enable_bitmapscan = off
SET enable_sort = off
AS $fn$
BEGIN
  RETURN QUERY
  SELECT i.seq, i.started_at IS NOT NULL FROM {{schema}}.instance_state AS i
  WHERE i.status IN ('queued', 'retrying') AND i.run_at <= now AND i.integration_id = ANY(integration_ids)
    AND (i.ordering_key IS NULL OR NOT {{schema}}.order_held(i.ordering_key, i.seq))
  ORDER BY i.run_at, i.seq LIMIT n FOR UPDATE OF i SKIP LOCKED;
END
$fn$;
`,
  },
  {
    version: 5,
    name: 'events keyed by instance',
    sql: `
-- Two activity events per attempt (started, and how it ended) make event inserts a large part of
-- running an instance. The primary key becomes (instance_id, id), the index an instance's activity
-- is read by, instead of an index of its own beside a key on id alone: one index entry less per
-- event. Ids still come from the sequence, so id alone stays unique.
ALTER TABLE {{schema}}.events DROP CONSTRAINT events_pkey;
DROP INDEX {{schema}}.events_instance;
ALTER TABLE {{schema}}.events ADD PRIMARY KEY (instance_id, id);
`,
  },
  {
    version: 6,
    name: 'durable waits, business events, callbacks and versions',
    sql: `
-- The version an instance started on (null: unversioned): it never changes, so it lives on the
-- instance row. A view may only gain columns at its end.
ALTER TABLE {{schema}}.instance_rows ADD COLUMN version TEXT;
CREATE OR REPLACE VIEW {{schema}}.instances AS
SELECT r.seq, r.id, r.integration_id, r.mode, s.status, r.input, r.input_hash, s.output, s.error, r.run, r.run_from,
  r.run_started_at, s.attempt, r.tracking, r.track_1, r.track_2, r.track_3, r.ordering_key, r.idempotency_key,
  r.parent_id, r.created_at, s.updated_at, s.run_at, s.started_at, s.finished_at, s.duration_ms, s.claim_token,
  s.lease_owner, s.lease_until, r.version
FROM {{schema}}.instance_rows AS r JOIN {{schema}}.instance_state AS s ON s.seq = r.seq;

-- A waiting instance is due at its wake-up time (its run_at), holds its ordering key, and keeps a
-- schedule with overlap "skip" from firing: the status sets of these indexes and functions gain it.
DROP INDEX {{schema}}.instance_state_due;
CREATE INDEX instance_state_due ON {{schema}}.instance_state (run_at, seq)
  WHERE status IN ('queued', 'retrying', 'waiting');
DROP INDEX {{schema}}.instance_state_ordering;
CREATE INDEX instance_state_ordering ON {{schema}}.instance_state (ordering_key, seq)
  WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting', 'failed');
DROP INDEX {{schema}}.instance_state_scheduled_active;
CREATE INDEX instance_state_scheduled_active ON {{schema}}.instance_state (integration_id)
  WHERE mode = 'scheduled' AND status IN ('queued', 'running', 'retrying', 'waiting');

CREATE OR REPLACE FUNCTION {{schema}}.order_held(key TEXT, s BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE
SET enable_bitmapscan = on
AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM {{schema}}.instance_state AS j
    WHERE j.ordering_key = key AND j.seq <> s
    AND (j.status = 'running' OR (j.seq < s AND j.status IN ('queued', 'running', 'retrying', 'waiting', 'failed'))))
$fn$;

CREATE OR REPLACE FUNCTION {{schema}}.due_instances(now BIGINT, integration_ids TEXT[], n INTEGER)
RETURNS TABLE (seq BIGINT, resumed BOOLEAN)
LANGUAGE plpgsql VOLATILE
ROWS 10
SET enable_bitmapscan = off
SET enable_sort = off
AS $fn$
BEGIN
  RETURN QUERY
  SELECT i.seq, i.started_at IS NOT NULL FROM {{schema}}.instance_state AS i
  WHERE i.status IN ('queued', 'retrying', 'waiting') AND i.run_at <= now AND i.integration_id = ANY(integration_ids)
    AND (i.ordering_key IS NULL OR NOT {{schema}}.order_held(i.ordering_key, i.seq))
  ORDER BY i.run_at, i.seq LIMIT n FOR UPDATE OF i SKIP LOCKED;
END
$fn$;

-- One row per durable wait of an instance's run (ctx.sleep, ctx.waitForEvent, a callback).
CREATE TABLE {{schema}}.waits (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  event TEXT,
  match_key TEXT,
  match_shape TEXT,
  expires_at BIGINT,
  look_back_from BIGINT,
  created_at BIGINT NOT NULL,
  resolved_at BIGINT,
  resolution TEXT,
  payload TEXT,
  event_id TEXT,
  event_seq BIGINT,
  PRIMARY KEY (instance_id, run, name)
);
-- An event finds the waits it resumes by (name, key of each armed shape): a look-up, however many wait.
CREATE INDEX waits_armed_events ON {{schema}}.waits (event, match_key)
  WHERE resolved_at IS NULL AND kind = 'event';

-- Every (event name, match shape) ever armed: the keys an event is looked up by (a short list).
CREATE TABLE {{schema}}.wait_shapes (
  event TEXT NOT NULL,
  shape TEXT NOT NULL,
  PRIMARY KEY (event, shape)
);

-- A callback's tokens: the secret part only as its SHA-256.
CREATE TABLE {{schema}}.callback_tokens (
  token_id TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  issued_at BIGINT NOT NULL
);
CREATE INDEX callback_tokens_instance ON {{schema}}.callback_tokens (instance_id);

-- Business events (POST /api/events), kept for the look-back window so that a wait armed just
-- after a matching event still sees it.
CREATE TABLE {{schema}}.business_events (
  seq BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  event_id TEXT,
  payload TEXT NOT NULL,
  received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX business_events_id ON {{schema}}.business_events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX business_events_name ON {{schema}}.business_events (name, seq);
CREATE INDEX business_events_received ON {{schema}}.business_events (received_at);
`,
  },
  {
    version: 7,
    name: 'acknowledged failures',
    sql: `
-- An operator's acknowledgement of a failure (when, and a note): the instance leaves the default
-- errors view. Rarely written (by an operator, and cleared by a rerun), so it lives on the instance
-- row, not on the narrow state row that every claim and finish rewrites. No index: the errors view
-- reads failed instances through instance_state_failed. A view may only gain columns at its end.
ALTER TABLE {{schema}}.instance_rows ADD COLUMN acknowledged_at BIGINT, ADD COLUMN acknowledged_note TEXT;
CREATE OR REPLACE VIEW {{schema}}.instances AS
SELECT r.seq, r.id, r.integration_id, r.mode, s.status, r.input, r.input_hash, s.output, s.error, r.run, r.run_from,
  r.run_started_at, s.attempt, r.tracking, r.track_1, r.track_2, r.track_3, r.ordering_key, r.idempotency_key,
  r.parent_id, r.created_at, s.updated_at, s.run_at, s.started_at, s.finished_at, s.duration_ms, s.claim_token,
  s.lease_owner, s.lease_until, r.version, r.acknowledged_at, r.acknowledged_note
FROM {{schema}}.instance_rows AS r JOIN {{schema}}.instance_state AS s ON s.seq = r.seq;
`,
  },
  {
    version: 8,
    name: 'file claims',
    sql: `
-- A record source's claim on a file version (an SFTP file at a size and modification time): the
-- first instance to claim it reads it; done once it was archived or deleted after the fan-out.
CREATE TABLE {{schema}}.file_claims (
  connection TEXT NOT NULL,
  path TEXT NOT NULL,
  version TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  claimed_at BIGINT NOT NULL,
  done_at BIGINT,
  PRIMARY KEY (connection, path, version)
);
CREATE INDEX file_claims_held ON {{schema}}.file_claims (instance_id) WHERE done_at IS NULL;
`,
  },
  {
    version: 9,
    name: 'trace context of instances',
    sql: `
-- The W3C traceparent an instance's spans continue (its accept span's, or the trigger's incoming
-- one): written once at accept and never changed, so it lives on the instance row, not on the narrow
-- state row. No index. A view may only gain columns at its end.
ALTER TABLE {{schema}}.instance_rows ADD COLUMN traceparent TEXT;
CREATE OR REPLACE VIEW {{schema}}.instances AS
SELECT r.seq, r.id, r.integration_id, r.mode, s.status, r.input, r.input_hash, s.output, s.error, r.run, r.run_from,
  r.run_started_at, s.attempt, r.tracking, r.track_1, r.track_2, r.track_3, r.ordering_key, r.idempotency_key,
  r.parent_id, r.created_at, s.updated_at, s.run_at, s.started_at, s.finished_at, s.duration_ms, s.claim_token,
  s.lease_owner, s.lease_until, r.version, r.acknowledged_at, r.acknowledged_note, r.traceparent
FROM {{schema}}.instance_rows AS r JOIN {{schema}}.instance_state AS s ON s.seq = r.seq;
`,
  },
  {
    version: 10,
    name: 'cloudevents and feeds',
    sql: `
-- The context attributes of the CloudEvent that started an instance (async triggers), beside the
-- instance rather than on it: only CloudEvent accepts write here, and the searches by type, source
-- and subject get indexes without adding one to the instance tables.
CREATE TABLE {{schema}}.cloud_events (
  instance_id TEXT PRIMARY KEY,
  event_id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT
);
CREATE INDEX cloud_events_type ON {{schema}}.cloud_events (type);
CREATE INDEX cloud_events_source ON {{schema}}.cloud_events (source);
CREATE INDEX cloud_events_subject ON {{schema}}.cloud_events (subject) WHERE subject IS NOT NULL;

-- Readers of the activity stream that keep their place across restarts (the activity webhook):
-- the cursor of the last event delivered, and the lease of the one process that delivers.
CREATE TABLE {{schema}}.feeds (
  name TEXT PRIMARY KEY,
  cursor TEXT NOT NULL,
  owner TEXT,
  lease_until BIGINT,
  updated_at BIGINT NOT NULL
);
`,
  },
  {
    version: 11,
    name: 'limits shared by processes',
    sql: `
-- A connection's rate, concurrency and circuit shared by every process of the store. Written a few
-- times a second per connection (rate slots are reserved in batches, concurrency slots leased for
-- a while), never on the accept, claim or commit paths.
CREATE TABLE {{schema}}.connection_rates (
  connection TEXT PRIMARY KEY,
  next_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE {{schema}}.connection_slots (
  connection TEXT NOT NULL,
  slot INTEGER NOT NULL,
  owner TEXT,
  lease_until DOUBLE PRECISION,
  PRIMARY KEY (connection, slot)
);
CREATE TABLE {{schema}}.connection_circuits (
  connection TEXT PRIMARY KEY,
  opened_at DOUBLE PRECISION
);
`,
  },
];
