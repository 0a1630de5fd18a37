/**
 * The placeholders of a SQL text, counted before anything is sent. A query whose `$n` placeholders
 * and parameters disagree would reach PostgreSQL as a protocol error (SQLSTATE 08P01, "bind message
 * supplies 1 parameters, but prepared statement requires 2"), which looks like a broken connection;
 * worse, a query without parameters is often a sign that values were pasted into the text. Both are
 * refused here, as a definition error that fails the instance at once.
 */
import { TandemError } from '../errors.js';

/**
 * The highest `$n` placeholder of `sql` (0 when there is none). Quoted strings and identifiers,
 * dollar-quoted bodies and comments are skipped: `'costs $1'` is no placeholder.
 */
export function highestPlaceholder(sql: string): number {
  let highest = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      // A quote inside is doubled; E'…' strings may also escape it with a backslash.
      const escapes = c === "'" && i > 0 && /[eE]/.test(sql[i - 1]!) && !/\w/.test(sql[i - 2] ?? '');
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === c && sql[i + 1] === c) i += 2;
        else if (sql[i] === c) break;
        else i++;
      }
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === '$') {
      const number = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      // `$1` after a word character is part of an identifier (`a$1`), not a placeholder.
      if (number && !/[\w$]/.test(sql[i - 1] ?? '')) {
        highest = Math.max(highest, Number(number[1]));
        i += number[0].length;
        continue;
      }
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66));
      if (tag && !/[\w$]/.test(sql[i - 1] ?? '')) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
        continue;
      }
      i++;
    } else i++;
  }
  return highest;
}

/**
 * Refuses a query whose parameters do not fit its placeholders: `params` must be an array with one
 * value per placeholder `$1` … `$n`. Returns the parameters to send.
 */
export function checkParameters(connection: string, sql: unknown, params: unknown): unknown[] {
  if (typeof sql !== 'string' || sql.trim() === '') {
    throw new TandemError('invalid-definition', `A query on ${connection} needs SQL text`);
  }
  if (params !== undefined && !Array.isArray(params)) {
    throw new TandemError(
      'invalid-definition',
      `The parameters of a query on ${connection} must be an array (values for $1, $2, …)`,
    );
  }
  const values = params ?? [];
  const needed = highestPlaceholder(sql);
  if (needed !== values.length) {
    const hint =
      params === undefined
        ? `: pass the values as the parameters array, never paste them into the SQL text`
        : '';
    throw new TandemError(
      'invalid-definition',
      `A query on ${connection} has ${needed === 0 ? 'no placeholders' : `placeholders up to $${needed}`} but ${
        params === undefined ? 'no parameters' : `${values.length} parameter${values.length === 1 ? '' : 's'}`
      }${hint}`,
    );
  }
  return values;
}
