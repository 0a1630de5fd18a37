/**
 * Connection limits shared by the processes of one PostgreSQL store (the LimitStore contract in
 * ../store.ts). Every time is the database's clock, so processes on machines whose clocks differ
 * still space their calls on one timeline.
 */
import type { LimitStore } from '../store.js';
import type { PgConnection } from './connection.js';

const NOW = `(extract(epoch FROM clock_timestamp()) * 1000)::double precision`;

export class PostgresLimits implements LimitStore {
  readonly sharedByDefault = true;
  /** Connections whose slot rows exist up to this many slots (made once per process). */
  private readonly slotRows = new Map<string, number>();

  constructor(private readonly db: PgConnection) {}

  async takeRateSlots(connection: string, intervalMs: number, count: number) {
    this.db.assertOpen();
    const { rows } = await this.db.prepared(
      'limits_rate',
      `WITH t AS (SELECT ${NOW} AS now)
       INSERT INTO {{schema}}.connection_rates AS r (connection, next_at)
       SELECT $1, t.now + $2::double precision * $3 FROM t
       ON CONFLICT (connection) DO UPDATE
         SET next_at = GREATEST(r.next_at, (SELECT now FROM t)) + $2::double precision * $3
       RETURNING r.next_at - $2::double precision * $3 AS first, (SELECT now FROM t) AS now`,
      [connection, intervalMs, count],
    );
    const row = rows[0] as { first: number; now: number };
    return { first: Number(row.first), now: Number(row.now) };
  }

  async leaseSlots(connection: string, owner: string, max: number, want: number, leaseMs: number) {
    this.db.assertOpen();
    if ((this.slotRows.get(connection) ?? 0) < max) {
      await this.db.q(
        this.db.pool,
        `INSERT INTO {{schema}}.connection_slots (connection, slot)
         SELECT $1, g FROM generate_series(0, $2::int - 1) AS g ON CONFLICT DO NOTHING`,
        [connection, max],
      );
      this.slotRows.set(connection, max);
    }
    // The queue pattern of claims: free or expired slots, skipping those another process is taking.
    const { rows } = await this.db.prepared(
      'limits_lease',
      `WITH t AS (SELECT ${NOW} AS now),
       free AS (
         SELECT slot FROM {{schema}}.connection_slots
         WHERE connection = $1 AND slot < $3 AND (owner IS NULL OR lease_until < (SELECT now FROM t))
         ORDER BY slot LIMIT $4 FOR UPDATE SKIP LOCKED)
       UPDATE {{schema}}.connection_slots s SET owner = $2, lease_until = (SELECT now FROM t) + $5
       FROM free WHERE s.connection = $1 AND s.slot = free.slot RETURNING s.slot`,
      [connection, owner, max, want, leaseMs],
    );
    return (rows as { slot: number }[]).map((row) => row.slot);
  }

  async renewSlots(connection: string, owner: string, slots: number[], leaseMs: number) {
    this.db.assertOpen();
    const { rows } = await this.db.prepared(
      'limits_renew',
      `UPDATE {{schema}}.connection_slots SET lease_until = ${NOW} + $4
       WHERE connection = $1 AND owner = $2 AND slot = ANY($3::int[]) RETURNING slot`,
      [connection, owner, slots, leaseMs],
    );
    return (rows as { slot: number }[]).map((row) => row.slot);
  }

  async releaseSlots(connection: string, owner: string, slots: number[]) {
    this.db.assertOpen();
    await this.db.prepared(
      'limits_release',
      `UPDATE {{schema}}.connection_slots SET owner = NULL, lease_until = NULL
       WHERE connection = $1 AND owner = $2 AND slot = ANY($3::int[])`,
      [connection, owner, slots],
    );
  }

  async readCircuit(connection: string) {
    this.db.assertOpen();
    const { rows } = await this.db.prepared(
      'limits_circuit',
      `SELECT ${NOW} AS now, (SELECT opened_at FROM {{schema}}.connection_circuits WHERE connection = $1) AS opened_at`,
      [connection],
    );
    const row = rows[0] as { now: number; opened_at: number | null };
    return { openedAt: row.opened_at === null ? null : Number(row.opened_at), now: Number(row.now) };
  }

  async writeCircuit(connection: string, open: boolean) {
    this.db.assertOpen();
    const { rows } = await this.db.prepared(
      'limits_circuit_write',
      `WITH t AS (SELECT ${NOW} AS now)
       INSERT INTO {{schema}}.connection_circuits AS c (connection, opened_at)
       SELECT $1, CASE WHEN $2::boolean THEN t.now END FROM t
       ON CONFLICT (connection) DO UPDATE SET opened_at = EXCLUDED.opened_at
       RETURNING (SELECT now FROM t) AS now`,
      [connection, open],
    );
    return Number((rows[0] as { now: number }).now);
  }
}
