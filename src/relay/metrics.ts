// The relay's Prometheus metrics (prom-client): counters end in _total, delivery latency
// (received → accepted by the destination) is a histogram, queue depth a gauge.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface DepthSource {
  name: string;
  pending(): number;
  deadLetters(): number;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly received: Counter<'source'>;
  readonly rejected: Counter<'source' | 'status'>;
  readonly delivered: Counter<'destination'>;
  readonly failures: Counter<'destination'>;
  readonly deadLettered: Counter<'destination'>;
  readonly latency: Histogram<'destination'>;

  constructor(destinations: () => readonly DepthSource[]) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'eventsinks_relay_' });
    this.received = new Counter({
      name: 'eventsinks_relay_received_events_total',
      help: 'Events accepted (committed to every matching destination queue), by source.',
      labelNames: ['source'],
      registers,
    });
    this.rejected = new Counter({
      name: 'eventsinks_relay_rejected_requests_total',
      help: 'Ingest requests refused, by source and HTTP status.',
      labelNames: ['source', 'status'],
      registers,
    });
    this.delivered = new Counter({
      name: 'eventsinks_relay_delivered_events_total',
      help: 'Events accepted by a destination.',
      labelNames: ['destination'],
      registers,
    });
    this.failures = new Counter({
      name: 'eventsinks_relay_delivery_failures_total',
      help: 'Failed delivery attempts (each retry counts).',
      labelNames: ['destination'],
      registers,
    });
    this.deadLettered = new Counter({
      name: 'eventsinks_relay_dead_letters_total',
      help: 'Events given up on and kept in the dead letter.',
      labelNames: ['destination'],
      registers,
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
