/**
 * Masks secrets in what the management API shows of an instance: the field paths an integration
 * lists in `redact`, and any field whose name says it holds a secret.
 */
import type { AnyIntegration } from '../../define/integration.js';
import type { InstanceDetail } from '../../engine/engine.js';
import type { Instance } from '../../model.js';

export const REDACTED = '[redacted]';
const SECRET_NAME =
  /^(password|passwd|secret|token|access_?token|refresh_?token|api_?key|authorization|client_?secret)$/i;

export function redactValue(value: unknown, paths: readonly string[]): unknown {
  const masked = maskNamed(value);
  for (const path of paths) maskPath(masked, path.split('.'));
  return masked;
}

export function redactInstance<T extends Instance>(instance: T, integration: AnyIntegration | undefined): T {
  const paths = integration?.redact ?? [];
  return {
    ...instance,
    input: redactValue(instance.input, paths),
    output: redactValue(instance.output, paths),
  };
}

export function redactDetail(
  detail: InstanceDetail,
  integration: AnyIntegration | undefined,
): InstanceDetail {
  const paths = integration?.redact ?? [];
  return {
    ...detail,
    instance: redactInstance(detail.instance, integration),
    runs: detail.runs.map((run) => ({ ...run, input: redactValue(run.input, paths) as typeof run.input })),
    steps: detail.steps.map((step) => ({
      ...step,
      output: redactValue(step.output, paths) as typeof step.output,
    })),
  };
}

/** A copy with every secret-named field masked. */
function maskNamed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskNamed);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key, SECRET_NAME.test(key) ? REDACTED : maskNamed(inner)]),
  );
}

/** Masks one dotted path in place; `*` matches every element of an array or every field. */
function maskPath(value: unknown, path: string[]): void {
  if (value === null || typeof value !== 'object' || path.length === 0) return;
  const [head, ...rest] = path as [string, ...string[]];
  const record = value as Record<string, unknown>;
  const keys = head === '*' ? Object.keys(record) : Object.hasOwn(record, head) ? [head] : [];
  for (const key of keys) {
    if (rest.length === 0) record[key] = REDACTED;
    else maskPath(record[key], rest);
  }
}
