/**
 * What a failed PostgreSQL call means for the instance that made it: retried (the database was
 * unreachable, restarting, overloaded, or rolled the transaction back to let another one through) or
 * failed at once (the statement itself is wrong, or breaks a constraint: another attempt would meet
 * the same answer). Decided by the SQLSTATE the server sent, or by the socket error when it sent none.
 */

/** How a failure is classified; `code` names it in errors and `connection.call` events. */
export interface SqlFailure {
  code:
    | 'connection-failed'
    | 'connection-timeout'
    | 'statement-timeout'
    | 'transaction-rollback'
    | 'server-unavailable'
    | 'insufficient-resources'
    | 'constraint-violation'
    | 'syntax-or-permission'
    | 'authentication-failed'
    | 'query-failed';
  retryable: boolean;
  /** True when the statement certainly never reached the server (no connection was made). */
  notSent: boolean;
  /** The SQLSTATE, when the server sent one. */
  sqlstate: string | null;
}

/** Socket errors before a connection exists: the statement was never sent. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Socket errors on an open connection: the statement may have run. */
const CONNECTION_LOST = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED']);

/** Classifies what `pg` threw (a DatabaseError with a SQLSTATE, a socket error, or its own Error). */
export function classifySqlFailure(thrown: unknown): SqlFailure {
  const error = thrown as { code?: unknown; message?: unknown } | null;
  const code = typeof error?.code === 'string' ? error.code : '';
  if (/^[0-9A-Z]{5}$/.test(code)) return bySqlstate(code);
  const fail = (kind: SqlFailure['code'], retryable: boolean, notSent: boolean): SqlFailure => ({
    code: kind,
    retryable,
    notSent,
    sqlstate: null,
  });
  if (NOT_CONNECTED.has(code)) return fail('connection-failed', true, true);
  if (CONNECTION_LOST.has(code)) return fail('connection-failed', true, false);
  const message = typeof error?.message === 'string' ? error.message : '';
  // pg's own errors carry no code: a connect that timed out (pool or client), a read that timed out,
  // a connection the server closed under the query.
  if (
    /timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(message)
  )
    return fail('connection-timeout', true, true);
  if (/Query read timeout/i.test(message)) return fail('connection-timeout', true, false);
  if (/Connection terminated|connection (?:is )?closed|Client was closed/i.test(message))
    return fail('connection-failed', true, false);
  return fail('query-failed', false, false);
}

function bySqlstate(sqlstate: string): SqlFailure {
  const of = (code: SqlFailure['code'], retryable: boolean, notSent = false): SqlFailure => ({
    code,
    retryable,
    notSent,
    sqlstate,
  });
  const cls = sqlstate.slice(0, 2);
  switch (cls) {
    case '08':
      // 08P01 is a protocol violation: the client sent something wrong, not a lost connection.
      if (sqlstate === '08P01') return of('query-failed', false);
      // 08001/08004: the server could not be reached or refused the connection; nothing ran.
      return of('connection-failed', true, sqlstate === '08001' || sqlstate === '08004');
    case '40':
      // 40001 serialization failure, 40P01 deadlock: the transaction was rolled back so that another
      // could go on; the same statement succeeds when tried again.
      return sqlstate === '40001' || sqlstate === '40P01'
        ? of('transaction-rollback', true)
        : of('query-failed', false);
    case '57':
      // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting up).
      if (sqlstate === '57P01' || sqlstate === '57P02') return of('server-unavailable', true);
      if (sqlstate === '57P03') return of('server-unavailable', true, true);
      // 57014: cancelled, by statement_timeout or by an operator; like an HTTP call's timeout.
      if (sqlstate === '57014') return of('statement-timeout', true);
      return of('query-failed', false);
    case '53':
      // Too many connections, out of memory, disk full: the server may have room on the next try.
      return of('insufficient-resources', true, sqlstate === '53300');
    case '55':
      // 55P03 lock not available (lock_timeout, NOWAIT): another transaction holds it for now.
      return sqlstate === '55P03' ? of('transaction-rollback', true) : of('query-failed', false);
    case '23':
      return of('constraint-violation', false);
    case '42':
      return of('syntax-or-permission', false);
    case '28':
      return of('authentication-failed', false, true);
    default:
      return of('query-failed', false);
  }
}
