/**
 * Lingering close: an answer sent before the request's body was read to its end (a 413 for a body
 * over the limit, a 401 before an upload) closes the connection, and closing a socket while the
 * client is still sending makes the kernel answer the unread bytes with a reset, which most clients
 * report as EPIPE or ECONNRESET instead of the answer they were sent. So after such an answer the
 * server ends its side, reads and discards what still comes (as nginx's `lingering_close` does),
 * and closes once the request is complete, or at a bound: a client that sends on and on, or goes
 * quiet, is cut off.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** Bytes read and discarded after the answer, at most. */
export const LINGER_MAX_BYTES = 64 * 1024 * 1024;
/** Time spent discarding after the answer, at most. */
const LINGER_MAX_MS = 30_000;
/** A client that sends nothing for this long is not going to finish. */
export const LINGER_IDLE_MS = 5_000;

/** Whether the request has a body that has not been read to its end. */
export function bodyUnread(request: IncomingMessage): boolean {
  if (request.complete) return false;
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The sockets of one server that linger; `closeAll` when the server closes. */
export class LingeringCloses {
  private readonly answered = new Set<Socket>();
  private closed = false;

  /**
   * Makes the connection of a request whose body is still coming linger after its answer. The
   * answer must carry `Connection: close`: Node's server then ends the connection with
   * `socket.destroySoon()` once the answer is written, which is replaced here for this one socket.
   * A declared body beyond the bound is not worth reading: that connection closes as before.
   */
  hold(request: IncomingMessage): void {
    const socket = request.socket as Socket & { destroySoon?: () => void };
    if (this.closed || Number(request.headers['content-length']) > LINGER_MAX_BYTES) return;
    if (Object.hasOwn(socket, 'destroySoon')) return;
    let discarded = 0;
    let answeredAt = 0;
    let idle: NodeJS.Timeout | undefined;
    const close = () => {
      clearTimeout(idle);
      request.off('data', onData);
      this.answered.delete(socket);
      socket.destroy();
    };
    // Written first: destroying the socket earlier would drop the answer still in its buffer.
    const closeWhenWritten = () => {
      if (socket.writableFinished) close();
      else socket.once('finish', close);
    };
    const onData = (chunk: Buffer) => {
      discarded += chunk.length;
      if (answeredAt === 0) return;
      if (discarded > LINGER_MAX_BYTES || Date.now() - answeredAt > LINGER_MAX_MS) close();
      else idle?.refresh();
    };
    // Read from now on, so that Node's own discarding (which has no bound) never starts.
    request.on('data', onData);
    request.once('end', () => {
      if (answeredAt !== 0) closeWhenWritten();
    });
    socket.once('close', () => {
      clearTimeout(idle);
      this.answered.delete(socket);
    });
    socket.destroySoon = () => {
      answeredAt = Date.now();
      discarded = 0;
      if (socket.writable) socket.end();
      if (request.complete || this.closed) {
        closeWhenWritten();
        return;
      }
      this.answered.add(socket);
      idle = setTimeout(close, LINGER_IDLE_MS);
    };
  }

  /** Ends every lingering connection at once: the server is closing. */
  closeAll(): void {
    this.closed = true;
    for (const socket of this.answered) socket.destroy();
    this.answered.clear();
  }
}
