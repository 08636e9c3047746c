import { boolishSchema, type Env, parseEnv } from '@cachefleet/config';
import { z } from 'zod';
import { TelemetryError } from './errors.js';

/**
 * The standard OpenTelemetry variables this package reads (a subset: what an operator sets to send
 * traces to a collector). Spans go out only when an OTLP endpoint or exporter is named; otherwise no
 * SDK is started and every span call is the API's no-op (docs/tracing.md).
 */
export const TRACING_ENV_VARS = {
  OTEL_TRACES_EXPORTER:
    'otlp | none; default otlp when an OTLP endpoint is set, else none (tracing off, no SDK started)',
  OTEL_EXPORTER_OTLP_ENDPOINT:
    'http(s) base URL of an OTLP/HTTP receiver (a collector on :4318); traces go to <url>/v1/traces',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http(s) URL traces are posted to as is (overrides the base URL)',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json or http/protobuf (both sent as OTLP/HTTP JSON); grpc is refused',
  OTEL_SERVICE_NAME: 'service.name of the spans (default cachefleet-api, cachefleet-worker, cachefleet-cli)',
  OTEL_SDK_DISABLED: 'true: no tracing whatever the rest says',
} as const;

/** The OTel default when only OTEL_TRACES_EXPORTER=otlp is set. */
const DEFAULT_ENDPOINT = 'http://localhost:4318';

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'expected an http:// or https:// URL such as http://otel-collector:4318');

export const TRACING_ENV_SCHEMA = z.object({
  OTEL_SDK_DISABLED: boolishSchema.optional().describe(TRACING_ENV_VARS.OTEL_SDK_DISABLED),
  OTEL_TRACES_EXPORTER: z
    .enum(['otlp', 'none'], { message: 'expected otlp or none (the only exporters built in)' })
    .optional()
    .describe(TRACING_ENV_VARS.OTEL_TRACES_EXPORTER),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional().describe(TRACING_ENV_VARS.OTEL_EXPORTER_OTLP_ENDPOINT),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl
    .optional()
    .describe(TRACING_ENV_VARS.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .enum(['http/json', 'http/protobuf'], {
      message: 'expected http/json or http/protobuf (traces go out over OTLP/HTTP; grpc is not built in)',
    })
    .optional()
    .describe(TRACING_ENV_VARS.OTEL_EXPORTER_OTLP_PROTOCOL),
  OTEL_SERVICE_NAME: z.string().min(1).max(200).optional().describe(TRACING_ENV_VARS.OTEL_SERVICE_NAME),
});

export type TracingConfig =
  | { readonly enabled: false }
  | { readonly enabled: true; readonly url: string; readonly serviceName: string };

/**
 * Reads the tracing settings; `serviceName` is the process's default `service.name`. A bad value
 * throws E_TELEMETRY_CONFIG naming the variable, before anything starts.
 */
export function loadTracingConfig(env: Env, serviceName: string): TracingConfig {
  const e = parseEnv(
    TRACING_ENV_SCHEMA,
    env,
    (message, cause) => new TelemetryError('E_TELEMETRY_CONFIG', message, { cause }),
  );
  const named = e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT;
  const exporter = e.OTEL_TRACES_EXPORTER ?? (named !== undefined ? 'otlp' : 'none');
  if (e.OTEL_SDK_DISABLED === true || exporter === 'none') return { enabled: false };
  const url =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    `${(e.OTEL_EXPORTER_OTLP_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '')}/v1/traces`;
  return { enabled: true, url, serviceName: e.OTEL_SERVICE_NAME ?? serviceName };
}
