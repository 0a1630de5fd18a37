/**
 * `tandem dev`: `tandem start` in a child process, restarted when a file of the project it loaded
 * changes (the config and every module it imports), and waiting, not gone, when that load fails: the
 * error is shown with its file and line, that file is watched too, and the next save restarts.
 *
 * The child reports the files over its IPC channel as tsx loads them (see load-config.ts), so the
 * watch follows the modules, not a folder: the SQLite store often lives beside the config, and its
 * own writes must not restart the server. Folders are watched (not files) so that an editor's save
 * by rename is seen, and events are filtered by file name.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DevMessage } from './load-config.js';

const DEBOUNCE_MS = 150;

export async function dev(args: string[]): Promise<number> {
  const bin = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));
  const folders = new Map<string, { watcher: FSWatcher; names: Set<string> }>();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let changed: string | undefined;

  const say = (text: string) => process.stderr.write(`tandem dev: ${text}\n`);

  const watchFile = (file: string) => {
    const folder = dirname(file);
    let entry = folders.get(folder);
    if (!entry) {
      const names = new Set<string>();
      let watcher: FSWatcher;
      try {
        watcher = watch(folder, (_event, name) => {
          if (name !== null && names.has(basename(name.toString()))) schedule(`${folder}/${name}`);
        });
      } catch {
        return; // A folder that is gone: nothing to watch there.
      }
      watcher.on('error', () => {});
      entry = { watcher, names };
      folders.set(folder, entry);
    }
    entry.names.add(basename(file));
  };

  const schedule = (file: string) => {
    if (stopping) return;
    changed = file;
    clearTimeout(timer);
    timer = setTimeout(() => void restart(), DEBOUNCE_MS);
  };

  const run = () => {
    const started = spawn(process.execPath, [bin, 'start', ...args], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      // One process: a restart on each change is what dev is for, and the files it watches are
      // reported by the process that loads the config.
      env: { ...process.env, TANDEM_DEV_CHILD: '1', TANDEM_WORKERS: '0' },
    });
    child = started;
    started.on('message', (message: DevMessage) => {
      if (message?.type === 'tandem-dev:file' && typeof message.file === 'string') watchFile(message.file);
    });
    exited = new Promise((done) => {
      started.once('exit', (code, signal) => {
        if (child === started) child = null;
        if (!stopping && !started.killed) {
          const how = signal ? `by ${signal}` : `with exit code ${code}`;
          say(`the server stopped ${how}; waiting for a change to a watched file to restart it`);
        }
        done();
      });
    });
  };

  const restart = async () => {
    if (stopping) return;
    process.stderr.write(`tandem dev: Restarting: ${changed ?? 'a watched file'} changed\n`);
    if (child) {
      child.kill('SIGTERM');
      await exited;
    }
    if (!stopping) run();
  };

  run();
  return new Promise((resolve) => {
    const stop = async () => {
      stopping = true;
      clearTimeout(timer);
      for (const { watcher } of folders.values()) watcher.close();
      child?.kill('SIGTERM');
      await exited;
      resolve(0);
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
  });
}
