import { CodedError } from '@cachefleet/config';

/** Coded errors of the tracing setup; the README's table is checked against this one. */
export const TELEMETRY_ERROR_CODES = {
  E_TELEMETRY_CONFIG:
    'an `OTEL_*` setting is invalid (an endpoint that is not an http(s) URL, an exporter or protocol not built in), or a second SDK was started in one process; the message names the variable and the process does not start',
} as const;

export type TelemetryErrorCode = keyof typeof TELEMETRY_ERROR_CODES;

export class TelemetryError extends CodedError<TelemetryErrorCode> {}
