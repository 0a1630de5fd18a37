/**
 * GET /api/overview: what the console's overview draws, from the store rather than from what a
 * page happened to see since it was opened — so the figures survive a reload and a restart. The
 * window is a whole number of buckets on UTC minute (or hour) boundaries, the last one still filling.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

/** Bucket width and count per window. */
const OVERVIEW_WINDOWS = {
  hour: { bucketMs: 60_000, buckets: 60 },
  day: { bucketMs: 3_600_000, buckets: 24 },
} as const;

export function overviewRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;
  serve(app, API_ROUTES.getOverview, async (request) => {
    const window = request.query.window;
    const { bucketMs, buckets: count } = OVERVIEW_WINDOWS[window];
    const now = engine.clock.now();
    const since = Math.floor(now / bucketMs) * bucketMs - (count - 1) * bucketMs;
    const figures = await engine.overview({ since, until: now + 1, bucketMs, now });
    // The store leaves out the buckets in which nothing was created: their zeros are real.
    const stored = new Map(figures.buckets.map((bucket) => [bucket.start, bucket]));
    const buckets = Array.from({ length: count }, (_, i) => {
      const start = since + i * bucketMs;
      return stored.get(start) ?? { start, accepted: 0, succeeded: 0, failed: 0, p95: null };
    });
    const oldest = figures.oldestUnfinished;
    return {
      window,
      bucketMs,
      since,
      until: now,
      ...figures,
      buckets,
      oldestUnfinished: oldest ? { ...oldest, ageMs: Math.max(0, now - oldest.since) } : null,
    };
  });
}
