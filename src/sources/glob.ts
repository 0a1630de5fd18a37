/**
 * File globs for record sources (`./inbox/orders-*.csv`, `exports/**\/*.jsonl`): `*` and `?` match
 * within a path segment, `**` matches any number of segments. Node 20 has no fs.glob, and a source
 * needs only this much.
 */
import { readdir } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';

const GLOB_CHARS = /[*?[]/;

export function isGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** Paths matching the pattern, sorted, so that a batch reads its files in a stable order. */
export async function expandGlob(pattern: string): Promise<string[]> {
  const segments = pattern.split(/[\\/]/);
  const firstGlob = segments.findIndex((segment) => isGlob(segment));
  const base = resolve(segments.slice(0, firstGlob).join('/') || '.');
  const rest = segments.slice(firstGlob);
  const regex = globRegex(rest.join('/'));
  const deep = rest.includes('**');
  const found: string[] = [];
  await walk(base, deep ? Number.POSITIVE_INFINITY : rest.length, async (path) => {
    if (regex.test(relative(base, path).split(sep).join('/'))) found.push(path);
  });
  return found.sort();
}

async function walk(dir: string, depth: number, visit: (path: string) => Promise<void>): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (depth > 1) await walk(path, depth - 1, visit);
    } else if (entry.isFile()) await visit(path);
  }
}

export function globRegex(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*' && glob[i + 1] === '*') {
      // "**/" matches zero or more directories; a trailing "**" matches everything below.
      if (glob[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '[') {
      const end = glob.indexOf(']', i);
      if (end < 0) source += '\\[';
      else {
        source += glob.slice(i, end + 1);
        i = end;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
