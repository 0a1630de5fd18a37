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
];
