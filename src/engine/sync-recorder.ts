import type { Logger } from 'pino';
import type { NewInstance, Store } from '../store/store.js';

export interface SyncRecorderOptions {
  /** Longest time a record waits before it is written. Default 200 ms. */
  flushMs?: number;
  /** A batch this large is written at once. Default 1,000. */
  maxBatch?: number;
  /** Records beyond this many waiting are dropped (the store is down or too slow). Default 50,000. */
  maxPending?: number;
}

/**
 * Writes the monitoring records of sync instances off the response path, many per transaction.
 * Sync instances are not durable work, so a record lost in a crash costs only a statistic; in
 * exchange a busy sync route costs a few transactions a second instead of one disk flush per request
 * (better-sqlite3 flushes on the event loop).
 */
export class SyncRecorder {
  private pending: NewInstance[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private dropped = 0;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly maxPending: number;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    options: SyncRecorderOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 200;
    this.maxBatch = options.maxBatch ?? 1_000;
    this.maxPending = options.maxPending ?? 50_000;
  }

  record(row: NewInstance): void {
    if (this.pending.length >= this.maxPending) {
      this.dropped++;
      return;
    }
    this.pending.push(row);
    if (this.pending.length >= this.maxBatch && !this.writing) void this.write();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.write();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes everything recorded so far. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.pending.length > 0 || this.writing) {
      if (this.writing) await this.writing;
      else await this.write();
    }
  }

  private write(): Promise<void> {
    if (this.writing) return this.writing;
    const batch = this.pending.splice(0, this.maxBatch);
    if (batch.length === 0) return Promise.resolve();
    this.writing = (async () => {
      try {
        await this.store.insertInstances(batch, { flush: false });
      } catch (error) {
        this.logger.warn({ err: error, records: batch.length }, 'writing sync monitoring records failed');
      } finally {
        this.writing = null;
        if (this.dropped > 0) {
          this.logger.warn({ dropped: this.dropped }, 'sync monitoring records dropped (store too slow)');
          this.dropped = 0;
        }
        if (this.pending.length > 0 && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = null;
            void this.write();
          }, this.flushMs);
          this.timer.unref();
        }
      }
    })();
    return this.writing;
  }
}
