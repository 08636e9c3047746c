import {
  type Attributes,
  context,
  ProxyTracerProvider,
  propagation,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { TracingConfig } from './config.js';
import { TelemetryError } from './errors.js';

/** The SDK of this process, started by its entry point before anything is built. */
export interface Tracing {
  readonly serviceName: string;
  /** Sends what is buffered and unregisters the provider (the API is a no-op again). */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK when the config says so: spans are batched and posted over OTLP/HTTP. Off, nothing
 * is registered and the libraries stay on their untraced paths (they check once, when built).
 */
export function startTracing(config: TracingConfig): Tracing | undefined {
  if (!config.enabled) return undefined;
  return installTracing(
    config.serviceName,
    new BatchSpanProcessor(new OTLPTraceExporter({ url: config.url })),
  );
}

export interface TestTracing extends Tracing {
  /** Every span of the process, kept as it ends (`getFinishedSpans`, `reset`). */
  readonly exporter: InMemorySpanExporter;
}

/** Tests: the same SDK as `startTracing`, every span kept in memory as it ends. */
export function installTestTracing(serviceName: string): TestTracing {
  const exporter = new InMemorySpanExporter();
  return { ...installTracing(serviceName, new SimpleSpanProcessor(exporter)), exporter };
}

function installTracing(serviceName: string, processor: SpanProcessor): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [processor],
  });
  // The tracer provider, the AsyncLocalStorage context manager and W3C trace-context propagation
  // (what BullMQ's telemetry uses to carry a trace into a job).
  provider.register();
  const global = trace.getTracerProvider();
  if (global instanceof ProxyTracerProvider && global.getDelegate() !== provider) {
    void provider.shutdown();
    // A second SDK would be ignored silently by the API: say so instead.
    throw new TelemetryError('E_TELEMETRY_CONFIG', 'a tracer provider is already registered in this process');
  }
  return {
    serviceName,
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/**
 * Runs `fn` in a new active span: the root of a unit of work that is not a request (a CLI command),
 * so that what it enqueues joins its trace. The API's no-op when no SDK is started.
 */
export function inSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  return trace
    .getTracer('@cachefleet/telemetry', '0.1.0')
    .startActiveSpan(name, { attributes }, async (span) => {
      try {
        return await fn();
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw error;
      } finally {
        span.end();
      }
    });
}
