/**
 * A real, throwaway OpenSSH server (Debian's openssh-server) for the SFTP tests and the batch
 * bench: `startSshd()` writes a config, a fresh host key and a user key into a temporary
 * directory and runs `/usr/sbin/sshd -D` on a free port on 127.0.0.1, SFTP only
 * (`ForceCommand internal-sftp`).
 *
 * sshd authenticates system users, so the server logs in one: `tandem-sftp`, made on first use
 * (as root, which CI is; `.ci/run` installs openssh-server) with the password below and the
 * per-server key. Its files live in `root`, a directory it owns; the paths there are the same on
 * both sides, so a test writes a file locally and reads it over SFTP at the same path.
 *
 * A server still running when the process exits is killed and its directory removed.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';

export const SFTP_USER = 'tandem-sftp';
/** The test user's password: a canary the SFTP tests look for in the store, logs and events. */
export const SFTP_PASSWORD = 'canary-sftp-Pw-7f3a9c51';

const SSHD = '/usr/sbin/sshd';

export interface SshServer {
  host: '127.0.0.1';
  port: number;
  username: string;
  password: string;
  /** The user's private key (OpenSSH format, ed25519, no passphrase). */
  privateKey: string;
  /** The server's host key fingerprint, as `ssh-keygen -l` prints it: `SHA256:<base64>`. */
  hostKeyFingerprint: string;
  /** A directory the SFTP user owns (same path locally and over SFTP). */
  root: string;
  /** Writes a file under `root` (relative path) as the SFTP user's; returns its absolute path. */
  write(relative: string, content: string | Uint8Array): string;
  /** Makes a directory under `root` owned by the SFTP user; returns its absolute path. */
  mkdir(relative: string): string;
  /** Stops sshd and ends its connections' processes (connections drop, new ones are refused). */
  stop(): Promise<void>;
  /** Starts sshd again on the same port with the same keys. */
  start(): Promise<void>;
  /** Stops sshd and removes the directory. Idempotent. */
  close(): Promise<void>;
}

const running = new Set<() => void>();
process.once('exit', () => {
  for (const kill of running) kill();
});

export async function startSshd(): Promise<SshServer> {
  if (!existsSync(SSHD)) {
    throw new Error(
      `${SSHD} is missing: install Debian's openssh-server (apt-get install -y openssh-server)`,
    );
  }
  const { uid, gid } = ensureUser();
  const dir = mkdtempSync(join(tmpdir(), 'tandem-sshd-'));
  // The SFTP user walks through this directory to its own (mkdtemp makes it 0700 and root's).
  chmodSync(dir, 0o711);
  const root = join(dir, 'files');
  mkdirSync(root);
  chownSync(root, uid, gid);
  // sshd's privilege separation directory (made by the service scripts, which do not run here).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'user_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', userKey]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${userKey}.pub`));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      // The key files sit in a world-writable /tmp: no ownership checks on their path.
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin no',
      `AllowUsers ${SFTP_USER}`,
      'Subsystem sftp internal-sftp',
      'ForceCommand internal-sftp',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const fingerprint = hostFingerprint(readFileSync(`${hostKey}.pub`, 'utf8'));

  let child: ChildProcess | undefined;
  const kill = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  running.add(kill);
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const started = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    started.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 10_000) stderr += chunk.toString();
    });
    child = started;
    await waitForPort(port, started, () => stderr);
  };
  const stop = async () => {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    // Each connection has its own sshd processes, which outlive the listener: end them too.
    for (const pid of descendants(current.pid!)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    current.kill('SIGTERM');
    await exited;
  };
  await start();
  const owned = (path: string) => {
    chownSync(path, uid, gid);
    return path;
  };
  /** Makes the directories of a path below root, each the SFTP user's. */
  const ownedDirs = (path: string) => {
    const parts = relative(root, path)
      .split(sep)
      .filter((part) => part !== '');
    let at = root;
    for (const part of parts) {
      at = join(at, part);
      if (!existsSync(at)) mkdirSync(at);
      owned(at);
    }
    return path;
  };
  return {
    host: '127.0.0.1',
    port,
    username: SFTP_USER,
    password: SFTP_PASSWORD,
    privateKey: readFileSync(userKey, 'utf8'),
    hostKeyFingerprint: fingerprint,
    root,
    write(name, content) {
      const path = join(root, name);
      ownedDirs(dirname(path));
      writeFileSync(path, content);
      return owned(path);
    },
    mkdir(name) {
      return ownedDirs(join(root, name));
    },
    stop,
    start,
    async close() {
      await stop();
      running.delete(kill);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `SHA256:<base64 without padding>` of the key blob in an OpenSSH public key line. */
export function hostFingerprint(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Makes the SFTP user once (other test files may race for it: a user made meanwhile is fine). */
function ensureUser(): { uid: number; gid: number } {
  const known = () => {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith(`${SFTP_USER}:`));
    if (!line) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  };
  /** A password is set (a user made by a run cut short between useradd and chpasswd has none). */
  const hasPassword = () => {
    const line = readFileSync('/etc/shadow', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith(`${SFTP_USER}:`));
    const hash = line?.split(':')[1] ?? '';
    return hash.startsWith('$');
  };
  const existing = known();
  if (process.getuid?.() !== 0) {
    if (existing) return existing;
    throw new Error(`The SFTP tests need the system user ${SFTP_USER}: run them as root (as CI does)`);
  }
  if (existing && hasPassword()) return existing;
  if (!existing) {
    const made = spawnSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', SFTP_USER]);
    // 9: the user exists (another test file made it first).
    if (made.status !== 0 && made.status !== 9) throw new Error(`useradd failed: ${made.stderr}`);
  }
  for (let tries = 0; ; tries++) {
    const set = spawnSync('chpasswd', { input: `${SFTP_USER}:${SFTP_PASSWORD}\n` });
    if (set.status === 0) break;
    if (tries >= 20) throw new Error(`chpasswd failed: ${set.stderr}`);
    spawnSync('sleep', ['0.1']);
  }
  return known()!;
}

/** The processes below `pid` (from /proc's parent ids), deepest first. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The parent id is the second field after the parenthesised command name.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {}
  }
  const found: number[] = [];
  const visit = (parent: number) => {
    for (const child of parents.get(parent) ?? []) {
      visit(child);
      found.push(child);
    }
  };
  visit(pid);
  return found;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited (${child.exitCode}): ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
