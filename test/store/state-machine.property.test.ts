/**
 * Property-based test of the instance state machine as the stores implement it: random sequences
 * of accepts, claims, finishes (with current and stale claim tokens, and waits for time or an
 * event), events sent, cancels, reruns and lease expiries run against a store and against a small model; after every command the store must agree
 * with the model, and the invariants of DESIGN.md §2 must hold.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { InstanceStatus } from '../../src/model.js';
import type { AttemptOutcome, NewWait, Store } from '../../src/store/store.js';
import { matchKey, matchShape } from '../../src/waits/match.js';
import { STORE_KINDS, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

interface ModelInstance {
  id: string;
  seq: number;
  key: string | null;
  status: InstanceStatus;
  run: number;
  attempt: number;
  token: string | null;
  leaseUntil: number;
  runAt: number;
  /** While waiting for an event: the value of its match, and when the wait times out. */
  waitFor: string | null;
  waitUntil: number;
  /** The sequence numbers of the events the waits of the current run took. */
  taken: number[];
}

interface Model {
  now: number;
  instances: ModelInstance[];
  /** Tokens that were valid once and are no longer. */
  staleTokens: { id: string; token: string }[];
  /** Business events sent, in order. */
  events: { value: string; at: number; seq: number }[];
}

const LEASE = 1_000;
/** How long a wait lasts, and how far back a wait for an event looks for one sent before it. */
const WAIT = 10;
const LOOK_BACK = 100;
const ACTIVE = new Set<InstanceStatus>(['queued', 'running', 'retrying', 'waiting']);
const FINAL = new Set<InstanceStatus>(['succeeded', 'failed', 'cancelled']);

/** What the model says a claim at `now` may take: due instances that head their ordering key, and expired leases. */
function claimable(model: Model): Set<string> {
  const ids = new Set<string>();
  for (const i of model.instances) {
    if (i.status === 'running' && i.leaseUntil < model.now) ids.add(i.id);
    if (
      (i.status === 'queued' || i.status === 'retrying' || i.status === 'waiting') &&
      i.runAt <= model.now
    ) {
      // Blocked by any other running instance of the key, or by an earlier one still holding it.
      const blocked = model.instances.some(
        (j) =>
          i.key !== null &&
          j.key === i.key &&
          j.id !== i.id &&
          (j.status === 'running' || (j.seq < i.seq && (ACTIVE.has(j.status) || j.status === 'failed'))),
      );
      if (!blocked) ids.add(i.id);
    }
  }
  return ids;
}

type Command = fc.AsyncCommand<Model, Store>;

class Accept implements Command {
  constructor(readonly key: string | null) {}
  check = () => true;
  async run(model: Model, store: Store) {
    const row = newRow({ orderingKey: this.key, runAt: model.now, createdAt: model.now });
    await store.insertInstances([row]);
    const seq = (await store.getInstance(row.id))!.seq;
    model.instances.push({
      id: row.id,
      seq,
      key: this.key,
      status: 'queued',
      run: 1,
      attempt: 0,
      token: null,
      leaseUntil: 0,
      runAt: model.now,
      waitFor: null,
      waitUntil: 0,
      taken: [],
    });
  }
  toString = () => `accept(${this.key})`;
}

class Claim implements Command {
  constructor(readonly limit: number) {}
  check = () => true;
  async run(model: Model, store: Store) {
    const allowed = claimable(model);
    const claimed = await store.claim({
      owner: 'w',
      limit: this.limit,
      leaseMs: LEASE,
      now: model.now,
      integrationIds: ['orders'],
    });
    expect(claimed.length).toBe(Math.min(this.limit, allowed.size));
    for (const c of claimed) {
      expect(allowed.has(c.instance.id)).toBe(true);
      const m = model.instances.find((i) => i.id === c.instance.id)!;
      if (m.token) model.staleTokens.push({ id: m.id, token: m.token });
      m.status = 'running';
      m.waitFor = null;
      m.attempt += 1;
      m.token = c.claimToken;
      m.leaseUntil = model.now + LEASE;
      expect(c.instance.attempt).toBe(m.attempt);
    }
  }
  toString = () => `claim(${this.limit})`;
}

/** How an attempt ends in these sequences: a wait is for time (`sleep`) or for an event with value a or b. */
type FinishKind = Exclude<AttemptOutcome['kind'], 'wait'> | 'sleep' | 'event-a' | 'event-b';

let waits = 0;

function waitOf(kind: 'sleep' | 'event-a' | 'event-b', now: number): NewWait {
  const name = `wait-${++waits}`;
  if (kind === 'sleep') {
    return {
      name,
      kind: 'sleep',
      event: null,
      matchKey: null,
      matchShape: null,
      expiresAt: now + WAIT,
      lookBackFrom: null,
      createdAt: now,
    };
  }
  const match = { k: kind.slice(-1) };
  return {
    name,
    kind: 'event',
    event: 'e',
    matchKey: matchKey(match),
    matchShape: matchShape(match),
    expiresAt: now + WAIT,
    lookBackFrom: now - LOOK_BACK,
    createdAt: now,
  };
}

class Finish implements Command {
  constructor(
    readonly pick: number,
    readonly kind: FinishKind,
  ) {}
  check = (model: Readonly<Model>) => model.instances.some((i) => i.status === 'running');
  async run(model: Model, store: Store) {
    const running = model.instances.filter((i) => i.status === 'running');
    const m = running[this.pick % running.length]!;
    const error = { name: 'Error', message: 'x' };
    const outcome: AttemptOutcome =
      this.kind === 'succeeded'
        ? { kind: 'succeeded', outputJson: '1' }
        : this.kind === 'failed'
          ? { kind: 'failed', error }
          : this.kind === 'retry'
            ? { kind: 'retry', error, runAt: model.now + 10, consumesAttempt: true }
            : { kind: 'wait', wait: waitOf(this.kind, model.now) };
    const { lost } = await store.commit({
      steps: [],
      events: [],
      finishes: [
        { instanceId: m.id, claimToken: m.token!, outcome, now: model.now, durationMs: 1, events: [] },
      ],
    });
    expect(lost).toEqual([]);
    model.staleTokens.push({ id: m.id, token: m.token! });
    m.token = null;
    if (outcome.kind !== 'wait') {
      m.status = this.kind === 'retry' ? 'retrying' : (this.kind as InstanceStatus);
      m.runAt = this.kind === 'retry' ? model.now + 10 : m.runAt;
      return;
    }
    // A wait gives its attempt back, and waits until its time unless an event kept in the
    // look-back window (and not taken by another wait of the run) fits it: then it is due at once.
    m.attempt = Math.max(m.attempt - 1, 0);
    const value = this.kind === 'sleep' ? null : this.kind.slice(-1);
    const kept = model.events.find(
      (e) => e.value === value && e.at >= model.now - LOOK_BACK && !m.taken.includes(e.seq),
    );
    if (kept) {
      m.status = 'queued';
      m.runAt = model.now;
      m.taken.push(kept.seq);
    } else {
      m.status = 'waiting';
      m.runAt = model.now + WAIT;
      m.waitFor = value;
      m.waitUntil = model.now + WAIT;
    }
  }
  toString = () => `finish(${this.pick}, ${this.kind})`;
}

class SendEvent implements Command {
  constructor(readonly value: string) {}
  check = () => true;
  async run(model: Model, store: Store) {
    const sent = await store.sendEvent(
      {
        name: 'e',
        id: null,
        payloadJson: JSON.stringify({ k: this.value, n: model.events.length }),
        receivedAt: model.now,
      },
      model.now,
    );
    model.events.push({ value: this.value, at: model.now, seq: sent.seq });
    const woken = model.instances.filter(
      (i) => i.status === 'waiting' && i.waitFor === this.value && i.waitUntil > model.now,
    );
    expect([...sent.resumed].sort()).toEqual(woken.map((i) => i.id).sort());
    for (const m of woken) {
      m.status = 'queued';
      m.runAt = model.now;
      m.waitFor = null;
      m.taken.push(sent.seq);
    }
  }
  toString = () => `send(${this.value})`;
}

class StaleFinish implements Command {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.staleTokens.length > 0;
  async run(model: Model, store: Store) {
    const stale = model.staleTokens[this.pick % model.staleTokens.length]!;
    const { lost } = await store.commit({
      steps: [],
      events: [],
      finishes: [
        {
          instanceId: stale.id,
          claimToken: stale.token,
          outcome: { kind: 'succeeded', outputJson: '2' },
          now: model.now,
          durationMs: 1,
          events: [],
        },
      ],
    });
    expect(lost).toEqual([stale.id]);
  }
  toString = () => `staleFinish(${this.pick})`;
}

class Cancel implements Command {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>) => model.instances.length > 0;
  async run(model: Model, store: Store) {
    const m = model.instances[this.pick % model.instances.length]!;
    const [outcome] = await store.cancel([m.id], model.now);
    if (m.status === 'succeeded' || m.status === 'cancelled') {
      expect(outcome).toEqual({ id: m.id, outcome: 'invalid-state', status: m.status });
      return;
    }
    expect(outcome?.outcome).toBe('done');
    if (m.token) model.staleTokens.push({ id: m.id, token: m.token });
    m.status = 'cancelled';
    m.token = null;
    m.waitFor = null;
  }
  toString = () => `cancel(${this.pick})`;
}

class Rerun implements Command {
  constructor(
    readonly pick: number,
    readonly from: 'failed-step' | 'start',
  ) {}
  check = (model: Readonly<Model>) => model.instances.length > 0;
  async run(model: Model, store: Store) {
    const m = model.instances[this.pick % model.instances.length]!;
    const [outcome] = await store.rerun({ ids: [m.id], from: this.from, now: model.now });
    if (!FINAL.has(m.status)) {
      expect(outcome).toEqual({ id: m.id, outcome: 'invalid-state', status: m.status });
      return;
    }
    m.run += 1;
    expect(outcome).toEqual({ id: m.id, outcome: 'done', run: m.run });
    m.status = 'queued';
    m.attempt = 0;
    m.runAt = model.now;
    m.taken = [];
  }
  toString = () => `rerun(${this.pick}, ${this.from})`;
}

class Advance implements Command {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model) {
    model.now += this.ms;
  }
  toString = () => `advance(${this.ms})`;
}

/** Runs a command, then checks the store against the model. */
function checked<C extends Command>(command: C): C {
  const run = command.run.bind(command);
  command.run = async (model, store) => {
    await run(model, store);
    await checkInvariants(model, store);
  };
  return command;
}

const commands = [
  fc.constantFrom(null, 'k1', 'k2').map((key) => checked(new Accept(key))),
  fc.integer({ min: 1, max: 4 }).map((limit) => checked(new Claim(limit))),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom<FinishKind>('succeeded', 'failed', 'retry', 'sleep', 'event-a', 'event-b'),
    )
    .map(([pick, kind]) => checked(new Finish(pick, kind))),
  fc.constantFrom('a', 'b').map((value) => checked(new SendEvent(value))),
  fc.nat().map((pick) => checked(new StaleFinish(pick))),
  fc.nat().map((pick) => checked(new Cancel(pick))),
  fc
    .tuple(fc.nat(), fc.constantFrom<'failed-step' | 'start'>('failed-step', 'start'))
    .map(([p, f]) => checked(new Rerun(p, f))),
  fc.constantFrom(5, 20, 600, 1_500).map((ms) => checked(new Advance(ms))),
];

async function checkInvariants(model: Model, store: Store) {
  for (const m of model.instances) {
    const stored = await store.getInstance(m.id);
    expect({ id: m.id, status: stored?.status, run: stored?.run, attempt: stored?.attempt }).toEqual({
      id: m.id,
      status: m.status,
      run: m.run,
      attempt: m.attempt,
    });
  }
  // At most one running instance per ordering key (a running one whose lease expired counts too:
  // nothing else of its key may start before it is taken over and finished).
  for (const key of ['k1', 'k2']) {
    expect(model.instances.filter((i) => i.key === key && i.status === 'running').length).toBeLessThanOrEqual(
      1,
    );
  }
}

describe.each(STORE_KINDS)('instance state machine (%s store)', (storeKind) => {
  it('agrees with the model on random command sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 60, size: 'max' }), async (cmds) => {
        const { store, cleanup } = await testStore(storeKind);
        try {
          const model: Model = { now: 1_700_000_000_000, instances: [], staleTokens: [], events: [] };
          await fc.asyncModelRun(() => ({ model, real: store }), cmds);
          await checkInvariants(model, store);
        } finally {
          await cleanup();
        }
      }),
      { numRuns: storeKind === 'sqlite' ? 60 : 25 },
    );
  }, 120_000);
});
