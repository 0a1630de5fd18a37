/**
 * A real SMTP server on 127.0.0.1 for the e-mail tests, made with smtp-server: it keeps every
 * message it accepts (envelope, raw text, Message-ID), can require a password, can answer the next
 * messages with a chosen SMTP reply (a greylisting 451, a 550), and can be taken down and brought
 * back on the same port.
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface ReceivedMail {
  from: string | null;
  to: string[];
  raw: string;
  messageId: string | null;
  subject: string | null;
}

export interface SmtpServerOptions {
  /** When set, AUTH is required and only this user and password are accepted. */
  credentials?: { username: string; password: string };
}

const header = (raw: string, name: string) => {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const match = new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(head);
  return match ? match[1]!.replace(/\r?\n[ \t]+/g, ' ').trim() : null;
};

export async function smtpServer(options: SmtpServerOptions = {}) {
  const received: ReceivedMail[] = [];
  /** Replies for the next messages, first one first: `{ code, message }` rejects at end of data. */
  const replies: { code: number; message: string }[] = [];
  const settings: SMTPServerOptions = {
    secure: false,
    // Plain text on 127.0.0.1: no certificate to make, and AUTH allowed without TLS.
    disabledCommands: options.credentials ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    allowInsecureAuth: true,
    authOptional: !options.credentials,
    logger: false,
    onAuth(auth, _session, callback) {
      const expected = options.credentials;
      if (expected && auth.username === expected.username && auth.password === expected.password) {
        callback(null, { user: auth.username });
      } else {
        callback(new Error('Invalid username or password'));
      }
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const reply = replies.shift();
        if (reply) {
          const error = new Error(reply.message) as Error & { responseCode: number };
          error.responseCode = reply.code;
          callback(error);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
          to: session.envelope.rcptTo.map((address) => address.address),
          raw,
          messageId: header(raw, 'Message-ID'),
          subject: header(raw, 'Subject'),
        });
        callback();
      });
    },
  };
  let server = new SMTPServer(settings);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.server.address() as { port: number }).port);
      });
    });
  const port = await listen(0);
  let up = true;
  return {
    host: '127.0.0.1',
    port,
    received,
    /** The next message is refused at the end of DATA with this reply (queued: one per call). */
    replyNext(code: number, message: string) {
      replies.push({ code, message });
    },
    async down() {
      if (!up) return;
      up = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async up() {
      if (up) return;
      server = new SMTPServer(settings);
      await listen(port);
      up = true;
    },
    async close() {
      await this.down();
    },
  };
}
