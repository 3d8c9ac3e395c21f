// Guide: batching, transforming and Web Streams (docs/guide/batching-and-streams.md).
// Run: node --import tsx examples/guide-batching-and-streams.ts
import assert from 'node:assert/strict';
import { BatchingSink, MapSink, Queue, pipeFrom, toWritableStream, type Sink } from 'eventsinks';

interface LogLine {
  seq: number;
  message: string;
}

/** A bulk endpoint: takes one request per batch, ~2 ms each, and records the batches. */
function bulkSink<T>(): Sink<T> & { requests: T[] } {
  return {
    requests: [],
    async write(body) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      this.requests.push(body);
    },
    close() {},
  };
}

// 1. BatchingSink groups events for a Sink<E[]>: flush at maxSize, or maxDelay ms after the
// first event of a batch, and flush the rest on close. MapSink wraps each batch in the
// envelope the endpoint expects ({ events: [...] }, as Docker's registry sends them).
{
  const endpoint = bulkSink<{ events: LogLine[] }>();
  const batches = new BatchingSink(new MapSink(endpoint, (events: LogLine[]) => ({ events })), {
    maxSize: 10,
    maxDelay: 20,
  });
  // A batch forms from writes in flight together. A writer that awaits each write would send
  // batches of one, so a Queue with maxInFlight = maxSize sits in front.
  const queue = new Queue(batches, { maxInFlight: 10 });
  // Written in one burst (an unbounded queue's write never returns a promise), so the queue
  // can keep 10 writes in flight and the BatchingSink sees full batches.
  for (let seq = 0; seq < 25; seq++) void queue.write({ seq, message: `line ${seq}` });
  await queue.close(); // flushes the queue, then the last partial batch, then closes
  const sizes = endpoint.requests.map((r) => r.events.length);
  assert.deepEqual(sizes, [10, 10, 5]);
  assert.deepEqual(
    endpoint.requests.flatMap((r) => r.events.map((e) => e.seq)),
    Array.from({ length: 25 }, (_, i) => i),
  );
  console.log('25 lines sent as', sizes.length, 'requests of', sizes.join(' + '));
}

// 2. A failed batch fails every write in it, and only those.
{
  let call = 0;
  const flaky: Sink<number[]> = {
    write: async (batch) => {
      call++;
      if (call === 1) throw new Error(`bulk insert of ${batch.length} failed`);
    },
    close() {},
  };
  const batches = new BatchingSink(flaky, { maxSize: 3, maxDelay: Infinity });
  const results = await Promise.allSettled([1, 2, 3, 4, 5, 6].map((n) => batches.write(n)));
  await batches.close();
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
  );
  console.log('first batch failed: writes 1-3 rejected, 4-6 resolved');
}

// 3. Web Streams: pipeFrom pipes a ReadableStream into any sink with real backpressure (each
// write is awaited before the next starts, and the source is not pulled while the sink is
// behind) and closes the sink at the end.
{
  const sink = bulkSink<string>();
  let pulled = 0;
  const readable = new ReadableStream<string>({
    pull(controller) {
      if (pulled === 5) controller.close();
      else controller.enqueue(`chunk ${pulled++}`);
    },
  });
  await pipeFrom(readable, sink);
  assert.deepEqual(sink.requests, ['chunk 0', 'chunk 1', 'chunk 2', 'chunk 3', 'chunk 4']);
  console.log('pipeFrom delivered', sink.requests.length, 'chunks in order');

  // toWritableStream turns a sink into a WritableStream for pipeTo, pipeThrough and friends.
  const upper = bulkSink<string>();
  await new ReadableStream<string>({
    start(controller) {
      for (const word of ['a', 'b', 'c']) controller.enqueue(word);
      controller.close();
    },
  })
    .pipeThrough(
      new TransformStream<string, string>({ transform: (w, c) => c.enqueue(w.toUpperCase()) }),
    )
    .pipeTo(toWritableStream(upper));
  assert.deepEqual(upper.requests, ['A', 'B', 'C']);
  console.log('pipeThrough → toWritableStream:', upper.requests.join(''));
}
