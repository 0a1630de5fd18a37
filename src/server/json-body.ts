/**
 * JSON request bodies, read defensively: strict UTF-8, a bounded nesting depth, no keys that reach
 * an object prototype.
 */
import { isUtf8 } from 'node:buffer';
import { TandemError } from '../errors.js';

export const DEFAULT_MAX_DEPTH = 64;

/**
 * The text of a JSON body, which RFC 8259 requires to be UTF-8. Bytes that are not (overlong forms,
 * encoded surrogates, truncated sequences, Latin-1) are refused with a 400 rather than decoded to
 * U+FFFD: the stored input would not be what was sent.
 */
export function decodeJsonBody(bytes: Buffer): string {
  if (!isUtf8(bytes)) {
    throw new TandemError('malformed-json', 'The body is not valid UTF-8; send JSON in UTF-8');
  }
  return bytes.toString('utf8');
}

/**
 * Parses a JSON request body defensively: nesting beyond `maxDepth` is refused before parsing (a
 * deep document costs memory and stack in every later walk), and `__proto__` keys or
 * `constructor.prototype` are refused after it, so that no later merge of the input can reach an
 * object prototype. Errors are 400s naming the fault.
 */
export function parseJsonBody(text: string, maxDepth = DEFAULT_MAX_DEPTH): unknown {
  if (text.trim() === '') throw new TandemError('malformed-json', 'The body is empty; send a JSON value');
  if (text.length > maxDepth) checkDepth(text, maxDepth);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TandemError('malformed-json', `The body is not valid JSON: ${(error as Error).message}`);
  }
  // Escapes (\u005f…) can spell a key, so a backslash-u also calls for the walk.
  if (text.includes('proto') || text.includes('constructor') || text.includes('\\u')) checkKeys(value);
  return value;
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        throw new TandemError('body-too-deep', `The body is nested more than ${maxDepth} levels deep`, {
          maxDepth,
        });
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
}

function checkKeys(root: unknown): void {
  const stack: { value: unknown; path: string }[] = [{ value: root, path: '' }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      value.forEach((item, index) => {
        stack.push({ value: item, path: `${path}[${index}]` });
      });
      continue;
    }
    for (const key of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[key];
      const at = path === '' ? key : `${path}.${key}`;
      if (key === '__proto__') throw forbidden(at);
      if (
        key === 'constructor' &&
        item !== null &&
        typeof item === 'object' &&
        Object.hasOwn(item, 'prototype')
      ) {
        throw forbidden(`${at}.prototype`);
      }
      stack.push({ value: item, path: at });
    }
  }
}

function forbidden(path: string): TandemError {
  return new TandemError('forbidden-key', `The body contains the forbidden key "${path}"`, {
    issues: [{ in: 'body', path, message: 'forbidden key' }],
  });
}
