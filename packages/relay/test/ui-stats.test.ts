// The dashboard's numbers over the last minutes (packages/relay/ui/stats.ts), in Node: parsing
// the relay's /metrics text, the window's increases across restarts, and the quantiles.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StatsWindow, parseMetrics, quantile } from '../ui/stats.js';

const BOUNDS = ['0.01', '0.1', '1', '+Inf'];

function metrics(d: Record<string, { delivered?: number; failed?: number; le?: number[] }>) {
  const lines = ['# HELP eventsinks_relay_delivered_events_total x', 'process_cpu_seconds_total 3'];
  for (const [name, v] of Object.entries(d)) {
    if (v.delivered !== undefined)
      lines.push(`eventsinks_relay_delivered_events_total{destination="${name}"} ${v.delivered}`);
    if (v.failed !== undefined)
      lines.push(`eventsinks_relay_delivery_failures_total{destination="${name}"} ${v.failed}`);
    v.le?.forEach((count, i) =>
      lines.push(
        `eventsinks_relay_delivery_latency_seconds_bucket{le="${BOUNDS[i]}",destination="${name}"} ${count}`,
      ),
    );
  }
  return lines.join('\n');
}

describe('parseMetrics', () => {
  it('reads the delivery counters and latency buckets by destination, in any label order', () => {
    const parsed = parseMetrics(
      [
        'eventsinks_relay_delivered_events_total{destination="billing"} 7',
        'eventsinks_relay_delivery_failures_total{destination="billing"} 2',
        'eventsinks_relay_delivery_latency_seconds_bucket{destination="billing",le="0.5"} 4',
        'eventsinks_relay_delivery_latency_seconds_bucket{le="+Inf",destination="billing"} 7',
        'eventsinks_relay_delivered_events_total{destination="with \\"quote\\""} 1',
        'eventsinks_relay_received_events_total{source="http"} 99',
        'eventsinks_relay_delivered_events_total 5',
      ].join('\n'),
    );
    assert.deepEqual([...parsed.keys()], ['billing', 'with "quote"']);
    const billing = parsed.get('billing')!;
    assert.equal(billing.delivered, 7);
    assert.equal(billing.failed, 2);
    assert.deepEqual(
      [...billing.buckets],
      [
        [0.5, 4],
        [Infinity, 7],
      ],
    );
  });
});

describe('quantile', () => {
  it('interpolates inside the bucket, as histogram_quantile does', () => {
    const buckets = new Map([
      [0.1, 50],
      [1, 100],
      [Infinity, 100],
    ]);
    assert.equal(quantile(0.5, buckets), 0.1);
    assert.ok(Math.abs(quantile(0.75, buckets)! - 0.55) < 1e-9);
    assert.equal(quantile(0.25, buckets), 0.05);
  });

  it('is the highest finite bound in the +Inf bucket, and undefined when empty', () => {
    assert.equal(
      quantile(
        0.99,
        new Map([
          [1, 1],
          [Infinity, 10],
        ]),
      ),
      1,
    );
    assert.equal(quantile(0.5, new Map([[Infinity, 0]])), undefined);
    assert.equal(quantile(0.5, new Map()), undefined);
  });
});

describe('StatsWindow', () => {
  it('counts the increase over the window, and a restart as a fresh start', () => {
    const stats = new StatsWindow(60_000);
    stats.add(0, parseMetrics(metrics({ a: { delivered: 100, failed: 10, le: [0, 0, 0, 0] } })));
    stats.add(
      2000,
      parseMetrics(metrics({ a: { delivered: 130, failed: 10, le: [10, 30, 30, 30] } })),
    );
    // The relay restarted: counters start again at 0.
    stats.add(
      4000,
      parseMetrics(metrics({ a: { delivered: 10, failed: 5, le: [0, 10, 10, 10] } })),
    );
    const summary = stats.summary('a');
    assert.equal(summary.delivered, 40);
    assert.equal(summary.failed, 5);
    assert.equal(summary.successRate, 40 / 45);
    assert.equal(summary.coveredMs, 4000);
    // 10 of 40 under 10 ms, all 40 under 100 ms: the median is in the second bucket.
    assert.ok(summary.p50! > 0.01 && summary.p50! <= 0.1, String(summary.p50));
    assert.ok(summary.p99! > summary.p50!);
  });

  it('drops samples that left the window, keeping one as the baseline', () => {
    const stats = new StatsWindow(10_000);
    for (let t = 0; t <= 30_000; t += 2000) {
      stats.add(t, parseMetrics(metrics({ a: { delivered: t / 1000 } })));
    }
    // 20 000 is the baseline; 22 000 … 30 000 are in the window.
    assert.equal(stats.size, 6);
    assert.equal(stats.summary('a').delivered, 10);
    assert.equal(stats.summary('a').coveredMs, 10_000);
  });

  it('adds destinations up, and gives per-second rates per interval for the chart', () => {
    const stats = new StatsWindow();
    stats.add(1000, parseMetrics(metrics({ a: { delivered: 0 }, b: { failed: 0 } })));
    stats.add(3000, parseMetrics(metrics({ a: { delivered: 4 }, b: { failed: 2 } })));
    stats.add(5000, parseMetrics(metrics({ a: { delivered: 4 }, b: { failed: 8 } })));
    assert.deepEqual(stats.series(), { at: [3, 5], delivered: [2, 0], failed: [1, 3] });
    assert.deepEqual(stats.series('b').failed, [1, 3]);
    const all = stats.summary();
    assert.equal(all.delivered, 4);
    assert.equal(all.failed, 8);
    // A destination that never delivered: nothing to say about its rate or latency.
    const none = stats.summary('c');
    assert.equal(none.successRate, undefined);
    assert.equal(none.p50, undefined);
  });
});
