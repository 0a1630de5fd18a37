/**
 * The lifecycle (src/lifecycle) rendered as SQL. The stores keep their hot statements hand-tuned,
 * but take from here every status set, every column assignment of a transition and the JSON of
 * the events SQL writes, so that a change to the state machine reaches both stores at once.
 */
import {
  EVENT_FIELDS,
  type InstanceStatus,
  type SqlEventType,
  type StatusSet,
  type Transition,
  type Value,
} from '../lifecycle/index.js';

/** How a store writes SQL: its parameters, column references and the few functions that differ. */
export interface Dialect {
  /** A statement parameter by name (`@now`, or `f.now` for a value joined from a batch). */
  param(name: string): string;
  /** A column of the row being changed (`attempt`, or `s.attempt` where a join makes it ambiguous). */
  col(name: string): string;
  /** The larger of two values (`max(a, b)` in SQLite, `greatest(a, b)` in PostgreSQL). */
  greatest: 'max' | 'greatest';
}

/** A lifecycle value as an SQL expression. */
export function sqlValue(value: Value, sql: Dialect): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return String(value);
  if ('param' in value) return sql.param(value.param);
  if ('column' in value) return sql.col(value.column);
  if ('plus' in value) return `${sqlValue(value.plus[0], sql)} + ${sqlValue(value.plus[1], sql)}`;
  if ('minus' in value) return `${sqlValue(value.minus[0], sql)} - ${sqlValue(value.minus[1], sql)}`;
  if ('atLeast' in value)
    return `${sql.greatest}(${sqlValue(value.atLeast[0], sql)}, ${sqlValue(value.atLeast[1], sql)})`;
  if ('firstOf' in value)
    return `coalesce(${sqlValue(value.firstOf[0], sql)}, ${sqlValue(value.firstOf[1], sql)})`;
  return value.join
    .map((part) => (typeof part === 'string' ? quote(part) : sqlValue(part, sql)))
    .join(' || ');
}

const quote = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** `('queued', 'retrying')`: a status set as an SQL list. */
function sqlList(statuses: StatusSet): string {
  return `(${statuses.map(quote).join(', ')})`;
}

/** `status IN ('queued', 'retrying')`, or `status = 'running'` for a set of one. */
export function statusIn(statuses: StatusSet, column = 'status'): string {
  return statuses.length === 1 ? `${column} = ${quote(statuses[0]!)}` : `${column} IN ${sqlList(statuses)}`;
}

/** `status = 'x'` for a single status. */
export function statusIs(status: InstanceStatus, column = 'status'): string {
  return `${column} = ${quote(status)}`;
}

/**
 * The SET list of a transition: `status = 'succeeded', output = @output, …, claim_token = NULL, …`.
 * `keepsStatus`: a transition that stays in its status (renew a lease) need not write the column,
 * and an UPDATE that does not name an indexed column does not touch that index.
 */
export function assignments(transition: Transition, sql: Dialect): string {
  const sets = Object.entries(transition.sets).map(
    ([column, value]) => `${column} = ${sqlValue(value, sql)}`,
  );
  const keepsStatus =
    transition.from !== 'new' && transition.from.length === 1 && transition.from[0] === transition.to;
  return (keepsStatus ? sets : [`status = ${quote(transition.to)}`, ...sets]).join(', ');
}

/**
 * One SET list for several transitions chosen per row by an SQL expression (`CASE kind WHEN …`):
 * PostgreSQL finishes a batch of attempts, each with its own outcome, in one UPDATE. A column that
 * a branch does not set keeps its value; a column every branch sets alike is set once.
 */
export function caseAssignments(
  discriminant: string,
  branches: Readonly<Record<string, Transition>>,
  sql: Dialect,
): string {
  const entries = Object.entries(branches);
  const columns = new Set<string>(['status']);
  for (const [, t] of entries) for (const column of Object.keys(t.sets)) columns.add(column);
  const valueIn = (t: Transition, column: string) =>
    column === 'status' ? quote(t.to) : column in t.sets ? sqlValue(t.sets[column]!, sql) : sql.col(column);
  return [...columns]
    .map((column) => {
      const values = entries.map(([key, t]) => [key, valueIn(t, column)] as const);
      if (values.every(([, v]) => v === values[0]![1])) return `${column} = ${values[0]![1]}`;
      const whens = values.map(([key, v]) => `WHEN ${quote(key)} THEN ${v}`).join(' ');
      return `${column} = CASE ${discriminant} ${whens} END`;
    })
    .join(',\n       ');
}

/**
 * The type and data columns of an event that SQL writes, e.g. `'started', json_object('attempt', attempt)`:
 * the data's keys come from the event's declared fields, their values from the store's expressions.
 */
export function eventColumns<T extends SqlEventType>(
  type: T,
  values: Record<(typeof EVENT_FIELDS)[T][number], string>,
  jsonObject: 'json_object' | 'json_build_object',
): string {
  const fields = EVENT_FIELDS[type] as readonly string[];
  const pairs = fields.map((field) => `${quote(field)}, ${(values as Record<string, string>)[field]}`);
  return `${quote(type)}, ${jsonObject}(${pairs.join(', ')})`;
}
