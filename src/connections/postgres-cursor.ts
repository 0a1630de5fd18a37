/**
 * A query's rows read in batches through a server-side cursor (pg-cursor), so that a query of a
 * million rows holds one batch in memory at a time: the next batch is fetched only when the reader
 * asks for it, i.e. once the fan-out has committed the previous ones.
 */
import type pg from 'pg';
import Cursor from 'pg-cursor';

/**
 * Yields the rows of `sql` in batches of at most `batchSize`. The database connection is taken from
 * the pool for the whole read and given back when the reader finishes, stops early (the portal is
 * closed) or fails (the connection is discarded: its state is unknown).
 */
export async function* readCursor(
  pool: pg.Pool,
  sql: string,
  values: readonly unknown[],
  batchSize: number,
  signal?: AbortSignal,
): AsyncGenerator<Record<string, unknown>[]> {
  signal?.throwIfAborted();
  const client = await pool.connect();
  // A socket error while the connection is out of the pool is emitted on it; without a listener it
  // would end the process. The read in progress fails with it anyway.
  const ignore = () => {};
  client.on('error', ignore);
  // Aborting (a cancel, a timeout, a shutdown) ends the connection: a read waiting for rows fails.
  let released = false;
  const abort = () => {
    released = true;
    client.release(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  };
  signal?.addEventListener('abort', abort, { once: true });
  const cursor = client.query(new Cursor<Record<string, unknown>>(sql, values as unknown[]));
  let failure: Error | undefined;
  try {
    for (;;) {
      const rows = await cursor.read(batchSize);
      if (rows.length === 0) return;
      yield rows;
    }
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    signal?.removeEventListener('abort', abort);
    if (!released) {
      released = true;
      // Stopped early: close the portal so that the connection can serve others. After a failure
      // the connection is dropped rather than trusted.
      if (failure === undefined) await cursor.close().catch((error: Error) => (failure = error));
      client.removeListener('error', ignore);
      client.release(failure);
    }
  }
}
