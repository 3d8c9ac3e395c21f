// The relay's Prometheus metrics (prom-client): counters end in _total, delivery latency
// (received → accepted by the destination) is a histogram, queue depth a gauge. A destination's
// counters are a view: each scrape reads them from the destination's SinkMetrics (the library's
// one metrics shape), so the relay keeps no second copy.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SinkMetrics } from 'eventsinks';

export interface DepthSource {
  name: string;
  /** The destination's counters (successes, failures, deadLettered), read at each scrape. */
  metrics: Pick<SinkMetrics, 'successes' | 'failures' | 'deadLettered'>;
  /** Events moved to the dead letter because `maxPending` was reached. */
  overflowed(): number;
  pending(): number;
  /** Requests (or batches) being sent. */
  inFlight(): number;
  /** `healthy`, `failing` or `disabled`. */
  state(): 'healthy' | 'failing' | 'disabled';
  deadLetters(): number;
  /** The destination's `maxPending`. */
  maxPending(): number;
}

/**
 * Why an ingest request was refused, the `reason` label of `…_rejected_requests_total`:
 * `full` is backpressure (a destination's `maxPending` reached, `whenFull: reject`).
 */
export type RejectReason =
  | 'method'
  | 'not_ready'
  | 'draining'
  | 'unauthorized'
  | 'too_large'
  | 'too_many_events'
  | 'invalid'
  | 'full'
  | 'store_failed';

export class RelayMetrics {
  readonly registry = new Registry();
  readonly received: Counter<'source'>;
  /** Ingest requests refused; `reason` says why (see {@link RejectReason}). */
  readonly rejected: Counter<'source' | 'status' | 'reason'>;
  // The four below are views of each destination's counters, set at every scrape (an `inc`
  // would be overwritten): count in the destination's `metrics`, not here.
  readonly delivered: Counter<'destination'>;
  readonly failures: Counter<'destination'>;
  readonly deadLettered: Counter<'destination'>;
  /** Events moved to a dead letter because their destination reached `maxPending`. */
  readonly overflowed: Counter<'destination'>;
  readonly latency: Histogram<'destination'>;
  /** Events acknowledged without being stored again: their `idField` id was stored already. */
  readonly duplicates: Counter<'source'>;
  /** Messages deleted from the log once past `retention`. */
  readonly purged: Counter;
  /** Times a destination was disabled (by `disableAfter` or an operator). */
  readonly disabled: Counter<'destination'>;

  constructor(destinations: () => readonly DepthSource[]) {
    const registers = [this.registry];
    // A counter whose value per destination is read from it when scraped.
    const view = (read: (d: DepthSource) => number) =>
      function (this: Counter<'destination'>): void {
        this.reset();
        // As before the view: no series for a destination until it has counted something.
        for (const d of destinations()) {
          const value = read(d);
          if (value > 0) this.inc({ destination: d.name }, value);
        }
      };
    collectDefaultMetrics({ register: this.registry, prefix: 'eventsinks_relay_' });
    this.received = new Counter({
      name: 'eventsinks_relay_received_events_total',
      help: 'Events accepted (committed to every matching destination queue), by source.',
      labelNames: ['source'],
      registers,
    });
    this.rejected = new Counter({
      name: 'eventsinks_relay_rejected_requests_total',
      help: 'Ingest requests refused, by source, HTTP status and reason (full: backpressure).',
      labelNames: ['source', 'status', 'reason'],
      registers,
    });
    this.delivered = new Counter({
      name: 'eventsinks_relay_delivered_events_total',
      help: 'Events accepted by a destination.',
      labelNames: ['destination'],
      registers,
      collect: view((d) => d.metrics.successes),
    });
    this.failures = new Counter({
      name: 'eventsinks_relay_delivery_failures_total',
      help: 'Failed delivery attempts (each retry counts).',
      labelNames: ['destination'],
      registers,
      collect: view((d) => d.metrics.failures),
    });
    this.deadLettered = new Counter({
      name: 'eventsinks_relay_dead_letters_total',
      help: 'Events given up on and kept in the dead letter.',
      labelNames: ['destination'],
      registers,
      collect: view((d) => d.metrics.deadLettered),
    });
    this.overflowed = new Counter({
      name: 'eventsinks_relay_overflow_events_total',
      help: 'Events moved to the dead letter (reason overflow) because maxPending was reached.',
      labelNames: ['destination'],
      registers,
      collect: view((d) => d.overflowed()),
    });
    this.latency = new Histogram({
      name: 'eventsinks_relay_delivery_latency_seconds',
      help: 'Time from receiving an event to its acceptance by a destination.',
      labelNames: ['destination'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    new Gauge({
      name: 'eventsinks_relay_queue_depth',
      help: 'Events stored for a destination and not yet delivered.',
      labelNames: ['destination'],
      registers,
      collect() {
        for (const d of destinations()) this.set({ destination: d.name }, d.pending());
      },
    });
    this.duplicates = new Counter({
      name: 'eventsinks_relay_duplicate_events_total',
      help: 'Events acknowledged but not stored again: their idField id was accepted before (within retention).',
      labelNames: ['source'],
      registers,
    });
    this.purged = new Counter({
      name: 'eventsinks_relay_purged_messages_total',
      help: 'Delivered messages deleted from the message log once past retention.',
      registers,
    });
    this.disabled = new Counter({
      name: 'eventsinks_relay_destination_disabled_total',
      help: 'Times a destination was disabled (disableAfter, or an operator).',
      labelNames: ['destination'],
      registers,
    });
    new Gauge({
      name: 'eventsinks_relay_in_flight',
      help: 'Requests (or batches) being sent to a destination.',
      labelNames: ['destination'],
      registers,
      collect() {
        for (const d of destinations()) this.set({ destination: d.name }, d.inFlight());
      },
    });
    new Gauge({
      name: 'eventsinks_relay_destination_state',
      help: 'A destination’s state: 1 for the state it is in (healthy, failing, disabled), 0 for the others.',
      labelNames: ['destination', 'state'],
      registers,
      collect() {
        for (const d of destinations()) {
          const current = d.state();
          for (const state of ['healthy', 'failing', 'disabled'] as const)
            this.set({ destination: d.name, state }, state === current ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'eventsinks_relay_queue_limit',
      help: 'A destination’s maxPending: the queue depth at which whenFull applies.',
      labelNames: ['destination'],
      registers,
      collect() {
        for (const d of destinations()) this.set({ destination: d.name }, d.maxPending());
      },
    });
    new Gauge({
      name: 'eventsinks_relay_dead_letter_depth',
      help: 'Events in a destination’s dead letter.',
      labelNames: ['destination'],
      registers,
      collect() {
        for (const d of destinations()) this.set({ destination: d.name }, d.deadLetters());
      },
    });
  }
}
