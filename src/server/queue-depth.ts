import type { Logger } from 'pino';
import { TandemError } from '../errors.js';
import { DUE, WAITING } from '../lifecycle/statuses.js';
import type { Store } from '../store/store.js';
import { withHeaders } from './auth-error.js';

export const DEFAULT_MAX_QUEUE_DEPTH = 100_000;
/** A count taking T ms is repeated no sooner than this many T later (at most ~4% of the time). */
const SLOW_COUNT_FACTOR = 25;
/**
 * The backlog: instances waiting for a worker. A durable wait (`waiting`) is due at its wake-up
 * time too, but it is not work piling up: a hundred thousand instances waiting for callbacks must
 * not turn new orders away.
 */
const BACKLOG = DUE.filter((status) => !WAITING.includes(status));

export interface QueueDepthOptions {
  /** Above this many queued or retrying instances, async triggers answer 429. */
  maxDepth: number;
  /** How often the depth is counted in the store. Default 1 s. */
  refreshMs?: number;
  /** Seconds announced in `Retry-After`. Default 5. */
  retryAfterSeconds?: number;
}

/**
 * Backpressure for async triggers. The depth is counted in the store once per refresh interval,
 * never per request; between counts each accept adds to the cached figure, so a burst is seen
 * before the next count. A count that fails leaves the last figure in place.
 */
export class QueueDepthGauge {
  private depth = 0;
  private timer: NodeJS.Timeout | null = null;
  private counting: Promise<void> | null = null;
  private lastCountMs = 0;
  private stopped = true;

  constructor(
    private readonly store: Pick<Store, 'countInstances'>,
    private readonly integrationIds: string[],
    private readonly options: QueueDepthOptions,
    private readonly logger: Logger,
  ) {}

  get current(): number {
    return this.depth;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The next count after the refresh interval, or later when counting is slow: a backlog of
   * hundreds of thousands takes tens of milliseconds to count, and the count must not take more
   * than a few percent of the time of the process that accepts the work.
   */
  private schedule(): void {
    if (this.stopped) return;
    const wait = Math.max(this.options.refreshMs ?? 1_000, this.lastCountMs * SLOW_COUNT_FACTOR);
    this.timer = setTimeout(async () => {
      await this.refresh();
      this.schedule();
    }, wait);
    this.timer.unref();
  }

  refresh(): Promise<void> {
    if (this.integrationIds.length === 0) return Promise.resolve();
    this.counting ??= (async () => {
      const started = performance.now();
      try {
        // The store's whole backlog, counted on the status index alone: every due (queued or
        // retrying) instance is async or scheduled work waiting for a worker (sync instances never are).
        this.depth = await this.store.countInstances({ status: BACKLOG });
      } catch (error) {
        this.logger.warn({ err: error }, 'counting the queue depth failed');
      } finally {
        this.lastCountMs = performance.now() - started;
        this.counting = null;
      }
    })();
    return this.counting;
  }

  /** Throws 429 (with `Retry-After`) when the queue is over its limit. */
  admit(): void {
    if (this.depth < this.options.maxDepth) return;
    const seconds = this.options.retryAfterSeconds ?? 5;
    throw withHeaders(
      new TandemError(
        'queue-full',
        `${this.depth} instances are waiting (limit ${this.options.maxDepth}); retry after ${seconds} s`,
        { queueDepth: this.depth, maxQueueDepth: this.options.maxDepth },
      ),
      { 'retry-after': String(seconds) },
    );
  }

  noteAccepted(count: number): void {
    this.depth += count;
  }
}
