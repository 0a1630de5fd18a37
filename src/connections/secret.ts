import { TandemError } from '../errors.js';

/** A reference to a credential, resolved when a call is made and never stored with instances. */
export interface SecretRef {
  readonly kind: 'tandem.secret';
  readonly name: string;
  resolve(): string;
}

/**
 * A secret read from the environment at call time (so a rotated value is picked up by the next
 * call, and no value is captured in configuration objects that might be logged).
 *
 * @example
 * httpConnection('bank', { baseUrl: 'https://bank.example', auth: { type: 'bearer', token: secret('BANK_TOKEN') } });
 */
export function secret(name: string, env: NodeJS.ProcessEnv = process.env): SecretRef {
  return {
    kind: 'tandem.secret',
    name,
    resolve() {
      const value = env[name];
      if (value === undefined || value === '') {
        throw new TandemError('missing-secret', `Secret ${name} is not set in the environment`, {
          secret: name,
        });
      }
      return value;
    },
    toJSON: () => `[secret ${name}]`,
  } as SecretRef;
}

export type SecretValue = string | SecretRef;

export function reveal(value: SecretValue): string {
  return typeof value === 'string' ? value : value.resolve();
}
