export type { TandemConfig } from './define/config.js';
export { defineConfig } from './define/config.js';
export type {
  AsyncContext,
  AsyncDefinition,
  ChildCounts,
  FanOutOptions,
  FanOutResult,
  Integration,
  IntegrationDefinition,
  ScheduledContext,
  ScheduledDefinition,
  ScheduledInput,
  StartedInstance,
  SyncContext,
  SyncDefinition,
  SyncResponse,
} from './define/integration.js';
export { defineIntegration } from './define/integration.js';
export type { Parameters, ParameterValue } from './define/parameters.js';
export type { RetryPolicy } from './define/retry.js';
export type {
  Accepted,
  AcceptOptions,
  EngineOptions,
  InstanceDetail,
  Progress,
  RunNowOptions,
} from './engine/engine.js';
export { createEngine, Engine } from './engine/engine.js';
export type { ScheduleInfo, SlotEvent } from './engine/scheduler.js';
export * from './errors.js';
export type * from './model.js';
export * from './sources/index.js';
export { openStore } from './store/open.js';
export { SqliteStore } from './store/sqlite/store.js';
export type { Store } from './store/store.js';
