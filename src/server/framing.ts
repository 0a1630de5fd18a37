/**
 * HTTP errors that come before any route: malformed HTTP, a missing or repeated Host header, an
 * expectation the server does not meet, CONNECT. Node's server answers some of them with a bare
 * status line (or, for CONNECT, closes without a word); here each gets a problem document like
 * every other error of Tandem's server.
 */
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { TandemError } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, problemOf } from './problem.js';

/** A header name is a token (RFC 9110 §5.1). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Refuses an HTTP/1.1 request without a Host header, and any request with more than one: RFC 9112
 * §3.2 requires a 400 for both (two hosts could route one request two ways). Node keeps only the
 * first Host in `headers`, so the raw headers are counted. Also refuses a header name that is not a
 * token (`Bad Header: 1`): newer Node parsers refuse it themselves, Node 20.19's lets it through.
 */
export function headerFault(request: IncomingMessage): TandemError | null {
  let hosts = 0;
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (!TOKEN.test(name)) {
      return new TandemError(
        'bad-request',
        `The header name ${JSON.stringify(name.slice(0, 100))} is not a token`,
      );
    }
  }
  if (hosts > 1) {
    return new TandemError('bad-request', `The request has ${hosts} Host headers; send exactly one`);
  }
  if (hosts === 0 && request.httpVersion === '1.1') {
    return new TandemError('bad-request', 'An HTTP/1.1 request needs a Host header');
  }
  return null;
}

/** Writes a problem document straight to a socket and closes it: no route will answer this one. */
function answerOnSocket(socket: Duplex, error: TandemError, headers: Record<string, string> = {}) {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(problemOf(error));
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
      `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n${extra}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Malformed HTTP never reaches a route: answer it with a problem document and close. */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  answerOnSocket(
    socket,
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new TandemError('headers-too-large', 'The request headers exceed the server limit')
      : new TandemError('bad-request', 'The request is not valid HTTP/1.1'),
  );
}

/**
 * Answers what Node's server would answer bare: an `Expect` other than `100-continue` (a bare 417)
 * and CONNECT (no answer at all: Tandem is no proxy).
 */
export function answerFramingErrors(server: Server): void {
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(
      problemOf(
        new TandemError(
          'expectation-failed',
          `The expectation "${String(request.headers.expect).slice(0, 100)}" is not supported; only 100-continue is`,
        ),
      ),
    );
    response
      .writeHead(417, {
        'content-type': PROBLEM_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        connection: 'close',
      })
      .end(body);
  });
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    answerOnSocket(
      socket,
      new TandemError('method-not-allowed', `${request.method} is not allowed: this server is no proxy`),
    );
  });
}
