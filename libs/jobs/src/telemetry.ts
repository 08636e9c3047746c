import { tracerProviderRegistered } from '@cachefleet/tiered-cache';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';

/**
 * BullMQ's `telemetry` option, given to every Queue and Worker when a tracer provider is registered
 * as they are built (docs/tracing.md): an enqueue carries its trace in the job (W3C trace context in
 * `opts.telemetry.metadata`) and the worker's `process` span continues it, so the handler's cache
 * calls nest under the job. Without a provider the option is left out: BullMQ skips its tracing.
 */
export function queueTelemetry(): { telemetry?: Telemetry } {
  if (!tracerProviderRegistered()) return {};
  return { telemetry: new BullMQOtel({ tracerName: '@cachefleet/jobs', version: '0.1.0' }) };
}
