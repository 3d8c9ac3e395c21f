import { describe } from './internal/validate.js';

/**
 * A plain-object copy of a {@link SinkMetrics}' counters at one moment.
 *
 * @example
 * ```ts
 * const { pending, successes, failures } = metered.metrics.snapshot();
 * ```
 */
export interface SinkMetricsSnapshot {
  /** Writes started and not yet settled. */
  pending: number;
  /** Writes started. */
  events: number;
  /** Writes that were accepted. */
  successes: number;
  /** Writes that failed. */
  failures: number;
  /** Events dropped (by a Queue's overflow or deadline, a RetryingSink's strategy). */
  dropped: number;
  /** Attempts a RetryingSink made after a failure. */
  retries: number;
  /** Events handed to a dead letter (by a RetryingSink whose strategy gave up on them). */
  deadLettered: number;
  /** The last failure's error, or undefined. */
  lastError: unknown;
  /** When the last failure happened (ms since the epoch), or undefined. */
  lastErrorAt: number | undefined;
  /** When the last success happened (ms since the epoch), or undefined. */
  lastSuccessAt: number | undefined;
}

const NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Counters in the shape of Docker distribution's endpoint metrics: the library's one metrics
 * shape. One instance may be shared by a {@link MeteredSink} (events, successes, failures,
 * pending) and the `metrics` option of a Queue or RetryingSink below it (dropped, retries,
 * deadLettered), so one object describes a whole pipeline. Adapters expose the same shape
 * (an Endpoint's `sinkMetrics`, a JetStreamSink's `metrics`), and the relay's Prometheus
 * series are read from one instance per destination.
 *
 * @example
 * ```ts
 * const metrics = new SinkMetrics();
 * const sink = new MeteredSink(new RetryingSink(http, new Breaker(5, 1000), { metrics }), { metrics });
 * console.log(metrics.toPrometheus('webhook', { endpoint: 'billing' }));
 * ```
 */
export class SinkMetrics {
  /** Writes started and not yet settled. */
  pending = 0;
  /** Writes started. */
  events = 0;
  /** Writes that were accepted. */
  successes = 0;
  /** Writes that failed. */
  failures = 0;
  /** Events dropped. */
  dropped = 0;
  /** Attempts made after a failure. */
  retries = 0;
  /** Events handed to a dead letter. */
  deadLettered = 0;
  /** The last failure's error. */
  lastError: unknown = undefined;
  /** When the last failure happened (ms since the epoch). */
  lastErrorAt: number | undefined = undefined;
  /** When the last success happened (ms since the epoch). */
  lastSuccessAt: number | undefined = undefined;

  /** A plain-object copy of the counters. */
  snapshot(): SinkMetricsSnapshot {
    return {
      pending: this.pending,
      events: this.events,
      successes: this.successes,
      failures: this.failures,
      dropped: this.dropped,
      retries: this.retries,
      deadLettered: this.deadLettered,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      lastSuccessAt: this.lastSuccessAt,
    };
  }

  /**
   * Renders the counters in the Prometheus text exposition format (version 0.0.4): counters end
   * in `_total`, `pending` is a gauge, times are `_timestamp_seconds` gauges.
   * @param name - metric name prefix, e.g. `'eventsinks_webhook'`.
   * @param labels - optional labels added to every sample.
   * @throws TypeError if `name` or a label name is not a valid Prometheus name.
   */
  toPrometheus(name: string, labels: Record<string, string> = {}): string {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new TypeError(
        `Expected \`name\` to be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${describe(name)}`,
      );
    }
    const parts: string[] = [];
    for (const [key, value] of Object.entries(labels)) {
      if (!LABEL_PATTERN.test(key) || key.startsWith('__')) {
        throw new TypeError(`Expected a Prometheus label name, got ${describe(key)}`);
      }
      const escaped = String(value)
        .replace(/\\/g, '\\\\')
        .replace(/\n/g, '\\n')
        .replace(/"/g, '\\"');
      parts.push(`${key}="${escaped}"`);
    }
    const suffix = parts.length > 0 ? `{${parts.join(',')}}` : '';
    const lines: string[] = [];
    const metric = (metricName: string, type: string, help: string, value: number): void => {
      lines.push(`# HELP ${metricName} ${help}`, `# TYPE ${metricName} ${type}`);
      lines.push(`${metricName}${suffix} ${value}`);
    };
    metric(`${name}_pending`, 'gauge', 'Writes started and not yet settled.', this.pending);
    metric(`${name}_events_total`, 'counter', 'Writes started.', this.events);
    metric(`${name}_successes_total`, 'counter', 'Writes accepted.', this.successes);
    metric(`${name}_failures_total`, 'counter', 'Writes failed.', this.failures);
    metric(`${name}_dropped_total`, 'counter', 'Events dropped.', this.dropped);
    metric(`${name}_retries_total`, 'counter', 'Attempts made after a failure.', this.retries);
    metric(
      `${name}_dead_lettered_total`,
      'counter',
      'Events handed to a dead letter.',
      this.deadLettered,
    );
    if (this.lastSuccessAt !== undefined) {
      metric(
        `${name}_last_success_timestamp_seconds`,
        'gauge',
        'When the last write was accepted.',
        this.lastSuccessAt / 1000,
      );
    }
    if (this.lastErrorAt !== undefined) {
      metric(
        `${name}_last_failure_timestamp_seconds`,
        'gauge',
        'When the last write failed.',
        this.lastErrorAt / 1000,
      );
    }
    return `${lines.join('\n')}\n`;
  }
}
