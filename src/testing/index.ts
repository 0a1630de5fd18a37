/**
 * `tandem/testing`: test integrations on the real engine and a real store, with a clock the test
 * moves and fake applications that answer as scripted. See docs/testing.md.
 */
export { ManualClock } from './clock.js';
export type {
  FailOptions,
  FakeAnswer,
  FakeApplication,
  FakeApplicationOptions,
  FakeRequest,
  FakeRoute,
  ScriptOptions,
} from './fake-application.js';
export { fakeApplication } from './fake-application.js';
export type {
  ConnectionCallRecord,
  TestEngineOptions,
  TestRequest,
  TestResponse,
  TestResult,
  TriggerOptions,
} from './test-engine.js';
export { createTestEngine, TestEngine } from './test-engine.js';
