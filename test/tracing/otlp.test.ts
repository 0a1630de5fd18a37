/**
 * Traces exported over OTLP/HTTP to a receiver written here (a plain HTTP server that keeps what
 * it is sent): from an engine given `tracing.endpoint`, and from `tandem start` configured by the
 * standard `OTEL_EXPORTER_OTLP_ENDPOINT` alone. The SDK and exporter are loaded only then.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { startTracing } from '../../src/tracing/tracing.js';
import { spawnCli } from '../support/cli.js';
import { testEngine, waitForStatus } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const INCOMING = `00-${TRACE}-b7ad6b7169203331-01`;
const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

interface ExportedSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string } }[];
}

/** An OTLP/HTTP receiver: every span of every JSON export request, and the resources' service names. */
async function receiver() {
  const spans: ExportedSpan[] = [];
  const services = new Set<string>();
  const contentTypes = new Set<string>();
  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    contentTypes.add(String(request.headers['content-type']));
    if (request.method !== 'POST' || request.url !== '/v1/traces') {
      response.writeHead(404).end();
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString()) as {
      resourceSpans: {
        resource: { attributes: ExportedSpan['attributes'] };
        scopeSpans: { spans: ExportedSpan[] }[];
      }[];
    };
    for (const resource of body.resourceSpans) {
      const service = resource.resource.attributes.find((a) => a.key === 'service.name');
      if (service?.value.stringValue) services.add(service.value.stringValue);
      for (const scope of resource.scopeSpans) spans.push(...scope.spans);
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    spans,
    services,
    contentTypes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attribute = (span: ExportedSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value?.stringValue ?? (value?.intValue === undefined ? undefined : Number(value.intValue));
};

const running: ChildProcess[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('OTLP/HTTP export', () => {
  it('sends the spans of an engine given tracing.endpoint, flushed when it stops', async () => {
    const collector = await receiver();
    cleanups.push(collector.close);
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      track: { orderId: 'orderId' },
      handler: async (ctx) => ctx.step('one', () => 1),
    });
    const { engine, close } = await testEngine([work], {
      tracing: { endpoint: `${collector.url}/`, serviceName: 'orders-tandem' },
    });
    const { instanceId } = await engine.accept(work, { orderId: 'O-1' }, { traceparent: INCOMING });
    await waitForStatus(engine, instanceId);
    expect((await engine.getInstance(instanceId)).traceId).toBe(TRACE);
    await close();
    const names = collector.spans.map((s) => s.name).sort();
    expect(names).toEqual(['accept work', 'attempt work', 'step one']);
    expect(collector.spans.every((s) => s.traceId === TRACE)).toBe(true);
    const attempt = collector.spans.find((s) => s.name === 'attempt work')!;
    expect(attribute(attempt, 'tandem.instance.id')).toBe(instanceId);
    expect(attribute(attempt, 'tandem.tracking.orderId')).toBe('O-1');
    expect([...collector.services]).toEqual(['orders-tandem']);
    expect([...collector.contentTypes]).toEqual(['application/json']);
  });

  it('is off without an endpoint, and refuses an endpoint that is not an http(s) URL', async () => {
    expect(await startTracing(undefined, {})).toBeNull();
    expect(await startTracing({ serviceName: 'x' }, {})).toBeNull();
    expect(await startTracing(false, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' })).toBeNull();
    expect(
      await startTracing(undefined, {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
        OTEL_SDK_DISABLED: 'true',
      }),
    ).toBeNull();
    await expect(startTracing({ endpoint: 'ftp://collector' }, {})).rejects.toMatchObject({
      code: 'invalid-definition',
    });
  });

  it('tandem start traces when OTEL_EXPORTER_OTLP_ENDPOINT is set, and flushes on SIGTERM', async () => {
    const collector = await receiver();
    cleanups.push(collector.close);
    const dir = tempDir('tandem-otlp-');
    cleanups.push(dir.cleanup);
    writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
    const config = join(dir.path, 'tandem.config.ts');
    writeFileSync(
      config,
      `import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
const work = defineIntegration({
  id: 'work',
  mode: 'async',
  route: 'POST /work',
  handler: async (ctx) => ctx.step('one', () => 1),
});
export default defineConfig({ integrations: [work], pollIntervalMs: 100 });
`,
    );
    const { child, output, exited } = spawnCli(
      ['start', '--host', '127.0.0.1', '--port', '0', '--config', config],
      running,
      {
        TANDEM_ADMIN_TOKEN: '',
        TANDEM_STORE_URL: `sqlite:${join(dir.path, 'tandem.db')}`,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: 'tandem-cli',
      },
    );
    const url = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`tandem start exited: ${output.stderr}`);
        return /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output.stdout)?.[1];
      },
      'tandem start to listen',
      60_000,
    );
    const accepted = await fetch(`${url}/work`, { method: 'POST', headers: { traceparent: INCOMING } });
    expect(accepted.status).toBe(202);
    const { instanceId } = (await accepted.json()) as { instanceId: string };
    const detail = await waitFor(async () => {
      const answer = (await (await fetch(`${url}/api/instances/${instanceId}`)).json()) as {
        instance: { status: string; traceId: string | null };
      };
      return answer.instance.status === 'succeeded' ? answer.instance : null;
    }, 'the instance to succeed');
    expect(detail.traceId).toBe(TRACE);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(collector.spans.map((s) => s.name).sort()).toEqual(['accept work', 'attempt work', 'step one']);
    expect(collector.spans.every((s) => s.traceId === TRACE)).toBe(true);
    expect([...collector.services]).toEqual(['tandem-cli']);
  });
});
