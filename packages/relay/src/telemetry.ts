// OpenTelemetry: a W3C `traceparent` taken at ingest (the http source's header or an event
// field), stored with the message and sent on every delivery attempt, so a trace runs from the
// producer through the relay to the receiver; a span per ingest request and per attempt, and
// delivery metrics, through @opentelemetry/api. Without an SDK the api is a no-op (a span is a
// non-recording one carrying its parent's ids: the stored traceparent goes out unchanged);
// `telemetry.otlp` loads the SDK and its OTLP/HTTP exporters (optional dependencies) lazily.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  diag,
  isSpanContextValid,
  metrics,
  trace,
  type Attributes,
  type Counter,
  type Histogram,
  type Link,
  type MeterProvider,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import { field } from './envelope.js';
import type { AttemptOutcome } from './delivery/Target.js';
import type { RelayConfig } from './schema.js';

/** The instrumentation scope of every span and metric of the relay. */
export const INSTRUMENTATION_SCOPE = 'eventsinks-relay';

/** The header (and the stored form) of a W3C trace context: `00-<trace id>-<span id>-<flags>`. */
export const TRACEPARENT_HEADER = 'traceparent';

// W3C Trace Context §3.2: lowercase hex; version ff is invalid; a version other than 00 may
// carry more fields after the flags (read as 00, as the spec asks of a 00 parser).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The span context a `traceparent` value describes, or undefined when it is not a valid one
 * (wrong shape, version `ff`, an all-zero trace or parent id, extra fields on version 00).
 *
 * @example
 * ```ts
 * parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')?.traceId;
 * // '0af7651916cd43dd8448eb211c80319c'
 * ```
 */
export function parseTraceparent(value: unknown): SpanContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value.trim());
  if (match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
}

const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);

// A context known to be valid (parsed, or of a recording span) as a traceparent.
function toTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
}

/** `context` as a version-00 `traceparent`; undefined for an invalid (empty) context. */
export function formatTraceparent(context: SpanContext): string | undefined {
  return isSpanContextValid(context) ? toTraceparent(context) : undefined;
}

/**
 * The `traceparent` to store for an event: the valid value at `path` in the event (normalized
 * to version 00), else `fallback` (the request's). An invalid value is reported to `invalid`
 * (the caller logs it at debug) and ignored.
 */
export function traceparentOf(
  event: Record<string, unknown>,
  path: string | undefined,
  fallback: string | undefined,
  invalid?: (value: unknown) => void,
): string | undefined {
  if (path === undefined) return fallback;
  const value = field(event, path);
  if (value === undefined || value === null) return fallback;
  const context = parseTraceparent(value);
  if (context === undefined) {
    invalid?.(value);
    return fallback;
  }
  return toTraceparent(context);
}

// The tracer is the api's proxy: an SDK registered later (telemetry.otlp, or the embedding
// application's) is used from then on.
let tracer: Tracer | undefined;
function getTracer(): Tracer {
  return (tracer ??= trace.getTracer(INSTRUMENTATION_SCOPE));
}

interface Instruments {
  provider: MeterProvider;
  deliveries: Counter;
  duration: Histogram;
  ingested: Counter;
}

// Metric instruments are not proxied by the api: they are made from the global provider in
// use, again when it changes (the SDK registered or shut down).
let instruments: Instruments | undefined;
function getInstruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (instruments?.provider === provider) return instruments;
  const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
  instruments = {
    provider,
    deliveries: meter.createCounter('eventsinks.deliveries', {
      description:
        'Events by the outcome of the delivery attempt that carried them (delivered, retried, dead)',
      unit: '{event}',
    }),
    duration: meter.createHistogram('eventsinks.deliver.duration', {
      description: 'How long a delivery attempt took, by destination and outcome',
      unit: 's',
    }),
    ingested: meter.createCounter('eventsinks.ingested', {
      description: 'Events received per ingest request, by source and outcome',
      unit: '{event}',
    }),
  };
  return instruments;
}

function parentContext(parent: SpanContext | undefined) {
  return parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parent);
}

/** One ingest request's span (`eventsinks.ingest`), from {@link startIngest}. */
export interface IngestTrace {
  /**
   * The traceparent stored with the request's events that carry none of their own: the
   * request's (a valid header), else the ingest span's own when an SDK records it, else none.
   */
  readonly traceparent: string | undefined;
  /**
   * Ends the span (once; later calls do nothing) with the request's outcome (`accepted`,
   * `replayed`, or why it was refused), its event count and, for http, the status answered.
   * A status of 500 or more, or `error`, marks the span as failed.
   */
  end(outcome: string, events: number, status?: number, error?: unknown): void;
}

/**
 * Starts the span of one ingest request of `source`, a child of `parent` (the request's
 * traceparent, already checked with {@link parseTraceparent}) or the root of a new trace.
 *
 * @example
 * ```ts
 * const ingest = startIngest('http', parseTraceparent(req.headers.traceparent));
 * ingest.end('accepted', 3, 202);
 * ```
 */
export function startIngest(source: string, parent: SpanContext | undefined): IngestTrace {
  const span = getTracer().startSpan(
    'eventsinks.ingest',
    {
      kind: source === 'http' ? SpanKind.SERVER : SpanKind.CONSUMER,
      attributes: { 'eventsinks.source': source },
    },
    parentContext(parent),
  );
  const own = span.isRecording() ? toTraceparent(span.spanContext()) : undefined;
  let ended = false;
  return {
    traceparent: parent !== undefined ? toTraceparent(parent) : own,
    end(outcome, events, status, error) {
      if (ended) return;
      ended = true;
      getInstruments().ingested.add(events, { 'eventsinks.source': source, outcome });
      if (!span.isRecording()) return;
      const attributes: Attributes = {
        'eventsinks.events': events,
        'eventsinks.outcome': outcome,
      };
      if (status !== undefined) attributes['http.response.status_code'] = status;
      span.setAttributes(attributes);
      if (error !== undefined || (status !== undefined && status >= 500))
        fail(span, error, outcome);
      span.end();
    },
  };
}

/** What became of the events of an attempt: `retried` means they wait for another one. */
export type AttemptResult = 'delivered' | 'retried' | 'dead';

/** One delivery attempt's span (`eventsinks.deliver`), from {@link startAttempt}. */
export interface AttemptTrace {
  /** The `traceparent` header to send: the attempt's span as the parent (see startAttempt). */
  readonly traceparent: string | undefined;
  /** Ends the span (once) and counts the attempt in the delivery metrics. */
  end(outcome: AttemptOutcome, result: AttemptResult): void;
}

// Links on a batch's span: one per other trace among its events, at most this many.
const MAX_LINKS = 32;

/**
 * Starts the span of one attempt at delivering `deliveries` to `destination` (kind CLIENT), a
 * child of the first traceparent stored with them (for one event: its own), linked to the
 * others of a batch. Its `traceparent` is what the attempt sends: the span's own ids when an
 * SDK records it; without one, the stored traceparent unchanged (no span exists to be the
 * parent); none when no event had one and no SDK runs.
 *
 * @example
 * ```ts
 * const attempt = startAttempt('hooks', [delivery], 1, undefined);
 * const outcome = await target.send([envelope], undefined, { traceparent: attempt.traceparent });
 * attempt.end(outcome, outcome.ok ? 'delivered' : 'retried');
 * ```
 */
export function startAttempt(
  destination: string,
  deliveries: readonly { id: string; traceparent?: string | undefined }[],
  attempt: number,
  batchId: string | undefined,
): AttemptTrace {
  let parent: SpanContext | undefined;
  let stored: string | undefined;
  let links: Link[] | undefined;
  for (const d of deliveries) {
    if (d.traceparent === undefined) continue;
    const context = parseTraceparent(d.traceparent);
    if (context === undefined) continue;
    if (parent === undefined) {
      parent = context;
      stored = d.traceparent;
      continue;
    }
    if (context.traceId === parent.traceId) continue;
    links ??= [];
    if (links.length < MAX_LINKS && !links.some((l) => l.context.traceId === context.traceId))
      links.push({ context });
  }
  const span = getTracer().startSpan(
    'eventsinks.deliver',
    {
      kind: SpanKind.CLIENT,
      attributes: { 'eventsinks.destination': destination },
      ...(links !== undefined ? { links } : {}),
    },
    parentContext(parent),
  );
  const recording = span.isRecording();
  if (recording) {
    const attributes: Attributes = {
      'eventsinks.attempt': attempt,
      'eventsinks.messages': deliveries.length,
      'eventsinks.message_ids': deliveries.slice(0, 100).map((d) => d.id),
    };
    if (batchId !== undefined) attributes['eventsinks.batch_id'] = batchId;
    span.setAttributes(attributes);
  }
  const started = performance.now();
  let ended = false;
  return {
    // A span that is not recorded is not worth a new parent id: the stored one goes on.
    traceparent: recording ? toTraceparent(span.spanContext()) : stored,
    end(outcome, result) {
      if (ended) return;
      ended = true;
      const labels = { 'eventsinks.destination': destination, outcome: result };
      const meters = getInstruments();
      meters.deliveries.add(deliveries.length, labels);
      meters.duration.record((performance.now() - started) / 1000, labels);
      if (!recording) return;
      span.setAttribute('eventsinks.outcome', result);
      if (outcome.status !== undefined)
        span.setAttribute('http.response.status_code', outcome.status);
      if (!outcome.ok) fail(span, undefined, outcome.error ?? 'failed');
      span.end();
    },
  };
}

function fail(span: Span, error: unknown, message: string): void {
  if (error instanceof Error) span.recordException(error);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : message,
  });
}

/** The optional @opentelemetry packages that `telemetry.otlp` needs are not installed. */
export class TelemetryUnavailableError extends Error {
  override readonly name = 'TelemetryUnavailableError';
  readonly code = 'ERR_TELEMETRY_UNAVAILABLE';
  constructor(pkg: string, cause: unknown) {
    super(
      `telemetry.otlp needs the package ${pkg}, which is not installed (it is an optional ` +
        `dependency of eventsinks-relay): npm install ${OTLP_PACKAGES.join(' ')}`,
      { cause },
    );
  }
}

/** The packages `telemetry.otlp` loads. */
export const OTLP_PACKAGES = [
  '@opentelemetry/sdk-trace',
  '@opentelemetry/sdk-metrics',
  '@opentelemetry/resources',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/exporter-metrics-otlp-http',
] as const;

async function load<T>(pkg: (typeof OTLP_PACKAGES)[number]): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (error) {
    throw new TelemetryUnavailableError(pkg, error);
  }
}

/** The SDK started by {@link startTelemetry}. */
export interface RunningTelemetry {
  /** Exports what is buffered (spans, a last metrics collection), then unregisters the SDK. */
  shutdown(): Promise<void>;
}

/** How often metrics are exported (the SDK's default is a minute). */
export const METRIC_EXPORT_INTERVAL_MS = 15_000;

/** How long one export may take before it is given up (and logged). */
export const EXPORT_TIMEOUT_MS = 10_000;

function relayVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * With `telemetry.otlp`: loads the SDK, registers it as the global tracer and meter provider
 * (so the spans and metrics of this module are recorded) and exports both over OTLP/HTTP (JSON)
 * to `<endpoint>/v1/traces` and `<endpoint>/v1/metrics`. The SDK's own problems (an export that
 * failed) go to `logger`. Without `otlp`, does nothing (undefined): an SDK the embedding
 * application registered is used as it is.
 *
 * @throws TelemetryUnavailableError when an optional @opentelemetry package is missing.
 * @example
 * ```ts
 * const telemetry = await startTelemetry({ otlp: { endpoint: 'http://127.0.0.1:4318' } }, logger);
 * await telemetry?.shutdown();
 * ```
 */
export async function startTelemetry(
  config: RelayConfig['telemetry'],
  logger: Logger,
): Promise<RunningTelemetry | undefined> {
  const otlp = config.otlp;
  if (otlp === undefined) return undefined;
  const [sdkTrace, sdkMetrics, resources, traceExporter, metricExporter] = await Promise.all([
    load<typeof import('@opentelemetry/sdk-trace')>('@opentelemetry/sdk-trace'),
    load<typeof import('@opentelemetry/sdk-metrics')>('@opentelemetry/sdk-metrics'),
    load<typeof import('@opentelemetry/resources')>('@opentelemetry/resources'),
    load<typeof import('@opentelemetry/exporter-trace-otlp-http')>(
      '@opentelemetry/exporter-trace-otlp-http',
    ),
    load<typeof import('@opentelemetry/exporter-metrics-otlp-http')>(
      '@opentelemetry/exporter-metrics-otlp-http',
    ),
  ]);
  const log = logger.child({ component: 'telemetry' });
  // The SDK reports failed exports through diag, silent unless a logger is set.
  diag.setLogger(
    {
      error: (message, ...args) => log.error({ args }, message),
      warn: (message, ...args) => log.warn({ args }, message),
      info: (message, ...args) => log.debug({ args }, message),
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const base = otlp.endpoint.replace(/\/+$/, '');
  const headers = otlp.headers ?? {};
  const resource = resources.resourceFromAttributes({
    'service.name': INSTRUMENTATION_SCOPE,
    'service.version': relayVersion(),
  });
  const tracerProvider = new sdkTrace.TracerProvider({
    resource,
    spanProcessors: [
      new sdkTrace.BatchSpanProcessor({
        exporter: new traceExporter.OTLPTraceExporter({
          url: `${base}/v1/traces`,
          headers,
          timeoutMillis: EXPORT_TIMEOUT_MS,
        }),
        exportTimeoutMillis: EXPORT_TIMEOUT_MS,
      }),
    ],
  });
  const meterProvider = new sdkMetrics.MeterProvider({
    resource,
    readers: [
      new sdkMetrics.PeriodicExportingMetricReader({
        exporter: new metricExporter.OTLPMetricExporter({
          url: `${base}/v1/metrics`,
          headers,
          timeoutMillis: EXPORT_TIMEOUT_MS,
        }),
        exportIntervalMillis: METRIC_EXPORT_INTERVAL_MS,
        exportTimeoutMillis: EXPORT_TIMEOUT_MS,
      }),
    ],
  });
  const tracing = trace.setGlobalTracerProvider(tracerProvider);
  const metering = metrics.setGlobalMeterProvider(meterProvider);
  if (!tracing || !metering) {
    log.warn(
      { traces: tracing, metrics: metering },
      'another OpenTelemetry SDK is registered already: telemetry.otlp exports only what it could register',
    );
  }
  log.info({ endpoint: base }, 'exporting traces and metrics over OTLP/HTTP');
  let stopping: Promise<void> | undefined;
  return {
    shutdown() {
      stopping ??= (async () => {
        const results = await Promise.allSettled([
          tracerProvider.forceFlush().then(() => tracerProvider.shutdown()),
          meterProvider.forceFlush().then(() => meterProvider.shutdown()),
        ]);
        for (const result of results) {
          if (result.status === 'rejected')
            log.error({ err: result.reason }, 'flushing telemetry on stop failed');
        }
        if (tracing) trace.disable();
        if (metering) metrics.disable();
        tracer = undefined;
        diag.disable();
      })();
      return stopping;
    },
  };
}
