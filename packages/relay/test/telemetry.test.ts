// OpenTelemetry end to end: the relay as a child process exporting over OTLP/HTTP to a local
// receiver of ours, delivering to a webhook receiver. A request's traceparent reaches the
// receiver in the same trace, and the collector gets that trace's ingest and deliver spans and
// the delivery metrics (flushed when the relay stops).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Receiver, closeAll, post, startRelay, tempDir, waitFor, writeConfig } from './harness.js';

after(closeAll);

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

/** A minimal OTLP/HTTP collector: keeps the JSON bodies posted to /v1/traces and /v1/metrics. */
class Collector {
  readonly traces: unknown[] = [];
  readonly metrics: unknown[] = [];
  readonly requests: { path: string; headers: IncomingMessage['headers'] }[] = [];
  readonly #server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      this.requests.push({ path: req.url ?? '', headers: req.headers });
      // The exporter sends uncompressed JSON unless OTEL_EXPORTER_OTLP_COMPRESSION says otherwise.
      if (req.headers['content-encoding'] !== undefined) {
        res.writeHead(415).end('expected uncompressed OTLP/JSON');
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        res.writeHead(400).end('expected OTLP/JSON');
        return;
      }
      if (req.url === '/v1/traces') this.traces.push(json);
      else if (req.url === '/v1/metrics') this.metrics.push(json);
      else {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  spans(): OtlpSpan[] {
    return (this.traces as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }[])
      .flatMap((t) => t.resourceSpans)
      .flatMap((r) => r.scopeSpans)
      .flatMap((s) => s.spans);
  }

  metricNames(): string[] {
    return (
      this.metrics as { resourceMetrics: { scopeMetrics: { metrics: { name: string }[] }[] }[] }[]
    )
      .flatMap((m) => m.resourceMetrics)
      .flatMap((r) => r.scopeMetrics)
      .flatMap((s) => s.metrics)
      .map((m) => m.name);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('OpenTelemetry end to end', () => {
  it('carries a traceparent to the receiver and exports the ingest and deliver spans over OTLP', async () => {
    const collector = new Collector();
    const endpoint = await collector.start();
    const receiver = await new Receiver().start();
    const dir = tempDir('h6-otel-');
    const file = writeConfig(
      dir,
      `
server: { listen: 127.0.0.1:0 }
telemetry:
  otlp:
    endpoint: ${endpoint}
    headers: { x-api-key: k123 }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
`,
    );
    try {
      const relay = await startRelay(file, { cwd: dir });
      const response = await post(relay.url, JSON.stringify({ n: 1 }), {
        traceparent: `00-${TRACE}-${PARENT}-01`,
      });
      assert.equal(response.status, 202);
      await waitFor(() => receiver.received.length === 1, 30_000, 'the delivery');
      const header = receiver.log[0]!.headers.traceparent;
      assert.ok(typeof header === 'string', 'the receiver got a traceparent');
      const [, traceId, spanId, flags] = header.split('-');
      assert.equal(traceId, TRACE, 'in the same trace');
      assert.notEqual(spanId, PARENT, "the attempt's span is the receiver's parent");
      assert.equal(flags, '01');
      const ids = (response.json as { ids: string[] }).ids;
      const detail = (await (await fetch(`${relay.url}/admin/messages/${ids[0]}`)).json()) as {
        traceparent?: string;
      };
      assert.equal(detail.traceparent, `00-${TRACE}-${PARENT}-01`, 'the admin API shows it');

      relay.child.kill('SIGTERM');
      const exit = await relay.exited;
      assert.equal(exit.code, 0, relay.stderr());

      const spans = collector.spans().filter((s) => s.traceId === TRACE);
      const ingest = spans.find((s) => s.name === 'eventsinks.ingest');
      const deliver = spans.find((s) => s.name === 'eventsinks.deliver');
      assert.ok(ingest, `an ingest span of the trace: ${JSON.stringify(collector.spans())}`);
      assert.ok(deliver, 'a deliver span of the trace');
      assert.equal(ingest.parentSpanId, PARENT);
      assert.equal(deliver.parentSpanId, PARENT);
      assert.equal(deliver.spanId, spanId, 'the header names the deliver span');
      assert.equal(deliver.kind, 3, 'SPAN_KIND_CLIENT');
      const destination = deliver.attributes?.find((a) => a.key === 'eventsinks.destination');
      assert.deepEqual(destination?.value, { stringValue: 'hooks' });
      assert.ok(
        collector.metricNames().includes('eventsinks.deliveries'),
        `the deliveries counter is exported: ${collector.metricNames().join(', ')}`,
      );
      assert.ok(collector.metricNames().includes('eventsinks.deliver.duration'));
      assert.ok(
        collector.requests.every((r) => r.headers['x-api-key'] === 'k123'),
        'the configured headers go with every export',
      );
    } finally {
      await collector.close();
    }
  });
});
