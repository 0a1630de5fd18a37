import type { z } from 'zod';
import { type InputIssue, InvalidInputError } from '../errors.js';

type Part = NonNullable<InputIssue['in']>;

/** Validates one part of a request, collecting its issues (so that one 400 names every failing field). */
export function validatePart(
  schema: z.ZodType | undefined,
  value: unknown,
  part: Part,
  issues: InputIssue[],
) {
  if (!schema) return value;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    issues.push({ in: part, path: issue.path.map(String).join('.'), message: issue.message });
  }
  return undefined;
}

/** Re-labels the issues of an engine validation error as being in one part of the request. */
export function inPart(error: unknown, part: Part, prefix = ''): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  return new InvalidInputError(
    error.issues.map((issue) => ({
      ...issue,
      in: part,
      path: prefix === '' ? issue.path : issue.path === '' ? prefix : `${prefix}.${issue.path}`,
    })),
  );
}

const KEY = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

/**
 * The `Idempotency-Key` header: 1–255 visible ASCII characters. The IETF draft's quoted form
 * (`"abc"`) is accepted as well as a bare value.
 */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  let value = Array.isArray(header) ? header.join(',') : header;
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  if (!KEY.test(value)) {
    throw new InvalidInputError([
      { in: 'header', path: 'idempotency-key', message: 'must be 1–255 visible ASCII characters' },
    ]);
  }
  return value;
}

export function assertValid(issues: InputIssue[]): void {
  if (issues.length > 0) throw new InvalidInputError(issues);
}
