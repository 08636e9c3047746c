/**
 * The tracing setup: which OTEL_* settings turn it on, how a bad one is refused, and a real export
 * over OTLP/HTTP to a receiver in this process (what a collector on :4318 would get).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { inSpan, loadTracingConfig, startTracing, TelemetryError, TRACING_ENV_VARS } from '../src/index.js';

describe('loadTracingConfig', () => {
  it('is off unless an endpoint or the otlp exporter is named', () => {
    expect(loadTracingConfig({}, 'svc')).toEqual({ enabled: false });
    expect(loadTracingConfig({ OTEL_SERVICE_NAME: 'x' }, 'svc')).toEqual({ enabled: false });
    expect(
      loadTracingConfig(
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' },
        'svc',
      ),
    ).toEqual({ enabled: false });
    expect(
      loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }, 'svc'),
    ).toEqual({ enabled: false });
  });

  it('an endpoint turns it on: traces go to <endpoint>/v1/traces, or to the traces endpoint as is', () => {
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, 'svc')).toEqual({
      enabled: true,
      url: 'http://collector:4318/v1/traces',
      serviceName: 'svc',
    });
    expect(
      loadTracingConfig(
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/in',
          OTEL_SERVICE_NAME: 'shop-api',
        },
        'svc',
      ),
    ).toEqual({ enabled: true, url: 'https://traces.example/in', serviceName: 'shop-api' });
    expect(loadTracingConfig({ OTEL_TRACES_EXPORTER: 'otlp' }, 'svc')).toMatchObject({
      url: 'http://localhost:4318/v1/traces',
    });
  });

  it('documents every variable in the README', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const name of Object.keys(TRACING_ENV_VARS)) expect(readme, name).toContain(`| \`${name}\` |`);
  });

  it('refuses a bad value with E_TELEMETRY_CONFIG naming the variable', () => {
    const refusal = (env: Record<string, string>): string => {
      try {
        loadTracingConfig(env, 'svc');
      } catch (error) {
        expect(error).toBeInstanceOf(TelemetryError);
        expect((error as TelemetryError).code).toBe('E_TELEMETRY_CONFIG');
        return (error as TelemetryError).message;
      }
      throw new Error(`accepted ${JSON.stringify(env)}`);
    };
    expect(refusal({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toBe(
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL such as http://otel-collector:4318',
    );
    expect(refusal({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://c:4317' })).toMatch(
      /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected an http/,
    );
    expect(refusal({ OTEL_TRACES_EXPORTER: 'jaeger' })).toMatch(
      /^OTEL_TRACES_EXPORTER: expected otlp or none/,
    );
    expect(refusal({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toMatch(/^OTEL_EXPORTER_OTLP_PROTOCOL: .*grpc/);
    expect(refusal({ OTEL_SDK_DISABLED: 'maybe' })).toMatch(/^OTEL_SDK_DISABLED: /);
  });
});

describe('startTracing', () => {
  it('posts the spans over OTLP/HTTP with the service name; shut down, the API is a no-op again', async () => {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        body += d;
      });
      req.on('end', () => {
        bodies.push(`${req.method} ${req.url} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const config = loadTracingConfig(
        { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
        'svc-test',
      );
      const tracing = startTracing(config);
      expect(tracing?.serviceName).toBe('svc-test');
      expect(() => startTracing(config)).toThrow(/already registered/);
      await inSpan('cachefleet status', { 'cachefleet.command': 'status' }, async () => undefined);
      await tracing?.shutdown();
      expect(bodies).toHaveLength(1);
      const sent = bodies[0] as string;
      expect(sent.startsWith('POST /v1/traces ')).toBe(true);
      expect(sent).toContain('"cachefleet status"');
      expect(sent).toContain('"svc-test"');
      // Unregistered: a second SDK may start (the next test file's, or a restart in-process).
      const again = startTracing(config);
      await again?.shutdown();
    } finally {
      server.close();
    }
  });
});
