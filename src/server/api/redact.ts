/**
 * Masks secrets in what the management API shows of an instance (lists, detail, runs, steps,
 * events, waits, errors): the field paths an integration lists in `redact`, any field whose name says it
 * holds a secret, and every occurrence of those fields' values elsewhere. What the engine derives
 * is masked before it is written already; this masks what is stored as given (the input and step
 * results an async instance needs to run) and anything written before a path was added to `redact`.
 */
import type { AnyIntegration } from '../../define/integration.js';
import type { InstanceDetail } from '../../engine/engine.js';
import type { Instance } from '../../model.js';
import { Redactor } from '../../redaction.js';

export function redactInstance<T extends Instance>(
  instance: T,
  integration: AnyIntegration | undefined,
  redactor = Redactor.of(integration?.redact, instance.input),
): T {
  return {
    ...instance,
    input: redactor.shown(instance.input),
    output: redactor.shown(instance.output),
    error: redactor.error(instance.error),
    tracking: redactor.json(instance.tracking),
    orderingKey: instance.orderingKey === null ? null : redactor.text(instance.orderingKey),
  };
}

export function redactDetail(
  detail: InstanceDetail,
  integration: AnyIntegration | undefined,
): InstanceDetail {
  // Every run's input: an edited rerun replaced the input, and the earlier runs' texts hold the old values.
  const redactor = Redactor.of(
    integration?.redact,
    detail.instance.input,
    ...detail.runs.map((run) => run.input),
  );
  return {
    ...detail,
    instance: redactInstance(detail.instance, integration, redactor),
    runs: detail.runs.map((run) => ({
      ...run,
      input: redactor.shown(run.input),
      error: redactor.error(run.error),
    })),
    steps: detail.steps.map((step) => ({
      ...step,
      name: redactor.text(step.name),
      output: redactor.shown(step.output),
      error: redactor.error(step.error),
    })),
    events: detail.events.map((event) => ({ ...event, data: redactor.json(event.data) })),
    // A wait's match holds values of the input (an employee id, or a secret someone matched on).
    waits: detail.waits.map((wait) => ({
      ...wait,
      name: redactor.text(wait.name),
      match: wait.match === null ? null : redactor.json(wait.match),
    })),
  };
}
