// telemetry.ts: traceparent parsing, the ingest and deliver spans as the SDK's in-memory
// exporter records them (parents, links, attributes, status), the delivery metrics, and a relay
// in this process carrying a request's trace to its webhook receiver.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, metrics, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace';
import { pino } from 'pino';
import { parseConfig } from './config.js';
import { Relay } from './Relay.js';
import {
  TelemetryUnavailableError,
  formatTraceparent,
  parseTraceparent,
  startAttempt,
  startIngest,
  startTelemetry,
  traceparentOf,
} from './telemetry.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE}-${PARENT}-01`;
const OTHER = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
const silent = pino({ level: 'silent' });

describe('parseTraceparent', () => {
  it('reads a valid version-00 traceparent', () => {
    assert.deepEqual(parseTraceparent(TRACEPARENT), {
      traceId: TRACE,
      spanId: PARENT,
      traceFlags: 1,
      isRemote: true,
    });
    assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.traceFlags, 0);
  });

  it('refuses malformed values, version ff, all-zero ids and extra fields on version 00', () => {
    for (const bad of [
      undefined,
      42,
      '',
      'nonsense',
      TRACEPARENT.toUpperCase(),
      `ff-${TRACE}-${PARENT}-01`,
      `00-${'0'.repeat(32)}-${PARENT}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE}-${PARENT}-01-extra`,
      `00-${TRACE.slice(1)}-${PARENT}-01`,
      `00_${TRACE}_${PARENT}_01`,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, `${String(bad)} is not a traceparent`);
    }
  });

  it('reads a later version as 00, ignoring its extra fields', () => {
    const context = parseTraceparent(`01-${TRACE}-${PARENT}-03-whatever`);
    assert.equal(context?.traceId, TRACE);
    assert.equal(context?.traceFlags, 1, 'only the sampled flag is kept');
    assert.equal(formatTraceparent(context), TRACEPARENT);
  });

  it('takes an event field before the fallback, and reports an invalid one', () => {
    const invalid: unknown[] = [];
    const note = (value: unknown) => invalid.push(value);
    assert.equal(traceparentOf({ t: { p: OTHER } }, 't.p', TRACEPARENT, note), OTHER);
    assert.equal(traceparentOf({}, 't.p', TRACEPARENT, note), TRACEPARENT);
    assert.equal(traceparentOf({ t: { p: 'x' } }, 't.p', TRACEPARENT, note), TRACEPARENT);
    assert.equal(traceparentOf({ t: { p: OTHER } }, undefined, undefined, note), undefined);
    assert.deepEqual(invalid, ['x']);
  });
});

describe('telemetry without an SDK (the api is a no-op)', () => {
  it('sends the stored traceparent unchanged, and none when there is none', () => {
    const attempt = startAttempt('hooks', [{ id: 'a', traceparent: TRACEPARENT }], 1, undefined);
    assert.equal(attempt.traceparent, TRACEPARENT);
    attempt.end({ ok: true, retryable: false, status: 200 }, 'delivered');
    assert.equal(startAttempt('hooks', [{ id: 'b' }], 1, undefined).traceparent, undefined);
  });

  it("stores the request's traceparent, and none without one", () => {
    assert.equal(startIngest('http', parseTraceparent(TRACEPARENT)).traceparent, TRACEPARENT);
    assert.equal(startIngest('http', undefined).traceparent, undefined);
  });

  it('does nothing without telemetry.otlp', async () => {
    assert.equal(await startTelemetry({}, silent), undefined);
  });

  it('names the packages in its error when one is missing', () => {
    const error = new TelemetryUnavailableError('@opentelemetry/sdk-trace', new Error('nope'));
    assert.equal(error.code, 'ERR_TELEMETRY_UNAVAILABLE');
    assert.match(error.message, /@opentelemetry\/sdk-trace.*npm install/);
  });
});

/** Collects on demand: the metrics recorded so far, cumulative. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

describe('telemetry with the SDK (in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter();
  const reader = new TestReader();
  const provider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  before(() => {
    assert.ok(trace.setGlobalTracerProvider(provider), 'no other SDK in this process');
    assert.ok(metrics.setGlobalMeterProvider(meterProvider));
  });
  after(async () => {
    trace.disable();
    metrics.disable();
    await provider.shutdown();
    await meterProvider.shutdown();
  });
  beforeEach(() => exporter.reset());

  const spans = (name: string): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((s) => s.name === name);

  it("makes the ingest span a child of the request's traceparent", () => {
    const ingest = startIngest('http', parseTraceparent(TRACEPARENT));
    assert.equal(ingest.traceparent, TRACEPARENT, 'the stored value is the one received');
    ingest.end('accepted', 3, 202);
    ingest.end('twice', 3, 500); // ignored
    const [span, ...rest] = spans('eventsinks.ingest');
    assert.equal(rest.length, 0);
    assert.equal(span!.kind, SpanKind.SERVER);
    assert.equal(span!.spanContext().traceId, TRACE);
    assert.equal(span!.parentSpanContext?.spanId, PARENT);
    assert.deepEqual(span!.attributes, {
      'eventsinks.source': 'http',
      'eventsinks.events': 3,
      'eventsinks.outcome': 'accepted',
      'http.response.status_code': 202,
    });
    assert.equal(span!.status.code, SpanStatusCode.UNSET);
  });

  it('starts a trace at ingest when the request has none, and stores its span as the parent', () => {
    const ingest = startIngest('redis', undefined);
    ingest.end('store_failed', 1, undefined, new Error('disk full'));
    const [span] = spans('eventsinks.ingest');
    assert.equal(span!.kind, SpanKind.CONSUMER);
    assert.equal(span!.parentSpanContext, undefined);
    assert.equal(ingest.traceparent, formatTraceparent(span!.spanContext()));
    assert.equal(span!.status.code, SpanStatusCode.ERROR);
    assert.equal(span!.status.message, 'disk full');
  });

  it("sends the attempt's own span as the parent, in the stored trace", () => {
    const attempt = startAttempt(
      'hooks',
      [{ id: 'evt_1', traceparent: TRACEPARENT }],
      2,
      undefined,
    );
    attempt.end(
      { ok: false, retryable: true, status: 503, error: '503 Service Unavailable' },
      'retried',
    );
    const [span] = spans('eventsinks.deliver');
    assert.equal(span!.kind, SpanKind.CLIENT);
    assert.equal(span!.spanContext().traceId, TRACE);
    assert.equal(span!.parentSpanContext?.spanId, PARENT);
    assert.notEqual(span!.spanContext().spanId, PARENT);
    assert.equal(attempt.traceparent, `00-${TRACE}-${span!.spanContext().spanId}-01`);
    assert.deepEqual(span!.attributes, {
      'eventsinks.destination': 'hooks',
      'eventsinks.attempt': 2,
      'eventsinks.messages': 1,
      'eventsinks.message_ids': ['evt_1'],
      'eventsinks.outcome': 'retried',
      'http.response.status_code': 503,
    });
    assert.equal(span!.status.code, SpanStatusCode.ERROR);
    assert.equal(span!.status.message, '503 Service Unavailable');
  });

  it("parents a batch's span to its first trace and links the others", () => {
    const attempt = startAttempt(
      'hooks',
      [{ id: 'a' }, { id: 'b', traceparent: TRACEPARENT }, { id: 'c', traceparent: OTHER }],
      1,
      'batch_1',
    );
    attempt.end({ ok: true, retryable: false, status: 200 }, 'delivered');
    const [span] = spans('eventsinks.deliver');
    assert.equal(span!.parentSpanContext?.spanId, PARENT);
    assert.deepEqual(
      span!.links.map((l) => l.context.traceId),
      ['1'.repeat(32)],
    );
    assert.equal(span!.attributes['eventsinks.batch_id'], 'batch_1');
    assert.equal(span!.attributes['eventsinks.messages'], 3);
    assert.equal(span!.status.code, SpanStatusCode.UNSET);
  });

  it('counts deliveries by destination and outcome, and times every attempt', async () => {
    startAttempt('metered', [{ id: 'a' }, { id: 'b' }], 1, 'batch_2').end(
      { ok: true, retryable: false },
      'delivered',
    );
    startAttempt('metered', [{ id: 'c' }], 3, undefined).end(
      { ok: false, retryable: false, status: 400 },
      'dead',
    );
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const deliveries = all.find((m) => m.descriptor.name === 'eventsinks.deliveries');
    assert.ok(deliveries, 'the deliveries counter is exported');
    const points = deliveries.dataPoints.filter(
      (p) => p.attributes['eventsinks.destination'] === 'metered',
    );
    assert.deepEqual(Object.fromEntries(points.map((p) => [p.attributes.outcome, p.value])), {
      delivered: 2,
      dead: 1,
    });
    const duration = all.find((m) => m.descriptor.name === 'eventsinks.deliver.duration');
    assert.equal(duration?.dataPointType, DataPointType.HISTOGRAM);
    const timed = duration.dataPoints.filter(
      (p) => p.attributes['eventsinks.destination'] === 'metered',
    );
    assert.equal(
      timed.reduce((n, p) => n + p.value.count, 0),
      2,
      'one sample per attempt',
    );
  });

  describe('a relay in this process', () => {
    const seen: IncomingHttpHeaders[] = [];
    const receiver = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    let relay: Relay;
    const logs: { msg: string; traceparent?: string }[] = [];
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => logs.push(JSON.parse(line) as (typeof logs)[number]) },
    );
    before(async () => {
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      const { port } = receiver.address() as AddressInfo;
      const dir = mkdtempSync(join(tmpdir(), 'h6-telemetry-'));
      relay = new Relay(
        parseConfig(
          `
dataDir: ${dir}
server: { listen: 127.0.0.1:0 }
telemetry: { traceparentField: meta.traceparent }
destinations:
  - name: hooks
    type: webhook
    url: http://127.0.0.1:${port}/hook
    headers: { traceparent: configured-one-is-replaced }
`,
          {},
        ),
        { logger },
      );
      await relay.start();
    });
    after(async () => {
      await relay.stop(5_000);
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    });

    async function post(body: unknown, headers: Record<string, string>): Promise<string[]> {
      const response = await fetch(`http://127.0.0.1:${relay.address!.port}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 202);
      return ((await response.json()) as { ids: string[] }).ids;
    }

    async function delivered(n: number): Promise<void> {
      const deadline = Date.now() + 30_000;
      while (seen.length < n || spans('eventsinks.deliver').length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} deliveries`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    it('carries the header traceparent to the receiver, through ingest and deliver spans', async () => {
      seen.length = 0;
      const [id] = await post({ n: 1 }, { traceparent: TRACEPARENT });
      await delivered(1);
      const sent = parseTraceparent(seen[0]!.traceparent);
      assert.equal(sent?.traceId, TRACE, 'the receiver is in the same trace');
      const [deliver] = spans('eventsinks.deliver');
      assert.equal(sent?.spanId, deliver!.spanContext().spanId, 'its parent is the attempt');
      assert.equal(deliver!.parentSpanContext?.spanId, PARENT);
      assert.deepEqual(deliver!.attributes['eventsinks.message_ids'], [id]);
      const [ingest] = spans('eventsinks.ingest');
      assert.equal(ingest!.parentSpanContext?.spanId, PARENT);
      assert.equal(ingest!.attributes['eventsinks.outcome'], 'accepted');
      assert.equal((await relay.store!.getMessage(id!))?.traceparent, TRACEPARENT);
    });

    it("prefers the event's traceparentField to the header; ignores an invalid header", async () => {
      seen.length = 0;
      const [id] = await post({ meta: { traceparent: OTHER } }, { traceparent: TRACEPARENT });
      await delivered(1);
      assert.equal(parseTraceparent(seen[0]!.traceparent)?.traceId, '1'.repeat(32));
      assert.equal((await relay.store!.getMessage(id!))?.traceparent, OTHER);

      exporter.reset();
      seen.length = 0;
      const [plain] = await post({ n: 2 }, { traceparent: 'not-a-traceparent' });
      assert.ok(
        logs.some(
          (l) =>
            l.msg === 'ignoring an invalid traceparent header' &&
            l.traceparent === 'not-a-traceparent',
        ),
        'a debug line says why it was ignored',
      );
      await delivered(1);
      const [ingest] = spans('eventsinks.ingest');
      assert.equal(ingest!.parentSpanContext, undefined, 'a new trace starts at the relay');
      const stored = (await relay.store!.getMessage(plain!))?.traceparent;
      assert.equal(stored, formatTraceparent(ingest!.spanContext()));
      assert.equal(parseTraceparent(seen[0]!.traceparent)?.traceId, ingest!.spanContext().traceId);
    });
  });
});
