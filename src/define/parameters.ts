/**
 * Schedule parameters: a few named scalars kept per schedule across runs (a `lastRunAt` watermark,
 * a batch size), with defaults from the definition, values stored by handlers, and overrides for
 * one run-now instance.
 */
import { type InputIssue, InvalidDefinitionError, InvalidInputError } from '../errors.js';

import type { Parameters, ParameterValue } from '../model.js';

export type { Parameters, ParameterValue };

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function isParameterValue(value: unknown): value is ParameterValue {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

export function checkParameterDefaults(where: string, defaults: unknown): void {
  if (defaults === undefined) return;
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults)) {
    throw new InvalidDefinitionError(`${where}: parameters must be an object of named scalars`);
  }
  for (const [name, value] of Object.entries(defaults)) {
    if (!NAME.test(name)) throw new InvalidDefinitionError(`${where}: parameter name "${name}" is invalid`);
    if (!isParameterValue(value)) {
      throw new InvalidDefinitionError(
        `${where}: parameter "${name}" must default to a string, finite number, boolean or null`,
      );
    }
  }
}

/**
 * Checks parameter values against the declared names: unknown names and non-scalar values are
 * refused. Strings are converted to the type of the default (CLI `--param limit=10` gives a string;
 * a number default makes it 10), so the handler sees the types it declared.
 */
export function checkParameters(defaults: Parameters, values: Record<string, unknown>): Parameters {
  const issues: InputIssue[] = [];
  const out: Parameters = {};
  for (const [name, raw] of Object.entries(values)) {
    if (!Object.hasOwn(defaults, name)) {
      const known = Object.keys(defaults);
      issues.push({
        path: `parameters.${name}`,
        message: `unknown parameter${known.length > 0 ? ` (known: ${known.join(', ')})` : ' (none declared)'}`,
      });
      continue;
    }
    const converted = convert(defaults[name]!, raw);
    if (converted === undefined) {
      issues.push({ path: `parameters.${name}`, message: `expected ${typeName(defaults[name]!)}` });
    } else out[name] = converted;
  }
  if (issues.length > 0) throw new InvalidInputError(issues);
  return out;
}

function convert(sample: ParameterValue, raw: unknown): ParameterValue | undefined {
  if (!isParameterValue(raw)) return undefined;
  if (raw === null || typeof sample === typeof raw || sample === null) return raw;
  if (typeof raw !== 'string') return undefined;
  if (typeof sample === 'number') {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? n : undefined;
  }
  if (typeof sample === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : undefined;
  return undefined;
}

const typeName = (sample: ParameterValue) => (sample === null ? 'a scalar' : `a ${typeof sample}`);

/** Parses CLI arguments `k=v` into raw parameter values (converted later by {@link checkParameters}). */
export function parseParameterArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) {
      throw new InvalidInputError([{ path: 'param', message: `"${arg}" is not of the form name=value` }]);
    }
    out[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return out;
}

/**
 * The stored input of a scheduled instance: the slot it fired for (null for run-now) and its
 * parameter overrides, checked against the declared parameters.
 */
export function checkScheduledInput(
  defaults: Parameters,
  input: unknown,
): { scheduledFor: number | null; parameters: Parameters } {
  if (input === undefined || input === null) return { scheduledFor: null, parameters: {} };
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidInputError([
      { path: '', message: 'a scheduled instance takes { parameters?: { name: value } }' },
    ]);
  }
  const { scheduledFor = null, parameters = {}, ...rest } = input as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new InvalidInputError(
      extra.map((key) => ({ path: key, message: 'unknown field (a scheduled instance takes parameters)' })),
    );
  }
  if (scheduledFor !== null && (typeof scheduledFor !== 'number' || !Number.isFinite(scheduledFor))) {
    throw new InvalidInputError([{ path: 'scheduledFor', message: 'expected a time in ms or null' }]);
  }
  if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
    throw new InvalidInputError([{ path: 'parameters', message: 'expected an object of name: value' }]);
  }
  return { scheduledFor, parameters: checkParameters(defaults, parameters as Record<string, unknown>) };
}
