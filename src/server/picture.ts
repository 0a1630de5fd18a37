/**
 * An integration as a picture: what starts it, its pattern, its steps in the order its runs take
 * them with the connections each step calls, and per step its times and failure share. A handler
 * is code, so the steps and calls come from what recent instances recorded (their activity
 * events), not from the definition; this pure function derives the picture from those records, so
 * that the API, the console and the tests read one answer.
 */
import type { z } from 'zod';
import type { ActivityEvent, Instance, Mode } from '../model.js';
import type { pictureSchema } from './api/picture-schemas.js';
import { rank } from './connection-stats.js';

export type Picture = z.output<typeof pictureSchema>;
type Step = Picture['steps'][number];
type ConnectionUse = Picture['steps'][number]['connections'][number];

/** One recent instance and its activity events (every run). */
export interface PictureSample {
  instance: Pick<Instance, 'id' | 'parentId' | 'run'>;
  events: Pick<ActivityEvent, 'id' | 'run' | 'type' | 'at' | 'data'>[];
}

export interface PictureInput {
  integration: { id: string; mode: Mode; description: string | null };
  /** The triggers of the definition (route, schedule, API). */
  triggers: Exclude<Picture['triggers'][number], { type: 'parent' }>[];
  /** The newest instances, newest first, at most `limit`. */
  samples: PictureSample[];
  limit: number;
  /** Creation times of the newest and the oldest sample. */
  span: { from: number | null; to: number | null };
  /** The integration of each sample's parent instance, by parent id (absent: not found). */
  parentIntegration: ReadonlyMap<string, string>;
  /** The children read of each sample, by the sample's id. */
  children: ReadonlyMap<string, { integrationId: string }[]>;
  /** The mode of a defined integration, null for one no longer defined. */
  modeOf: (integrationId: string) => Mode | null;
  advice: Picture['advice'];
}

/** Nearest rank of unsorted values (see {@link rank}). */
const nearestRank = (values: number[], p: number) =>
  rank(
    [...values].sort((a, b) => a - b),
    p,
  );

interface Tally {
  name: string;
  kind: 'step' | 'wait';
  waitKind: Step['waitKind'];
  instances: Set<string>;
  executions: number;
  finished: number;
  failures: number;
  durations: number[];
  connections: Map<string, ConnectionUse>;
  /** When it was first seen, across all samples (breaks ties of the order). */
  firstSeen: number;
}

const STEP_EVENTS = new Set([
  'step.started',
  'step.succeeded',
  'step.failed',
  'wait.started',
  'wait.resumed',
]);

export function drawPicture(input: PictureInput): Picture {
  const tallies = new Map<string, Tally>();
  const outside = new Map<string, ConnectionUse>();
  /** Per run of each sample, the step and wait names in the order the run first reached them. */
  const sequences: string[][] = [];
  const tally = (name: string): Tally => {
    let found = tallies.get(name);
    if (!found) {
      found = {
        name,
        kind: 'step',
        waitKind: null,
        instances: new Set(),
        executions: 0,
        finished: 0,
        failures: 0,
        durations: [],
        connections: new Map(),
        firstSeen: tallies.size,
      };
      tallies.set(name, found);
    }
    return found;
  };

  for (const { instance, events } of input.samples) {
    const byRun = new Map<number, string[]>();
    const waitingSince = new Map<string, number>();
    for (const event of [...events].sort((a, b) => a.id - b.id)) {
      const data = event.data;
      if (event.type === 'connection.call') {
        const step = typeof data.step === 'string' ? data.step : null;
        const uses = step === null ? outside : tally(step).connections;
        const id = String(data.connection ?? '?');
        const use = uses.get(id) ?? { id, calls: 0, failures: 0 };
        use.calls++;
        const status = typeof data.status === 'number' ? data.status : null;
        if (status === null || status >= 400) use.failures++;
        uses.set(id, use);
        continue;
      }
      if (!STEP_EVENTS.has(event.type) || typeof data.step !== 'string') continue;
      const step = tally(data.step);
      step.instances.add(instance.id);
      const sequence = byRun.get(event.run) ?? [];
      if (!sequence.includes(step.name)) sequence.push(step.name);
      byRun.set(event.run, sequence);
      const key = `${event.run}:${step.name}`;
      switch (event.type) {
        case 'step.succeeded':
        case 'step.failed':
          step.executions++;
          step.finished++;
          if (event.type === 'step.failed') step.failures++;
          if (typeof data.durationMs === 'number') step.durations.push(data.durationMs);
          break;
        case 'wait.started':
          step.kind = 'wait';
          if (data.kind === 'sleep' || data.kind === 'event' || data.kind === 'callback') {
            step.waitKind = data.kind;
          }
          step.executions++;
          waitingSince.set(key, event.at);
          break;
        case 'wait.resumed': {
          step.kind = 'wait';
          step.finished++;
          if (data.by === 'timeout') step.failures++;
          const since = waitingSince.get(key);
          if (since !== undefined) step.durations.push(event.at - since);
          waitingSince.delete(key);
          break;
        }
      }
    }
    sequences.push(...byRun.values());
  }

  const steps = inMostCommonOrder([...tallies.values()], sequences).map(
    (t): Step => ({
      name: t.name,
      kind: t.kind,
      waitKind: t.waitKind,
      instances: t.instances.size,
      executions: t.executions,
      failures: t.failures,
      failureShare: t.finished === 0 ? null : t.failures / t.finished,
      p50: nearestRank(t.durations, 0.5),
      p95: nearestRank(t.durations, 0.95),
      connections: byCalls(t.connections),
    }),
  );

  const parents = new Map<string, number>();
  for (const { instance } of input.samples) {
    const parent = instance.parentId === null ? undefined : input.parentIntegration.get(instance.parentId);
    if (parent !== undefined) parents.set(parent, (parents.get(parent) ?? 0) + 1);
  }
  const children = new Map<string, { instances: number; parents: number }>();
  for (const { instance } of input.samples) {
    const started = input.children.get(instance.id) ?? [];
    for (const integrationId of new Set(started.map((c) => c.integrationId))) {
      const entry = children.get(integrationId) ?? { instances: 0, parents: 0 };
      entry.parents++;
      entry.instances += started.filter((c) => c.integrationId === integrationId).length;
      children.set(integrationId, entry);
    }
  }

  const { integration } = input;
  return {
    integrationId: integration.id,
    mode: integration.mode,
    description: integration.description,
    pattern: integration.mode === 'sync' && children.size > 0 ? 'sync-to-async' : integration.mode,
    triggers: [
      ...input.triggers,
      ...[...parents].map(([integrationId, instances]) => ({
        type: 'parent' as const,
        integrationId,
        instances,
      })),
    ],
    children: [...children]
      .map(([integrationId, c]) => ({ integrationId, mode: input.modeOf(integrationId), ...c }))
      .sort((a, b) => b.instances - a.instances || a.integrationId.localeCompare(b.integrationId)),
    steps,
    outsideSteps: byCalls(outside),
    recent: {
      limit: input.limit,
      instances: input.samples.length,
      runs: input.samples.reduce((sum, { instance }) => sum + instance.run, 0),
      from: input.span.from,
      to: input.span.to,
    },
    advice: input.advice,
  };
}

const byCalls = (uses: Map<string, ConnectionUse>) =>
  [...uses.values()].sort((a, b) => b.calls - a.calls || a.id.localeCompare(b.id));

/**
 * The union of the runs' sequences in their most common order: a step goes before another when
 * more runs took it first; each step is ranked by how many others it goes before (a chain that
 * every run agrees on comes out exactly; a step only some runs take falls in where they took it).
 */
function inMostCommonOrder(tallies: Tally[], sequences: string[][]): Tally[] {
  const before = new Map<string, number>();
  for (const sequence of sequences) {
    sequence.forEach((a, i) => {
      for (const b of sequence.slice(i + 1)) before.set(`${a}\n${b}`, (before.get(`${a}\n${b}`) ?? 0) + 1);
    });
  }
  const votes = (a: string, b: string) => before.get(`${a}\n${b}`) ?? 0;
  const wins = new Map(
    tallies.map((t) => [
      t.name,
      tallies.filter((o) => o !== t && votes(t.name, o.name) > votes(o.name, t.name)).length,
    ]),
  );
  return [...tallies].sort((a, b) => wins.get(b.name)! - wins.get(a.name)! || a.firstSeen - b.firstSeen);
}
