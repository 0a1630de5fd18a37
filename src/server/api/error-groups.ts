/**
 * Failed instances grouped so that an operator acts once per cause, not once per message: by
 * integration, error code, the step the run failed in and the connection the error came from.
 * Messages are examples inside a group, never part of its key (a `circuit-open` message carries
 * the milliseconds to the next probe, so keyed by message an outage made a group per instance).
 * A connection's `circuit-open` failures are the same outage as its other failures of the same
 * integration and step, so they join that group.
 */
import type { z } from 'zod';
import type { AnyIntegration } from '../../define/integration.js';
import type { Engine } from '../../engine/engine.js';
import type { Instance } from '../../model.js';
import type { errorGroupsSchema } from './operation-schemas.js';
import { redactInstance } from './redact.js';

export type ErrorGroup = z.infer<typeof errorGroupsSchema>['groups'][number];

/** Distinct example messages kept per group. */
const EXAMPLES = 3;
/** Failed instances read per page of a scan. */
const PAGE = 1000;

const SYNC_REASON =
  'Sync instances are never rerun: each caller already had its answer. Acknowledge them once the cause is dealt with.';

/** The failed instances a view reads: newest first, up to `limit`, with the step each run failed in. */
export async function scanFailures(
  engine: Engine,
  options: { integration?: string | undefined; acknowledged?: boolean | undefined; limit: number },
): Promise<{ instances: Instance[]; steps: Record<string, string>; truncated: boolean }> {
  const instances: Instance[] = [];
  const steps: Record<string, string> = {};
  let cursor: string | null = null;
  let truncated = false;
  do {
    const page = await engine.listInstances({
      status: 'failed',
      ...(options.integration === undefined ? {} : { integrationId: options.integration }),
      ...(options.acknowledged === undefined ? {} : { acknowledged: options.acknowledged }),
      limit: Math.min(PAGE, options.limit - instances.length),
      cursor,
    });
    instances.push(...page.items);
    Object.assign(steps, await engine.failedSteps(page.items));
    cursor = page.nextCursor;
    truncated = cursor !== null;
  } while (cursor !== null && instances.length < options.limit);
  return { instances, steps, truncated };
}

const codeOf = (instance: Instance) => instance.error?.code ?? null;
const connectionOf = (instance: Instance) => {
  const connection = instance.error?.details?.connection;
  return typeof connection === 'string' ? connection : null;
};

/** The same message but for its numbers (a probe's delay, a count): one example for all of them. */
const exampleKey = (message: string) => message.replace(/\d+/g, '#');

/** Groups failed instances (newest first), largest group first. */
export function groupFailures(
  instances: Instance[],
  steps: Record<string, string>,
  integrationOf: (id: string) => AnyIntegration | undefined,
): ErrorGroup[] {
  type Key = [integrationId: string, code: string | null, step: string | null, connection: string | null];
  const keyOf = new Map<Instance, Key>();
  const sizes = new Map<string, number>();
  for (const instance of instances) {
    const key: Key = [
      instance.integrationId,
      codeOf(instance),
      steps[instance.id] ?? null,
      connectionOf(instance),
    ];
    keyOf.set(instance, key);
    const text = JSON.stringify(key);
    sizes.set(text, (sizes.get(text) ?? 0) + 1);
  }
  // A circuit-open failure joins the largest group of the same integration, step and connection.
  for (const [instance, key] of keyOf) {
    if (key[1] !== 'circuit-open' || key[3] === null) continue;
    let best: { code: string | null; size: number } | null = null;
    for (const [text, size] of sizes) {
      const [integrationId, code, step, connection] = JSON.parse(text) as Key;
      if (integrationId !== key[0] || step !== key[2] || connection !== key[3] || code === 'circuit-open')
        continue;
      if (!best || size > best.size) best = { code, size };
    }
    if (best) keyOf.set(instance, [key[0], best.code, key[2], key[3]]);
  }

  const groups = new Map<string, ErrorGroup>();
  const examples = new Map<ErrorGroup, Map<string, ErrorGroup['examples'][number]>>();
  for (const stored of instances) {
    const integration = integrationOf(stored.integrationId);
    const instance = redactInstance(stored, integration);
    const key = keyOf.get(stored)!;
    const text = JSON.stringify(key);
    let group = groups.get(text);
    if (!group) {
      group = {
        key: text,
        integrationId: key[0],
        mode: instance.mode,
        code: key[1],
        codes: {},
        name: instance.error?.name ?? 'Error',
        step: key[2],
        connection: key[3],
        count: 0,
        acknowledged: 0,
        firstAt: instance.updatedAt,
        latestAt: instance.updatedAt,
        examples: [],
        instanceIds: [],
        rerun: rerunOf(instance, integration),
      };
      groups.set(text, group);
      examples.set(group, new Map());
    }
    group.count++;
    if (instance.acknowledgedAt !== null) group.acknowledged++;
    const code = codeOf(instance) ?? '(none)';
    group.codes[code] = (group.codes[code] ?? 0) + 1;
    group.firstAt = Math.min(group.firstAt, instance.updatedAt);
    group.latestAt = Math.max(group.latestAt, instance.updatedAt);
    group.instanceIds.push(instance.id);
    const message = instance.error?.message ?? '(no message)';
    const seen = examples.get(group)!;
    const example = seen.get(exampleKey(message));
    if (example) example.count++;
    else seen.set(exampleKey(message), { message, count: 1, instanceId: instance.id });
  }
  for (const [group, seen] of examples) {
    group.examples = [...seen.values()].sort((a, b) => b.count - a.count).slice(0, EXAMPLES);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || b.latestAt - a.latestAt);
}

/** Whether a group's instances can be rerun, and why not. */
function rerunOf(instance: Instance, integration: AnyIntegration | undefined): ErrorGroup['rerun'] {
  if (instance.mode === 'sync') return { possible: false, reason: SYNC_REASON };
  if (!integration)
    return {
      possible: false,
      reason: `This deployment has no integration "${instance.integrationId}" to run them on`,
    };
  return { possible: true, reason: null };
}
