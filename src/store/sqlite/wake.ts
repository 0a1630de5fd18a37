/**
 * Wake-ups across processes on the embedded store. SQLite has no LISTEN/NOTIFY, so a worker process
 * beside an api process (the layout `tandem start` supervises) would otherwise learn of an accept
 * only at its poll interval. `PRAGMA data_version` changes only when another connection commits to
 * the file, and reading it touches no page, so polling it often while someone listens costs little
 * and fires the listeners within one interval of another process's commit. This connection's own
 * commits do not change it: in-process accepts wake the engine directly.
 */
import type Database from 'better-sqlite3';

/** How often the version is read while someone listens: well under the engine's 1 s poll. */
const WAKE_POLL_MS = 50;

/** Fires its listeners when another connection has committed to the database since the last look. */
export class CommitWatch {
  private readonly listeners = new Set<() => void>();
  private readonly version: Database.Statement;
  private timer: NodeJS.Timeout | null = null;
  private seen = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly intervalMs = WAKE_POLL_MS,
  ) {
    this.version = db.prepare('PRAGMA data_version').pluck();
  }

  /** Adds a listener; the timer runs (unref'd) while there is one. Returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (this.timer === null) {
      this.seen = this.version.get() as number;
      this.timer = setInterval(() => this.look(), this.intervalMs);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private look(): void {
    if (!this.db.open) {
      this.stop();
      return;
    }
    let version: number;
    try {
      version = this.version.get() as number;
    } catch {
      // A read that failed (the file busy in recovery, a disk error) says nothing: look again next time.
      return;
    }
    if (version === this.seen) return;
    this.seen = version;
    for (const listener of [...this.listeners]) listener();
  }
}
