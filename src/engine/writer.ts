import type { NewActivityEvent } from '../model.js';
import type { FinishWrite, StepWrite, Store, WorkBatch } from '../store/store.js';
import { Batcher } from './batcher.js';

type WorkItem =
  | { kind: 'step'; write: StepWrite }
  | { kind: 'finish'; write: FinishWrite }
  | { kind: 'event'; event: NewActivityEvent };

/**
 * Batched completion: step results, attempt ends and activity events from every running attempt
 * are written in one transaction per tick. Each write resolves to whether the attempt still held
 * its lease (false: the write was dropped).
 */
export class WorkWriter {
  private readonly batcher: Batcher<WorkItem, boolean>;

  constructor(
    store: Store,
    private readonly onError: (error: unknown) => void,
    /** How long a failing commit is retried (a database restart), before the attempt is abandoned to lease expiry. */
    retryForMs = 15_000,
    /** Called after every commit (activity followers wake on it). */
    onCommitted: () => void = () => {},
  ) {
    this.batcher = new Batcher(async (items) => {
      const batch: WorkBatch = { steps: [], finishes: [], events: [] };
      for (const item of items) {
        if (item.kind === 'step') batch.steps.push(item.write);
        else if (item.kind === 'finish') batch.finishes.push(item.write);
        else batch.events.push(item.event);
      }
      const { lost } = await commitWithRetry(store, batch, retryForMs, onError);
      onCommitted();
      const lostSet = new Set(lost);
      return items.map((item) => item.kind === 'event' || !lostSet.has(item.write.instanceId));
    });
  }

  step(write: StepWrite): Promise<boolean> {
    return this.batcher.push({ kind: 'step', write });
  }

  finish(write: FinishWrite): Promise<boolean> {
    return this.batcher.push({ kind: 'finish', write });
  }

  /** Fire and forget: an event is written with the next batch; a failure is logged. */
  event(event: NewActivityEvent): void {
    this.batcher.push({ kind: 'event', event }).catch(this.onError);
  }

  drain(): Promise<void> {
    return this.batcher.drain();
  }
}

/**
 * Commits a batch, retrying with backoff while the store fails (e.g. the database restarts). A
 * retry of a commit that did go through is harmless: step writes are upserts, and a repeated
 * finish finds its claim token already cleared and reports the lease as lost.
 */
async function commitWithRetry(
  store: Store,
  batch: WorkBatch,
  retryForMs: number,
  onError: (error: unknown) => void,
): Promise<{ lost: string[] }> {
  const deadline = Date.now() + retryForMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    try {
      return await store.commit(batch);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'store-closed' || Date.now() + delay > deadline) throw error;
      onError(error);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
