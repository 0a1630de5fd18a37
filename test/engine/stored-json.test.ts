import { describe, expect, it } from 'vitest';
import { NotSerializableError } from '../../src/errors.js';
import { toStoredJson } from '../../src/json.js';

/** An object nested `depth` levels deep, with `leaf` at the bottom. */
function nested(depth: number, leaf: unknown): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf };
  for (let i = 0; i < depth; i++) value = { child: value };
  return value;
}

describe('toStoredJson', () => {
  it('stores plain values as JSON does, however deep', () => {
    const value = {
      a: [1, 'x', true, null, { b: undefined }],
      when: new Date(0),
      empty: Object.create(null),
    };
    expect(toStoredJson(value, 'input')).toBe(JSON.stringify(value));
    const deep = nested(200, 1);
    expect(toStoredJson(deep, 'input')).toBe(JSON.stringify(deep));
    expect(toStoredJson(undefined, 'input')).toBe('null');
  });

  it('names the path of what JSON would change, near the top or deep down', () => {
    expect(() => toStoredJson({ lines: [{ qty: Number.NaN }] }, 'input')).toThrow(
      /\$\.lines\[0\]\.qty is NaN/,
    );
    expect(() => toStoredJson({ tags: new Set(['a']) }, 'input')).toThrow(/\$\.tags is a Set/);
    expect(() => toStoredJson(nested(100, 10n), 'input')).toThrow(/\.child\.leaf is a BigInt/);
    const cycle: Record<string, unknown> = {};
    const bottom = nested(100, null);
    let last = bottom;
    while (last.child) last = last.child as Record<string, unknown>;
    last.back = bottom;
    cycle.top = bottom;
    expect(() => toStoredJson(cycle, 'input')).toThrow(NotSerializableError);
    expect(() => toStoredJson(cycle, 'input')).toThrow(/circular reference/);
  });
});
