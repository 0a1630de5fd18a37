/**
 * JWT-verified triggers against tokens made here with jose and keys served by a real JWKS server
 * on 127.0.0.1: the refusal corpus (expired, not yet valid, foreign issuer or audience, `alg: none`,
 * HS256 signed with the public key, unknown key id, tampered), clock skew, key rotation through the
 * JWKS, an unreachable JWKS, required claims, and keys given in the config.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidDefinitionError } from '../../src/errors.js';
import { appServer, json } from '../support/app-server.js';
import { type TestServer, testServer } from '../support/server.js';

const ISSUER = 'https://login.example.test/';
const AUDIENCE = 'api://orders';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
let rsa: KeyPair;
let rotated: KeyPair;
let stranger: KeyPair;
let ec: KeyPair;
let ed: KeyPair;

beforeAll(async () => {
  [rsa, rotated, stranger, ec, ed] = await Promise.all([
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
    generateKeyPair('EdDSA', { extractable: true }),
  ]);
});

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A token signed as an identity provider signs it; `claims` and `header` override the defaults. */
async function token(
  key: KeyPair['privateKey'],
  { claims = {}, header = {} }: { claims?: JWTPayload; header?: Record<string, unknown> } = {},
): Promise<string> {
  const now = nowSeconds();
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'client-7', iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1', ...header } as never)
    .sign(key);
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The JWKS server: serves `keys` (changeable), counts fetches. */
async function jwksServer(keys: JWK[]) {
  const served = { keys };
  const server = await appServer((_request, res) => json(res, 200, served));
  return {
    server,
    served,
    url: `${server.url}/.well-known/jwks.json`,
    get fetches() {
      return server.seen.length;
    },
  };
}

async function publicJwk(pair: KeyPair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
}

let server: TestServer | null = null;
let jwks: Awaited<ReturnType<typeof jwksServer>> | null = null;
afterEach(async () => {
  await server?.close();
  await jwks?.server.close();
  server = null;
  jwks = null;
});

function orderIntake(auth: Record<string, unknown>, id = 'order-intake', route = 'POST /orders') {
  return defineIntegration({
    id,
    mode: 'async',
    route,
    auth: { type: 'jwt', issuer: ISSUER, audience: AUDIENCE, ...auth } as never,
    input: z.object({ orderId: z.string() }),
    handler: () => 'ok',
  });
}

async function post(path: string, bearer: string | null, body: unknown = { orderId: 'A-1' }) {
  return server!.request(path, {
    method: 'POST',
    json: body,
    headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` },
  });
}

describe('JWT triggers with a JWKS', () => {
  it('accept a valid token, and hide it from a sync handler', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256')]);
    const whoAmI = defineIntegration({
      id: 'who-am-i',
      mode: 'sync',
      route: 'GET /me',
      auth: { type: 'jwt', issuer: ISSUER, audience: AUDIENCE, jwksUrl: jwks.url },
      handler: (ctx) => ({ headers: Object.keys(ctx.headers).sort() }),
    });
    server = await testServer([orderIntake({ jwksUrl: jwks.url }), whoAmI], {}, { worker: false });
    const accepted = await post('/orders', await token(rsa.privateKey));
    expect(accepted.status).toBe(202);
    expect(await server.store.countInstances({ integrationId: 'order-intake' })).toBe(1);
    const me = await server.request('/me', {
      headers: { authorization: `Bearer ${await token(rsa.privateKey)}`, 'x-trace': '1' },
    });
    expect(me.status).toBe(200);
    expect(me.json.headers).toContain('x-trace');
    expect(me.json.headers).not.toContain('authorization');
    // Both triggers share nothing, and each fetched the key set once: it is cached.
    await post('/orders', await token(rsa.privateKey));
    expect(jwks.fetches).toBe(2);
  });

  it('refuse the corpus of bad tokens with 401 invalid_token, before reading the body, storing nothing', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256'), await publicJwk(ec, 'ec-1', 'ES256')]);
    // The default algorithm list: none and HS256 are refused without being named.
    server = await testServer(
      [
        orderIntake({ jwksUrl: jwks.url }),
        orderIntake({ jwksUrl: jwks.url, algorithms: ['RS256'] }, 'rsa-intake', 'POST /rsa-only'),
      ],
      {},
      { worker: false },
    );
    const now = nowSeconds();
    const valid = await token(rsa.privateKey);
    const [head, payload] = valid.split('.');
    const publicPem = await exportSPKI(rsa.publicKey);
    const hsHeader = b64url({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' });
    const hsPayload = b64url({ iss: ISSUER, aud: AUDIENCE, exp: now + 300 });
    const hsSignature = createHmac('sha256', publicPem)
      .update(`${hsHeader}.${hsPayload}`)
      .digest('base64url');
    const cases: [string, string | null, RegExp][] = [
      ['no token', null, /needs a JWT/],
      ['not a JWT', 'not-a-jwt', /not a valid signed JWT/],
      ['expired', await token(rsa.privateKey, { claims: { exp: now - 300 } }), /expired/],
      ['not yet valid', await token(rsa.privateKey, { claims: { nbf: now + 300 } }), /not valid yet/],
      ['wrong audience', await token(rsa.privateKey, { claims: { aud: 'api://billing' } }), /audience/],
      ['wrong issuer', await token(rsa.privateKey, { claims: { iss: 'https://evil.test/' } }), /issuer/],
      ['no expiry', await token(rsa.privateKey, { claims: { exp: undefined } }), /expiry/],
      ['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.`, /algorithm/],
      ['HS256 signed with the public key', `${hsHeader}.${hsPayload}.${hsSignature}`, /algorithm/],
      ['unknown key id', await token(stranger.privateKey, { header: { kid: 'stranger' } }), /key id/],
      ['another key under a known key id', await token(stranger.privateKey), /signature/],
      [
        'tampered claims',
        `${head}.${b64url({ iss: ISSUER, aud: AUDIENCE, exp: now + 9e5 })}.${valid.split('.')[2]}`,
        /signature/,
      ],
    ];
    const before = server.counts();
    for (const [name, bearer, reason] of cases) {
      // A malformed body shows the token is refused before the body is parsed.
      const res = await server.request('/orders', {
        method: 'POST',
        body: '{not json',
        headers: {
          'content-type': 'application/json',
          ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
        },
      });
      expect(res.status, name).toBe(401);
      expect(res.json.type, name).toBe('urn:tandem:error:unauthenticated');
      expect(res.json.detail, name).toMatch(reason);
      const challenge = res.headers.get('www-authenticate') ?? '';
      expect(challenge, name).toMatch(bearer === null ? /^Bearer$/ : /^Bearer error="invalid_token"/);
    }
    expect(
      (
        await server.request('/orders', {
          method: 'POST',
          json: {},
          headers: { authorization: 'Basic YTpi' },
        })
      ).status,
    ).toBe(401);
    // An algorithm the key set has a key for, but the trigger does not allow.
    const es256 = await token(ec.privateKey, { header: { alg: 'ES256', kid: 'ec-1' } });
    const narrowed = await post('/rsa-only', es256);
    expect([narrowed.status, narrowed.json.detail]).toEqual([
      401,
      "The token's signature algorithm is not accepted",
    ]);
    expect(server.counts()).toEqual(before);
    expect((await post('/orders', es256)).status).toBe(202);
    expect((await post('/rsa-only', valid)).status).toBe(202);
  });

  it('allow the configured clock skew on exp and nbf, and no more', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256')]);
    server = await testServer(
      [
        orderIntake({ jwksUrl: jwks.url }),
        orderIntake({ jwksUrl: jwks.url, clockToleranceSeconds: 0 }, 'strict-intake', 'POST /strict'),
      ],
      {},
      { worker: false },
    );
    const now = nowSeconds();
    const justExpired = await token(rsa.privateKey, { claims: { exp: now - 10 } });
    const soonValid = await token(rsa.privateKey, { claims: { nbf: now + 10 } });
    const longExpired = await token(rsa.privateKey, { claims: { exp: now - 60 } });
    const laterValid = await token(rsa.privateKey, { claims: { nbf: now + 60 } });
    // Default tolerance 30 s: a token 10 s past its expiry or 10 s before its start is accepted.
    expect((await post('/orders', justExpired)).status).toBe(202);
    expect((await post('/orders', soonValid)).status).toBe(202);
    expect((await post('/orders', longExpired)).status).toBe(401);
    expect((await post('/orders', laterValid)).status).toBe(401);
    // Without tolerance the same tokens are refused.
    expect((await post('/strict', justExpired)).status).toBe(401);
    expect((await post('/strict', soonValid)).status).toBe(401);
    expect(await server.store.countInstances({})).toBe(2);
  });

  it('fetch the key set again for an unknown key id, at most once per cooldown', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256')]);
    server = await testServer(
      [
        orderIntake({ jwksUrl: jwks.url, jwksCooldownSeconds: 0 }),
        orderIntake({ jwksUrl: jwks.url }, 'guarded-intake', 'POST /guarded'),
      ],
      {},
      { worker: false },
    );
    expect((await post('/orders', await token(rsa.privateKey))).status).toBe(202);
    expect((await post('/guarded', await token(rsa.privateKey))).status).toBe(202);
    expect(jwks.fetches).toBe(2);
    const fresh = await token(rotated.privateKey, { header: { kid: 'rsa-2' } });
    // The issuer has not published the new key yet: refused, after a fetch.
    expect((await post('/orders', fresh)).status).toBe(401);
    expect(jwks.fetches).toBe(3);
    // It rotates: the next token with the new key id makes the trigger fetch the set again.
    jwks.served.keys.push(await publicJwk(rotated, 'rsa-2', 'RS256'));
    expect((await post('/orders', fresh)).status).toBe(202);
    expect(jwks.fetches).toBe(4);
    expect((await post('/orders', fresh)).status).toBe(202);
    expect(jwks.fetches).toBe(4);
    // With the default cooldown (30 s) made-up key ids do not make the trigger fetch again.
    for (let i = 0; i < 5; i++) {
      const forged = await token(stranger.privateKey, { header: { kid: `forged-${i}` } });
      expect((await post('/guarded', forged)).status).toBe(401);
    }
    expect((await post('/guarded', fresh)).status).toBe(401); // still the set fetched before rotation
    expect(jwks.fetches).toBe(4);
  });

  it('answer 503 jwks-unavailable with Retry-After while the key set cannot be fetched, storing nothing', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256')]);
    server = await testServer([orderIntake({ jwksUrl: jwks.url })], {}, { worker: false });
    await jwks.server.down();
    const before = server.counts();
    const refused = await post('/orders', await token(rsa.privateKey));
    expect(refused.status).toBe(503);
    expect(refused.json.type).toBe('urn:tandem:error:jwks-unavailable');
    expect(refused.headers.get('retry-after')).toBe('10');
    expect(server.counts()).toEqual(before);
    await jwks.server.up();
    expect((await post('/orders', await token(rsa.privateKey))).status).toBe(202);
  });

  it('answer 403 insufficient_scope when a required claim is missing', async () => {
    jwks = await jwksServer([await publicJwk(rsa, 'rsa-1', 'RS256')]);
    server = await testServer(
      [orderIntake({ jwksUrl: jwks.url, claims: { scope: 'orders:write', tenant: ['acme', 'eu'] } })],
      {},
      { worker: false },
    );
    const cases: [JWTPayload, number][] = [
      [{ scope: 'orders:read', tenant: ['acme', 'eu'] }, 403],
      [{ scope: 'orders:read orders:write', tenant: ['acme'] }, 403],
      [{ tenant: ['acme', 'eu'] }, 403],
      [{ scope: 'orders:write', tenant: 'acme' }, 403],
      [{ scope: 'orders:read orders:write', tenant: ['eu', 'acme', 'x'] }, 202],
    ];
    for (const [claims, status] of cases) {
      const res = await post('/orders', await token(rsa.privateKey, { claims }));
      expect(res.status, JSON.stringify(claims)).toBe(status);
      if (status === 403) {
        expect(res.json.type).toBe('urn:tandem:error:forbidden');
        expect(res.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"');
      }
    }
    expect(await server.store.countInstances({})).toBe(1);
  });
});

describe('JWT triggers with keys in the config', () => {
  it('verify with PEM and JWK public keys (RSA, EC, EdDSA), several during a rotation', async () => {
    const keys = [
      await exportSPKI(rsa.publicKey),
      await publicJwk(ec, 'ec-1', 'ES256'),
      await exportJWK(ed.publicKey),
    ];
    server = await testServer([orderIntake({ publicKey: keys })], {}, { worker: false });
    const withoutKid = { kid: undefined };
    expect((await post('/orders', await token(rsa.privateKey, { header: withoutKid }))).status).toBe(202);
    expect(
      (await post('/orders', await token(ec.privateKey, { header: { alg: 'ES256', kid: 'ec-1' } }))).status,
    ).toBe(202);
    expect(
      (await post('/orders', await token(ed.privateKey, { header: { alg: 'EdDSA', kid: undefined } })))
        .status,
    ).toBe(202);
    expect((await post('/orders', await token(stranger.privateKey, { header: withoutKid }))).status).toBe(
      401,
    );
    expect(await server.store.countInstances({})).toBe(3);
  });

  it('are refused at definition time when the options are unsafe or incomplete', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const privatePem = await exportPKCS8(rsa.privateKey);
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        'neither key source',
        {},
        /auth\.jwksUrl must be given, or publicKey \(is an environment variable unset\?\)/,
      ],
      ['both key sources', { publicKey: pem, jwksUrl: 'https://idp.test/jwks' }, /not both/],
      [
        'a JWKS over plain http',
        { jwksUrl: 'http://idp.test/jwks' },
        /https URL \(http only for localhost\)/,
      ],
      ['an unset JWKS URL', { jwksUrl: undefined, publicKey: undefined }, /environment variable unset/],
      ['a private PEM key', { publicKey: privatePem }, /private key was given/],
      ['a private JWK', { publicKey: privateKey.export({ format: 'jwk' }) }, /private or secret JWK/],
      ['a shared secret JWK', { publicKey: { kty: 'oct', k: 'c2VjcmV0' } }, /private or secret JWK/],
      ['not a key', { publicKey: 'secret' }, /not PEM/],
      ['HS256 allowed', { publicKey: pem, algorithms: ['HS256'] }, /asymmetric algorithms only/],
      ['alg none allowed', { publicKey: pem, algorithms: ['none'] }, /asymmetric algorithms only/],
      ['an empty audience', { publicKey: pem, audience: '' }, /auth\.audience must be a non-empty string/],
      ['a negative skew', { publicKey: pem, clockToleranceSeconds: -1 }, /clockToleranceSeconds/],
      ['an object claim', { publicKey: pem, claims: { roles: { admin: true } } }, /auth\.claims/],
    ];
    for (const [name, auth, message] of cases) {
      let thrown: unknown = null;
      try {
        orderIntake(auth);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, name).toBeInstanceOf(InvalidDefinitionError);
      expect((thrown as Error).message, name).toMatch(message);
      expect((thrown as Error).message, name).not.toContain('BEGIN');
    }
  });
});

describe('JWT triggers elsewhere', () => {
  it('are shown as bearer JWT in the OpenAPI document and as "jwt" in /api/integrations', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    server = await testServer([orderIntake({ publicKey: pem })], { adminToken: null }, { worker: false });
    const openapi = await server.request('/openapi.json');
    expect(openapi.json.components.securitySchemes['order-intake.jwt']).toEqual({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    expect(openapi.json.paths['/orders'].post.security).toEqual([{ 'order-intake.jwt': [] }]);
    const listed = await server.request('/api/integrations');
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.json)).toContain('"auth":"jwt"');
  });

  it('keep tokens out of the logs', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const pem = await exportSPKI(rsa.publicKey);
    const failing = defineIntegration({
      id: 'failing',
      mode: 'sync',
      route: 'POST /failing',
      auth: { type: 'jwt', issuer: ISSUER, audience: AUDIENCE, publicKey: pem },
      handler: () => {
        throw new Error('boom');
      },
    });
    server = await testServer(
      [orderIntake({ publicKey: pem }), failing],
      { logger: pino({ level: 'trace' }, sink) },
      { worker: false },
    );
    const valid = await token(rsa.privateKey, { header: { kid: undefined } });
    const expired = await token(rsa.privateKey, {
      header: { kid: undefined },
      claims: { exp: nowSeconds() - 600 },
    });
    expect((await post('/orders', valid)).status).toBe(202);
    expect((await post('/orders', expired)).status).toBe(401);
    expect((await post('/failing', valid)).status).toBe(500);
    await server.app.close();
    const log = lines.join('');
    expect(log).toContain('sync instance failed');
    for (const secret of [valid, expired, valid.split('.')[2]!, expired.split('.')[2]!]) {
      expect(log).not.toContain(secret);
    }
  });
});
