/**
 * Group commit: callers push items and get a promise; one flush per event-loop turn hands every
 * pending item to `flush` at once (one transaction), then settles each caller's promise. While a
 * flush runs, new items gather for the next one, so under load a single disk flush serves many
 * callers and when idle the latency is one tick. An `eager` batcher flushes once the current task's
 * microtasks ran instead of a tick later: items of one task (and those gathering while a flush runs)
 * still share a flush, and a lone caller does not wait behind the other work of the event loop.
 */
export class Batcher<T, R> {
  private pending: { item: T; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 5_000,
    private readonly eager = false,
  ) {}

  push(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  get size(): number {
    return this.pending.length;
  }

  /** Resolves once every item pushed so far has been flushed. */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.flushing) {
      if (this.flushing) await this.flushing;
      else await this.run();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      void this.run();
    };
    if (this.eager) queueMicrotask(flush);
    else setImmediate(flush);
  }

  private run(): Promise<void> {
    if (this.flushing) return this.flushing;
    const batch = this.pending.splice(0, this.maxBatch);
    if (batch.length === 0) return Promise.resolve();
    this.flushing = (async () => {
      try {
        const results = await this.flush(batch.map((entry) => entry.item));
        batch.forEach((entry, index) => {
          entry.resolve(results[index] as R);
        });
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      } finally {
        this.flushing = null;
        if (this.pending.length > 0) this.schedule();
      }
    })();
    return this.flushing;
  }
}
