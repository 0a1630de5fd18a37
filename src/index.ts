export type { Advice, AdviceKind } from './advisor/advice.js';
export { advise } from './advisor/advice.js';
export type { Decision, DecisionQuestions, Pattern } from './advisor/decide.js';
export { decide } from './advisor/decide.js';
export type { AlertMessage } from './alerts/message.js';
export type { AlertEmail, AlertsOptions, AlertWebhook, BacklogAlert } from './alerts/options.js';
export type { Call, ClientOf, Use } from './connections/caller.js';
export type { CircuitOptions, CircuitState } from './connections/circuit.js';
export type {
  BindableConnection,
  CallContext,
  CallOutcome,
  Connection,
  ConnectionType,
} from './connections/connection.js';
export { ConnectionError } from './connections/connection.js';
export type { CallFailure, ConnectionAuth, HttpConnectionOptions } from './connections/definition.js';
export type { CallOptions } from './connections/http.js';
export { HttpConnection, HttpError, httpConnection } from './connections/http.js';
export type {
  PostgresClient,
  PostgresConnectionOptions,
  QuerySourceOptions,
  SqlResult,
} from './connections/postgres.js';
export { PostgresConnection, postgresConnection } from './connections/postgres.js';
export type { Query } from './connections/query.js';
export type { SecretRef } from './connections/secret.js';
export { secret } from './connections/secret.js';
export type { Sftp, SftpConnectionOptions, SftpEntry } from './connections/sftp.js';
export { SftpConnection, sftpConnection } from './connections/sftp.js';
export type { Mail, SentMail, SmtpClient, SmtpConnectionOptions } from './connections/smtp.js';
export { SmtpConnection, smtpConnection } from './connections/smtp.js';
export type { ApiToken, ServerOptions, TandemConfig } from './define/config.js';
export { defineConfig } from './define/config.js';
export type {
  AsyncContext,
  AsyncDefinition,
  Callback,
  CallbackOptions,
  ChildCounts,
  Duration,
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
  WaitForEventOptions,
} from './define/integration.js';
export { defineIntegration } from './define/integration.js';
export type { Parameters, ParameterValue } from './define/parameters.js';
export type { RetryPolicy } from './define/retry.js';
export type {
  ApiKeyAuth,
  JwtAlgorithm,
  JwtAuth,
  JwtClaimValue,
  StandardWebhooksAuth,
  TriggerAuth,
} from './define/trigger-auth.js';
export type {
  Accepted,
  AcceptOptions,
  EngineOptions,
  InstanceDetail,
  Progress,
  RetentionOptions,
  RunNowOptions,
  SendEvent,
  SentEvent,
} from './engine/engine.js';
export { createEngine, Engine } from './engine/engine.js';
export type { EngineObserver } from './engine/observer.js';
export type { ScheduleInfo, SlotEvent } from './engine/scheduler.js';
export type {
  AnswerCheck,
  SyncAnswered,
  SyncCall,
  SyncFailed,
  SyncFailureKind,
  SyncOutcome,
  SyncRunnerOptions,
} from './engine/sync.js';
export { SyncRunner } from './engine/sync.js';
export * from './errors.js';
export type { ActivityWebhookOptions } from './feeds/activity-webhook.js';
export type { Metrics } from './metrics.js';
export { createMetrics } from './metrics.js';
export type * from './model.js';
export type { AppOptions } from './server/app.js';
export { buildApp } from './server/app.js';
export type { SyncReply, SyncResult } from './server/sync-response.js';
export * from './sources/index.js';
export { openStore } from './store/open.js';
export { PostgresStore } from './store/postgres/store.js';
export { SqliteStore } from './store/sqlite/store.js';
export type { Store } from './store/store.js';
export type { TracingOptions } from './tracing/tracing.js';
