/**
 * Durable waits in the SQLite store: an attempt's wait finish (suspend, arm, take an event kept in
 * the look-back window), business events and callbacks that resolve waits and wake their
 * instances, and a wait's settling once its time has come. SQLite has one writer at a time: a wait
 * finish and an event that are sent at the same moment are serialised by the write lock, and each
 * reads what the other wrote before it, so a wait never misses an event sent while it was armed.
 */
import { activity, actorData, isFinal, NEVER, type WaitResolution } from '../../lifecycle/index.js';
import type { Actor, InstanceStatus, Json } from '../../model.js';
import { payloadKey } from '../../waits/match.js';
import { type WaitRow, waitFromRow } from '../rows.js';
import type {
  ArmCallback,
  CallbackOutcome,
  FinishWrite,
  NewBusinessEvent,
  NewWait,
  SentEventOutcome,
  WaitKey,
  WaitRecord,
} from '../store.js';
import { insertEvent } from './insert.js';
import type { Sqlite } from './statements.js';

/** A wait's primary key as the statements bind it. */
interface Key {
  instance_id: string;
  run: number;
  name: string;
}

/** A wait's columns besides its key, as the statements bind them. */
function waitColumns(wait: NewWait) {
  return {
    kind: wait.kind,
    event: wait.event,
    match_key: wait.matchKey,
    match_shape: wait.matchShape,
    expires_at: wait.expiresAt,
    look_back_from: wait.lookBackFrom,
    created_at: wait.createdAt,
  };
}

/** A wait row as SQLite returns it: its times are numbers. */
type Row = WaitRow & {
  expires_at: number | null;
  look_back_from: number | null;
  created_at: number;
  resolved_at: number | null;
};

function storedWait(s: Sqlite, key: Key): Row | undefined {
  return s.stmt.waitByKey.get(key.instance_id, key.run, key.name) as Row | undefined;
}

/** Resolves an armed wait (a resolved one keeps its resolution); false when it was resolved already. */
function resolve(
  s: Sqlite,
  key: Key,
  now: number,
  resolution: WaitResolution,
  taken: { payload: string | null; eventId: string | null; seq: number | null } = {
    payload: null,
    eventId: null,
    seq: null,
  },
): boolean {
  return (
    s.stmt.resolveWait.run({
      ...key,
      now,
      resolution,
      payload: taken.payload,
      event_id: taken.eventId,
      event_seq: taken.seq,
    }).changes === 1
  );
}

/**
 * Wakes the instance of a resolved wait if it is waiting on the wait's run, with its `wait.resumed`
 * event (`actor`: who sent the business event that resolved it, when that send wakes it).
 */
function wake(s: Sqlite, wait: Row, now: number, actor?: Actor): void {
  const woke = s.stmt.wake.get({ id: wait.instance_id, run: wait.run, now }) as
    | { integration_id: string }
    | undefined;
  if (!woke) return;
  insertEvent(
    s,
    activity(
      'wait.resumed',
      { instanceId: wait.instance_id, integrationId: woke.integration_id, run: wait.run, at: now },
      { step: wait.name, by: wait.resolution as WaitResolution, eventId: wait.event_id, ...actorData(actor) },
    ),
  );
}

/**
 * The finish of an attempt that reached a wait, in the commit's transaction: the wait is armed
 * unless the run has it already (a later attempt that reaches it finds the first one, its time
 * included), the instance waits until that time (or for ever), and a wait that is resolved —
 * before (a callback that came early) or now, by an event kept in the look-back window — wakes it
 * at once. False when the claim token no longer holds: nothing is written.
 */
export function finishWait(s: Sqlite, finish: FinishWrite, wait: NewWait): boolean {
  s.stmt.armWaitLeased.run({
    ...waitColumns(wait),
    instance_id: finish.instanceId,
    name: wait.name,
    token: finish.claimToken,
  });
  const held = s.stmt.leaseHeld.get(finish.instanceId, finish.claimToken) as { run: number } | undefined;
  if (!held) return false;
  const key: Key = { instance_id: finish.instanceId, run: held.run, name: wait.name };
  if (wait.kind === 'event' && wait.event !== null)
    s.stmt.insertShape.run(wait.event, wait.matchShape ?? '[]');
  let stored = storedWait(s, key)!;
  s.stmt.finishWait.run({
    id: finish.instanceId,
    token: finish.claimToken,
    now: finish.now,
    run_at: stored.expires_at ?? NEVER,
  });
  for (const event of finish.events) insertEvent(s, event);
  if (stored.resolved_at === null && stored.kind === 'event' && takeKeptEvent(s, stored, finish.now)) {
    stored = storedWait(s, key)!;
  }
  if (stored.resolved_at !== null) wake(s, stored, finish.now);
  return true;
}

/**
 * A field of a match whose value is text, as a JSON path and the value: SQL compares it exactly as
 * JavaScript does (numbers are left to `payloadKey`, which compares them as doubles). None: no such field.
 */
function textField(key: string | null): { path: string | null; value: string | null } {
  const match = key === null ? {} : (JSON.parse(key) as Record<string, Json>);
  for (const [field, value] of Object.entries(match)) {
    if (typeof value === 'string' && field !== '' && !/["\\]/.test(field))
      return { path: `$."${field}"`, value };
  }
  return { path: null, value: null };
}

/**
 * Resolves an armed event wait with the first kept event that fits it: of its name, received
 * within its look-back window, and not taken by another wait of the same instance and run.
 */
function takeKeptEvent(s: Sqlite, wait: Row, now: number): boolean {
  const shape = wait.match_shape ?? '[]';
  const from = wait.look_back_from ?? wait.created_at;
  let taken: { seq: number; event_id: string | null; payload: string } | undefined;
  const params = {
    name: wait.event,
    after: 0,
    from,
    instance_id: wait.instance_id,
    run: wait.run,
    ...textField(wait.match_key),
  };
  for (const event of s.stmt.keptEvents.iterate(params) as Iterable<{
    seq: number;
    event_id: string | null;
    payload: string;
  }>) {
    if (payloadKey(JSON.parse(event.payload) as Json, shape) === wait.match_key) {
      taken = event;
      break;
    }
  }
  if (!taken) return false;
  return resolve(s, wait, now, 'event', {
    payload: taken.payload,
    eventId: taken.event_id ?? String(taken.seq),
    seq: taken.seq,
  });
}

export function settleWait(s: Sqlite, key: WaitKey, now: number): WaitRecord | null {
  const k: Key = { instance_id: key.instanceId, run: key.run, name: key.name };
  const row = storedWait(s, k);
  if (!row) return null;
  if (row.resolved_at !== null || row.expires_at === null || row.expires_at > now) return waitFromRow(row);
  return s.db
    .transaction(() => {
      // Guarded by `resolved_at IS NULL`: an event or a callback that came first keeps its resolution.
      resolve(s, k, now, row.kind === 'sleep' ? 'time' : 'timeout');
      return waitFromRow(storedWait(s, k)!);
    })
    .immediate();
}

export function armCallback(s: Sqlite, request: ArmCallback): WaitRecord | null {
  return s.db
    .transaction(() => {
      if (s.stmt.leaseHeld.get(request.instanceId, request.claimToken) === undefined) return null;
      const key: Key = { instance_id: request.instanceId, run: request.run, name: request.wait.name };
      s.stmt.insertWait.run({ ...key, ...waitColumns(request.wait) });
      s.stmt.insertToken.run(
        request.tokenId,
        request.tokenHash,
        request.instanceId,
        request.run,
        request.wait.name,
        request.wait.createdAt,
      );
      return waitFromRow(storedWait(s, key)!);
    })
    .immediate();
}

/**
 * Stores business events in one transaction, each exactly as if it were sent alone, in order: a
 * repeated id (of an event stored before, or of one earlier in the same batch) is a duplicate, and
 * each event resolves the armed waits it fits that an earlier one did not take.
 */
export function sendEvents(s: Sqlite, events: NewBusinessEvent[], now: number): SentEventOutcome[] {
  return s.db.transaction(() => events.map((event) => storeEvent(s, event, now))).immediate();
}

function storeEvent(s: Sqlite, event: NewBusinessEvent, now: number): SentEventOutcome {
  if (event.id !== null) {
    const existing = s.stmt.businessEventById.get(event.id) as { seq: number } | undefined;
    if (existing) return { seq: existing.seq, duplicate: true, resumed: [] };
  }
  const { seq } = s.stmt.insertBusinessEvent.get(
    event.name,
    event.id,
    event.payloadJson,
    event.receivedAt,
  ) as {
    seq: number;
  };
  const resumed = new Set<string>();
  const shapes = s.stmt.shapesOf.all(event.name) as { shape: string }[];
  if (shapes.length === 0) return { seq, duplicate: false, resumed: [] };
  const payload = JSON.parse(event.payloadJson) as Json;
  const taken = { payload: event.payloadJson, eventId: event.id ?? String(seq), seq };
  for (const { shape } of shapes) {
    const key = payloadKey(payload, shape);
    if (key === null) continue;
    const armed = s.stmt.armedWaits.all({ event: event.name, key, now }) as Key[];
    for (const wait of armed) {
      if (!resolve(s, wait, now, 'event', taken)) continue;
      // A running instance is left alone: its wait finish finds the wait resolved and wakes at once.
      wake(s, storedWait(s, wait)!, now, event.actor);
      resumed.add(wait.instance_id);
    }
  }
  return { seq, duplicate: false, resumed: [...resumed] };
}

export function callbackTokenHash(s: Sqlite, tokenId: string): string | null {
  const row = s.stmt.tokenById.get(tokenId) as { hash: string } | undefined;
  return row?.hash ?? null;
}

export function resolveCallback(
  s: Sqlite,
  tokenId: string,
  payloadJson: string,
  now: number,
): CallbackOutcome {
  return s.db
    .transaction((): CallbackOutcome => {
      const token = s.stmt.tokenById.get(tokenId) as Key | undefined;
      if (!token) return { outcome: 'not-found' };
      const key: Key = { instance_id: token.instance_id, run: token.run, name: token.name };
      const wait = storedWait(s, key);
      const instance = s.stmt.instanceState.get(token.instance_id) as
        | { status: InstanceStatus; run: number; finished_at: number | null }
        | undefined;
      if (!wait || !instance) return { outcome: 'not-found' };
      // A wait its timeout resolved was not answered in time: the callback is late, not a repeat.
      if (wait.resolution === 'timeout') return { outcome: 'expired', expiredAt: wait.expires_at ?? now };
      if (wait.resolved_at !== null) return { outcome: 'used', resolvedAt: wait.resolved_at };
      if (wait.expires_at !== null && wait.expires_at <= now) {
        return { outcome: 'expired', expiredAt: wait.expires_at };
      }
      if (isFinal(instance.status) || instance.run !== wait.run) {
        return { outcome: 'expired', expiredAt: instance.finished_at ?? now };
      }
      if (!resolve(s, key, now, 'callback', { payload: payloadJson, eventId: null, seq: null })) {
        return { outcome: 'used', resolvedAt: storedWait(s, key)!.resolved_at! };
      }
      // A running instance (the callback came before its wait finish) wakes when that finish sees it.
      wake(s, storedWait(s, key)!, now);
      return { outcome: 'resumed', instanceId: token.instance_id };
    })
    .immediate();
}

export function getWaits(s: Sqlite, instanceId: string): WaitRecord[] {
  return (s.stmt.waitsOf.all(instanceId) as WaitRow[]).map(waitFromRow);
}

export function purgeEvents(s: Sqlite, receivedBefore: number, limit: number): number {
  return s.stmt.purgeEvents.run(receivedBefore, Math.max(0, limit)).changes;
}
