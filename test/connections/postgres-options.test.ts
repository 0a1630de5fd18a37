/** What `postgresConnection()` refuses at definition time, and what its messages never show. */
import { describe, expect, it } from 'vitest';
import { postgresConnection } from '../../src/connections/postgres.js';
import { secret } from '../../src/connections/secret.js';

describe('postgresConnection options', () => {
  it('takes a URL, a secret URL, or host and password', async () => {
    const byUrl = postgresConnection('a', { url: 'postgres://tandem:pw@db.internal:6432/inventory' });
    expect(byUrl.target).toBe('postgres://db.internal:6432/inventory'); // no credentials
    expect(postgresConnection('b', { url: secret('INVENTORY_URL') }).target).toBe(
      'postgres://[secret INVENTORY_URL]',
    );
    const byHost = postgresConnection('c', {
      host: 'db.internal',
      database: 'inventory',
      user: 'tandem',
      password: secret('INVENTORY_PW'),
      poolSize: 4,
      statementTimeout: 5_000,
      circuit: { failures: 3 },
    });
    expect(byHost).toMatchObject({ type: 'postgres', target: 'postgres://db.internal:5432/inventory' });
    // Nothing connects before the first statement.
    await byUrl.close();
  });

  it('refuses url with host or password, neither of them, and wrong values, without echoing a URL', () => {
    expect(() => postgresConnection('d', {})).toThrow(/give either url or host/);
    expect(() => postgresConnection('d', { url: 'postgres://x@h/db', host: 'h' })).toThrow(
      /either url or host/,
    );
    expect(() => postgresConnection('d', { url: 'postgres://x@h/db', password: 'pw' })).toThrow(
      /password cannot be given with url/,
    );
    const wrongScheme = () => postgresConnection('d', { url: 'mysql://user:hunter2-secret@h/db' });
    expect(wrongScheme).toThrow(/url must be a postgres:\/\/ URL or secret\('NAME'\), got a string/);
    try {
      wrongScheme();
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
    }
    expect(() => postgresConnection('d', { host: 'h', poolSize: 0 })).toThrow(/poolSize must be an integer/);
    expect(() => postgresConnection('d', { host: 'h', statmentTimeout: 5 } as never)).toThrow(
      /did you mean "statementTimeout"/,
    );
    expect(() => postgresConnection('Bad Id', { host: 'h' })).toThrow(/Connection id "Bad Id" is invalid/);
  });

  it('refuses a query source batch size that is not a positive integer', () => {
    const db = postgresConnection('e', { host: 'h' });
    expect(() => db.querySource('SELECT 1', [], { batchSize: 0 })).toThrow(/batchSize/);
    expect(() => db.querySource('SELECT 1', [], { batchSize: Number.NaN })).toThrow(/batchSize/);
  });
});
