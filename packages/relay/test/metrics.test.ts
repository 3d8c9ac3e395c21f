// The relay's Prometheus series are a view of each destination's SinkMetrics: read at every
// scrape, names unchanged, no series for a destination until it has counted something.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SinkMetrics } from 'eventsinks';
import { RelayMetrics, type DepthSource } from '../src/metrics.js';

describe('relay metrics', () => {
  it('destination counters are read from its SinkMetrics when scraped', async () => {
    const metrics = new SinkMetrics();
    let overflowed = 0;
    let inFlight = 0;
    let state: 'healthy' | 'failing' | 'disabled' = 'healthy';
    const source: DepthSource = {
      name: 'hook',
      metrics,
      overflowed: () => overflowed,
      pending: () => 0,
      inFlight: () => inFlight,
      state: () => state,
      deadLetters: () => 0,
      maxPending: () => 100,
    };
    const relay = new RelayMetrics(() => [source]);
    const before = await relay.registry.metrics();
    assert.doesNotMatch(before, /^eventsinks_relay_delivered_events_total\{/m);
    assert.doesNotMatch(before, /^eventsinks_relay_dead_letters_total\{/m);

    metrics.successes = 7;
    metrics.failures = 3;
    metrics.deadLettered = 2;
    overflowed = 1;
    inFlight = 5;
    state = 'disabled';
    const after = await relay.registry.metrics();
    assert.match(after, /^eventsinks_relay_delivered_events_total\{destination="hook"\} 7$/m);
    assert.match(after, /^eventsinks_relay_delivery_failures_total\{destination="hook"\} 3$/m);
    assert.match(after, /^eventsinks_relay_dead_letters_total\{destination="hook"\} 2$/m);
    assert.match(after, /^eventsinks_relay_overflow_events_total\{destination="hook"\} 1$/m);
    assert.match(after, /^eventsinks_relay_in_flight\{destination="hook"\} 5$/m);
    assert.match(
      after,
      /^eventsinks_relay_destination_state\{destination="hook",state="disabled"\} 1$/m,
    );
    assert.match(
      after,
      /^eventsinks_relay_destination_state\{destination="hook",state="healthy"\} 0$/m,
    );
    assert.match(after, /^# TYPE eventsinks_relay_delivered_events_total counter$/m);

    // A second scrape reports the current values, not a sum of scrapes.
    metrics.successes = 8;
    const again = await relay.registry.metrics();
    assert.match(again, /^eventsinks_relay_delivered_events_total\{destination="hook"\} 8$/m);
  });
});
