/**
 * Following the activity stream: reads pages from the store's gap-free stream and waits for more,
 * woken by local commits (and, on PostgreSQL, by other processes' notifications), with a short
 * poll as the safety net. The SSE route and the CLI consume this.
 */
import type { ActivityEvent } from '../model.js';
import type { EventStreamRequest, Store } from '../store/store.js';

export interface FollowOptions extends Omit<EventStreamRequest, 'after' | 'limit'> {
  /** Cursor to continue after (SSE Last-Event-ID); omitted: from the current end. */
  after?: string;
  signal: AbortSignal;
  /** Subscribes to "something was committed" hints; returns an unsubscribe. */
  onChange?: (listener: () => void) => () => void;
  pollMs?: number;
}

export async function* followActivity(
  store: Store,
  options: FollowOptions,
): AsyncGenerator<ActivityEvent & { cursor: string }> {
  const { signal, onChange, pollMs = 250, after, ...filter } = options;
  let cursor = after ?? (await store.eventStreamHead());
  let wake: (() => void) | null = null;
  const unsubscribe = onChange?.(() => wake?.());
  try {
    while (!signal.aborted) {
      const page = await store.readEventStream({ ...filter, after: cursor, limit: 500 });
      cursor = page.cursor;
      for (const event of page.events) {
        if (signal.aborted) return;
        yield event;
      }
      if (page.events.length === 500) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollMs);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wake = null;
          resolve();
        }
        wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    unsubscribe?.();
  }
}
