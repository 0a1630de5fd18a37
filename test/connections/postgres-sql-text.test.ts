/** The placeholder check a query passes before it is sent: one parameter per `$n`, none pasted. */
import { describe, expect, it } from 'vitest';
import { checkParameters, highestPlaceholder } from '../../src/connections/sql-text.js';

describe('highestPlaceholder', () => {
  it.each([
    ['SELECT 1', 0],
    ['SELECT * FROM t WHERE a = $1 AND b = $2', 2],
    ['SELECT $2::int, $1::text', 2],
    ['SELECT $10', 10],
    ["SELECT 'costs $1' WHERE a = $1", 1],
    ["SELECT 'it''s $3', $1", 1],
    ["SELECT E'a\\' $4', $1", 1],
    ['SELECT "col$2" FROM t WHERE a = $1', 1],
    ['SELECT a$1 FROM t', 0], // an identifier may contain $ and digits
    ['SELECT 1 -- where a = $3\n, $1', 1],
    ['SELECT /* $5 /* nested $6 */ still $7 */ $2, $1', 2],
    ['SELECT $$ $9 $$, $1', 1],
    ['SELECT $body$ $9 $inner$ $8 $inner$ $body$, $2, $1', 2],
  ])('%s → %i', (sql, highest) => {
    expect(highestPlaceholder(sql)).toBe(highest);
  });
});

describe('checkParameters', () => {
  it('passes a query whose parameters fit its placeholders', () => {
    expect(checkParameters('db', 'SELECT $1, $2', ['a', 2])).toEqual(['a', 2]);
    expect(checkParameters('db', 'SELECT 1', undefined)).toEqual([]);
    expect(checkParameters('db', 'SELECT 1', [])).toEqual([]);
  });

  it('refuses placeholders without parameters, pointing away from string building', () => {
    expect(() => checkParameters('db', 'SELECT * FROM t WHERE id = $1', undefined)).toThrow(
      /placeholders up to \$1 but no parameters: pass the values as the parameters array, never paste them/,
    );
  });

  it('refuses too few or too many parameters, and parameters that are not an array', () => {
    expect(() => checkParameters('db', 'SELECT $1, $2', ['a'])).toThrow(
      /placeholders up to \$2 but 1 parameter$/,
    );
    expect(() => checkParameters('db', 'SELECT 1', ['a'])).toThrow(/no placeholders but 1 parameter/);
    expect(() => checkParameters('db', 'SELECT $1', 'a' as unknown)).toThrow(/must be an array/);
    expect(() => checkParameters('db', '  ', [])).toThrow(/needs SQL text/);
    const refused = (() => {
      try {
        checkParameters('db', 'SELECT $1', undefined);
        return null;
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toMatchObject({ code: 'invalid-definition' });
  });
});
