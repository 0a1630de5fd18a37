/**
 * Connection limits shared by the processes that open one SQLite file (the LimitStore contract in
 * ../store.ts). Each change is one short IMMEDIATE transaction; the processes share the machine's
 * clock, so times are plain Date.now().
 */
import type Database from 'better-sqlite3';
import type { LimitStore } from '../store.js';

export class SqliteLimits implements LimitStore {
  /** Several processes on one file are a choice made at start (`tandem start --workers`), not the rule. */
  readonly sharedByDefault = false;
  private readonly rate: Database.Statement;
  private readonly addSlot: Database.Statement;
  private readonly freeSlots: Database.Statement;
  private readonly lease: Database.Statement;
  private readonly renew: Database.Statement;
  private readonly release: Database.Statement;
  private readonly circuit: Database.Statement;
  private readonly writeOpen: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly assertOpen: () => void,
    /** Runs a write without waiting for the disk flush. */
    private readonly relaxed: <T>(write: () => T) => T,
  ) {
    this.rate = db.prepare(
      `INSERT INTO connection_rates (connection, next_at) VALUES (@connection, @now + @interval * @count)
       ON CONFLICT (connection) DO UPDATE SET next_at = max(next_at, @now) + @interval * @count
       RETURNING next_at - @interval * @count AS first`,
    );
    this.addSlot = db.prepare('INSERT OR IGNORE INTO connection_slots (connection, slot) VALUES (?, ?)');
    this.freeSlots = db.prepare(
      `SELECT slot FROM connection_slots WHERE connection = ? AND slot < ? AND (owner IS NULL OR lease_until < ?)
       ORDER BY slot LIMIT ?`,
    );
    this.lease = db.prepare(
      'UPDATE connection_slots SET owner = ?, lease_until = ? WHERE connection = ? AND slot = ?',
    );
    this.renew = db.prepare(
      'UPDATE connection_slots SET lease_until = ? WHERE connection = ? AND owner = ? AND slot = ?',
    );
    this.release = db.prepare(
      'UPDATE connection_slots SET owner = NULL, lease_until = NULL WHERE connection = ? AND owner = ? AND slot = ?',
    );
    this.circuit = db.prepare('SELECT opened_at FROM connection_circuits WHERE connection = ?');
    this.writeOpen = db.prepare(
      `INSERT INTO connection_circuits (connection, opened_at) VALUES (@connection, @openedAt)
       ON CONFLICT (connection) DO UPDATE SET opened_at = @openedAt`,
    );
  }

  async takeRateSlots(connection: string, intervalMs: number, count: number) {
    this.assertOpen();
    const now = Date.now();
    const row = this.relaxed(() =>
      this.db
        .transaction(
          () => this.rate.get({ connection, now, interval: intervalMs, count }) as { first: number },
        )
        .immediate(),
    );
    return { first: row.first, now };
  }

  async leaseSlots(connection: string, owner: string, max: number, want: number, leaseMs: number) {
    this.assertOpen();
    return this.relaxed(() =>
      this.db
        .transaction(() => {
          const now = Date.now();
          const free = this.freeSlots.all(connection, max, now, want) as { slot: number }[];
          if (free.length < want) {
            // The slot rows are made on first use (and when the limit grew).
            for (let slot = 0; slot < max; slot++) this.addSlot.run(connection, slot);
            free.splice(
              0,
              free.length,
              ...(this.freeSlots.all(connection, max, now, want) as { slot: number }[]),
            );
          }
          for (const { slot } of free) this.lease.run(owner, now + leaseMs, connection, slot);
          return free.map((row) => row.slot);
        })
        .immediate(),
    );
  }

  async renewSlots(connection: string, owner: string, slots: number[], leaseMs: number) {
    this.assertOpen();
    return this.relaxed(() =>
      this.db
        .transaction(() => {
          const until = Date.now() + leaseMs;
          return slots.filter((slot) => this.renew.run(until, connection, owner, slot).changes > 0);
        })
        .immediate(),
    );
  }

  async releaseSlots(connection: string, owner: string, slots: number[]) {
    this.assertOpen();
    this.relaxed(() =>
      this.db
        .transaction(() => {
          for (const slot of slots) this.release.run(connection, owner, slot);
        })
        .immediate(),
    );
  }

  async readCircuit(connection: string) {
    this.assertOpen();
    const row = this.circuit.get(connection) as { opened_at: number | null } | undefined;
    return { openedAt: row?.opened_at ?? null, now: Date.now() };
  }

  async writeCircuit(connection: string, open: boolean) {
    this.assertOpen();
    const now = Date.now();
    this.relaxed(() => this.writeOpen.run({ connection, openedAt: open ? now : null }));
    return now;
  }
}
