/**
 * What a management route does with the role of its request beyond the guard's check: who a change
 * is recorded as, the rule that only an admin replaces an input, and the bodies a viewer does not
 * see (an instance's input and output, a run's input, a step's output, a wait's match: the
 * business data an integration carries, which reading the state of the work does not need).
 */
import type { FastifyRequest } from 'fastify';
import type { InstanceDetail } from '../../engine/engine.js';
import type { Actor, Instance, Role } from '../../model.js';
import { lacksRole } from '../admin-auth.js';
import { actorOf, grants, LOCAL_ACCESS } from '../tokens.js';

/** What a hidden body reads as. */
export const BODY_HIDDEN = '[hidden: this token does not see bodies]';

/** Who made the request, as recorded in the events it writes. */
export function actorIn(request: FastifyRequest): Actor {
  return actorOf(request.access ?? LOCAL_ACCESS);
}

/** Refuses (403) a request whose token lacks a role that a part of the request needs. */
export function requireRole(request: FastifyRequest, role: Role): void {
  const access = request.access ?? LOCAL_ACCESS;
  if (!grants(access.role, role)) throw lacksRole(access, role);
}

export function showsBodies(request: FastifyRequest): boolean {
  return (request.access ?? LOCAL_ACCESS).bodies;
}

export function instanceWithoutBodies<T extends Instance>(instance: T): T {
  return { ...instance, input: BODY_HIDDEN, output: instance.output === null ? null : BODY_HIDDEN };
}

export function detailWithoutBodies(detail: InstanceDetail): InstanceDetail {
  return {
    ...detail,
    instance: instanceWithoutBodies(detail.instance),
    runs: detail.runs.map((run) => ({ ...run, input: BODY_HIDDEN })),
    steps: detail.steps.map((step) => ({ ...step, output: step.output === null ? null : BODY_HIDDEN })),
    waits: detail.waits.map((wait) => ({
      ...wait,
      match: wait.match === null ? null : { hidden: BODY_HIDDEN },
    })),
  };
}
