import type { InstanceWork, Mode } from '../model.js';

/**
 * Hooks into what the engine does, for metrics and other in-process watchers. Every hook is
 * optional and must not throw (a throwing observer is logged and ignored).
 */
export interface EngineObserver {
  /** Instances newly committed (idempotent repeats not counted). */
  accepted?(integrationId: string, mode: Mode, count: number): void;
  /** An attempt began; `takenOver` when another worker's lease had expired. */
  started?(instance: InstanceWork, takenOver: boolean): void;
  /** An attempt ended and its outcome was stored; `attemptMs` is that attempt's own time. */
  finished?(instance: InstanceWork, outcome: 'succeeded' | 'failed' | 'retry', attemptMs: number): void;
  /** A sync instance answered its caller. */
  syncFinished?(integrationId: string, outcome: 'succeeded' | 'failed', durationMs: number): void;
}
