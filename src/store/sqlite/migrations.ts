/**
 * Versioned schema migrations for the SQLite store, applied in order at open. Never edit a
 * migration that has shipped: add a new one.
 */
export const SQLITE_MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'core',
    sql: `
CREATE TABLE instances (
  seq INTEGER PRIMARY KEY,
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
  run_started_at INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  tracking TEXT,
  track_1 TEXT,
  track_2 TEXT,
  track_3 TEXT,
  ordering_key TEXT,
  idempotency_key TEXT,
  parent_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  duration_ms INTEGER,
  claim_token TEXT,
  lease_owner TEXT,
  lease_until INTEGER
);
CREATE INDEX instances_due ON instances (run_at, seq) WHERE status IN ('queued', 'retrying');
CREATE INDEX instances_lease ON instances (lease_until) WHERE status = 'running';
CREATE INDEX instances_ordering ON instances (ordering_key, seq)
  WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'failed');
CREATE UNIQUE INDEX instances_idempotency ON instances (integration_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX instances_integration ON instances (integration_id, seq);
CREATE INDEX instances_status ON instances (status, seq);
CREATE INDEX instances_parent ON instances (parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX instances_created ON instances (created_at);
CREATE INDEX instances_track_1 ON instances (track_1) WHERE track_1 IS NOT NULL;
CREATE INDEX instances_track_2 ON instances (track_2) WHERE track_2 IS NOT NULL;
CREATE INDEX instances_track_3 ON instances (track_3) WHERE track_3 IS NOT NULL;

CREATE TABLE runs (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  run_from TEXT,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  PRIMARY KEY (instance_id, run)
) WITHOUT ROWID;

CREATE TABLE steps (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  status TEXT NOT NULL,
  output TEXT,
  error TEXT,
  attempt INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  seeded INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (instance_id, run, name)
) WITHOUT ROWID;

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  integration_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  type TEXT NOT NULL,
  at INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX events_instance ON events (instance_id, id);
`,
  },
  {
    version: 2,
    name: 'schedules',
    sql: `
CREATE TABLE schedules (
  integration_id TEXT PRIMARY KEY,
  parameters TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per handled cron slot: the primary key is what makes a slot fire once across processes.
CREATE TABLE schedule_slots (
  integration_id TEXT NOT NULL,
  slot_at INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  instance_id TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (integration_id, slot_at)
) WITHOUT ROWID;

-- overlap 'skip' asks "is an instance of this schedule still active?" at every slot; only scheduled
-- instances enter this index, so other work pays nothing for it.
CREATE INDEX instances_scheduled_active ON instances (integration_id)
  WHERE mode = 'scheduled' AND status IN ('queued', 'running', 'retrying');

-- A waiting fan-out parent counts its children by status; covering, so no table rows are read.
CREATE INDEX instances_parent_status ON instances (parent_id, status) WHERE parent_id IS NOT NULL;
`,
  },
  {
    version: 3,
    name: 'due instances per integration',
    sql: `
-- A claim and the next-due query ask for the due instances of the integrations this process runs.
-- Along (run_at, seq) they walked past every due row of the other integrations, reading each row's
-- integration_id from the table: a process that runs a fan-out parent but not its children scanned
-- the whole backlog of children at every poll. Per integration, each asks for its first rows only.
DROP INDEX instances_due;
CREATE INDEX instances_due ON instances (integration_id, run_at, seq) WHERE status IN ('queued', 'retrying');
`,
  },
  {
    version: 4,
    name: 'durable waits, business events, callbacks and versions',
    sql: `
-- The integration version an instance started on (null: unversioned); it continues on that handler.
ALTER TABLE instances ADD COLUMN version TEXT;

-- A new status, 'waiting': due at its wake-up time, active, and holding its ordering key. The
-- partial indexes over those sets are made again with it (their predicates must equal the queries').
DROP INDEX instances_due;
CREATE INDEX instances_due ON instances (integration_id, run_at, seq)
  WHERE status IN ('queued', 'retrying', 'waiting');
DROP INDEX instances_ordering;
CREATE INDEX instances_ordering ON instances (ordering_key, seq)
  WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting', 'failed');
DROP INDEX instances_scheduled_active;
CREATE INDEX instances_scheduled_active ON instances (integration_id)
  WHERE mode = 'scheduled' AND status IN ('queued', 'running', 'retrying', 'waiting');

-- One row per wait of an instance's run (a sleep, a wait for an event, a callback), armed until it
-- resolves; a later attempt that reaches the same wait finds it here.
CREATE TABLE waits (
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  event TEXT,
  match_key TEXT,
  match_shape TEXT,
  expires_at INTEGER,
  look_back_from INTEGER,
  created_at INTEGER NOT NULL,
  resolved_at INTEGER,
  resolution TEXT,
  payload TEXT,
  event_id TEXT,
  event_seq INTEGER,
  PRIMARY KEY (instance_id, run, name)
) WITHOUT ROWID;
-- An event finds the waits it resumes by (name, key): an index look-up however many instances wait.
CREATE INDEX waits_armed ON waits (event, match_key) WHERE resolved_at IS NULL AND kind = 'event';

-- Every match shape ever armed per event name: an event computes its key for each of them.
CREATE TABLE wait_shapes (
  event TEXT NOT NULL,
  shape TEXT NOT NULL,
  PRIMARY KEY (event, shape)
) WITHOUT ROWID;

-- Callback tokens: the public part and the SHA-256 of the secret part, never the secret itself.
CREATE TABLE callback_tokens (
  token_id TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  run INTEGER NOT NULL,
  name TEXT NOT NULL,
  issued_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX callback_tokens_instance ON callback_tokens (instance_id);

-- Business events, kept for the look-back window so that a wait armed just after one sees it.
-- AUTOINCREMENT: a sequence number is never reused after retention deletes the newest events.
CREATE TABLE business_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  event_id TEXT,
  payload TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX business_events_id ON business_events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX business_events_name ON business_events (name, seq);
CREATE INDEX business_events_received ON business_events (received_at);
`,
  },
  {
    version: 5,
    name: 'acknowledged failures',
    sql: `
-- An operator's acknowledgement of a failure (when, and a note): the instance leaves the default
-- errors view. Set and cleared by an operator (and by a rerun), never on the accept, claim or finish
-- paths; no index: the errors view reads failed instances through instances_status.
ALTER TABLE instances ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE instances ADD COLUMN acknowledged_note TEXT;
`,
  },
  {
    version: 6,
    name: 'events of one commit in one row',
    sql: `
-- The activity events one commit writes for one instance (a step's start, its calls, its end, the
-- attempt's end) share a row: the row's own columns hold the first, \`more\` the rest as a JSON
-- array of [type, at, data]. Two B-tree writes (the table and events_instance) per row instead of
-- per event. An event's id is the row id times 16 plus its place in the row (at most 16 per row).
ALTER TABLE events ADD COLUMN more TEXT;
`,
  },
  {
    version: 7,
    name: 'file claims',
    sql: `
-- A record source's claim on a file version (an SFTP file at a size and modification time): the
-- first instance to claim it reads it; done once it was archived or deleted after the fan-out.
CREATE TABLE file_claims (
  connection TEXT NOT NULL,
  path TEXT NOT NULL,
  version TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  done_at INTEGER,
  PRIMARY KEY (connection, path, version)
) WITHOUT ROWID;
CREATE INDEX file_claims_held ON file_claims (instance_id) WHERE done_at IS NULL;
`,
  },
  {
    version: 8,
    name: 'trace context of instances',
    sql: `
-- The W3C traceparent an instance's spans continue (its accept span's, or the trigger's incoming
-- one): written once at accept, read by the claim; its trace id is shown with the instance. No index.
ALTER TABLE instances ADD COLUMN traceparent TEXT;
`,
  },
  {
    version: 9,
    name: 'cloudevents and feeds',
    sql: `
-- The context attributes of the CloudEvent that started an instance (async triggers), beside the
-- instance rather than on it: only CloudEvent accepts write here, and the searches by type, source
-- and subject get indexes without adding one to instances.
CREATE TABLE cloud_events (
  instance_id TEXT PRIMARY KEY,
  event_id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT
) WITHOUT ROWID;
CREATE INDEX cloud_events_type ON cloud_events (type);
CREATE INDEX cloud_events_source ON cloud_events (source);
CREATE INDEX cloud_events_subject ON cloud_events (subject) WHERE subject IS NOT NULL;

-- Readers of the activity stream that keep their place across restarts (the activity webhook):
-- the cursor of the last event delivered, and the lease of the one process that delivers.
CREATE TABLE feeds (
  name TEXT PRIMARY KEY,
  cursor TEXT NOT NULL,
  owner TEXT,
  lease_until INTEGER,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
  },
  {
    version: 10,
    name: 'limits shared by processes',
    sql: `
-- A connection's rate, concurrency and circuit shared by the processes of this file. Written a few
-- times a second per connection (rate slots are reserved in batches, concurrency slots leased for
-- a while), never on the accept, claim or commit paths.
CREATE TABLE connection_rates (
  connection TEXT PRIMARY KEY,
  next_at REAL NOT NULL
);
CREATE TABLE connection_slots (
  connection TEXT NOT NULL,
  slot INTEGER NOT NULL,
  owner TEXT,
  lease_until REAL,
  PRIMARY KEY (connection, slot)
);
CREATE TABLE connection_circuits (
  connection TEXT PRIMARY KEY,
  opened_at REAL
);
`,
  },
];
