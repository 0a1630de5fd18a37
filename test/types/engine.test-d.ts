/**
 * The engine's facade, checked by the compiler (`npm run typecheck` compiles this file with the
 * rest of test/): it does not hand out its store, so that the server, the CLI and the test kit go
 * through its methods; and accepting prepared rows is not named like the store's commit of a work
 * batch. Each `@ts-expect-error` stops compiling (as an unused directive) if that comes back.
 * Nothing here runs.
 */
import { expectTypeOf } from 'vitest';
import type { Accepted, Engine } from '../../src/engine/engine.js';
import type { NewInstance } from '../../src/store/store.js';

declare const engine: Engine;
declare const rows: NewInstance[];

// @ts-expect-error: the store stays inside the engine
void engine.store;
// @ts-expect-error: `commit` is the store's word for writing a work batch
void engine.commit;
expectTypeOf(engine.acceptPrepared(rows)).toEqualTypeOf<Promise<Accepted[]>>();
expectTypeOf(engine.countInstances({ status: 'queued' })).toEqualTypeOf<Promise<number>>();
expectTypeOf(engine.ping()).toEqualTypeOf<Promise<void>>();
