/**
 * The lifecycle (src/lifecycle) in PostgreSQL's terms: the dialect its SQL is rendered in, and
 * where its columns live (the instance row or the state row beside it).
 */
import type { StatusSet, Transition } from '../../lifecycle/index.js';
import type { Dialect } from '../sql.js';

/**
 * The lifecycle's SQL as PostgreSQL writes it: each transition parameter by the expression that
 * holds it in a statement (`$4`, or a column of a joined batch such as `f.output`), and columns of
 * the changed row qualified with `alias` where a FROM item makes them ambiguous. A parameter that a
 * statement does not bind fails when the module loads, not when the statement runs.
 */
export function dialect(params: Readonly<Record<string, string>>, alias = ''): Dialect {
  return {
    param(name) {
      const sql = params[name];
      if (sql === undefined) throw new Error(`No SQL given for the lifecycle parameter "${name}"`);
      return sql;
    },
    col: (name) => alias + name,
    greatest: 'greatest',
  };
}

/** The statuses a transition starts from, for a WHERE clause (an insert starts from none). */
export function sources(transition: Transition): StatusSet {
  if (transition.from === 'new') throw new Error(`${transition.name} starts no stored instance`);
  return transition.from;
}

/** The columns of the state table (migration 4): what changes while an instance is scheduled and run. */
const STATE_COLUMNS: ReadonlySet<string> = new Set([
  'status',
  'attempt',
  'run_at',
  'claim_token',
  'lease_owner',
  'lease_until',
  'started_at',
  'finished_at',
  'duration_ms',
  'updated_at',
  'output',
  'error',
]);

/** A transition's columns split by table: the instance row's, and the state row's (with the status). */
export function byTable(transition: Transition): { rows: Transition['sets']; state: Transition } {
  const entries = Object.entries(transition.sets);
  return {
    rows: Object.fromEntries(entries.filter(([column]) => !STATE_COLUMNS.has(column))),
    state: {
      ...transition,
      sets: Object.fromEntries(entries.filter(([column]) => STATE_COLUMNS.has(column))),
    },
  };
}
