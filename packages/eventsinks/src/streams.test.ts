import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Queue } from './Queue.js';
import { pipeFrom, toWritableStream } from './streams.js';
import { RecordingSink, range } from './test-utils.js';

function readableOf(values: number[], pulled: number[]): ReadableStream<number> {
  let i = 0;
  return new ReadableStream<number>(
    {
      pull(controller) {
        if (i < values.length) {
          pulled.push(values[i]!);
          controller.enqueue(values[i++]);
        } else controller.close();
      },
    },
    { highWaterMark: 0 },
  );
}

describe('Web Streams interop', () => {
  it('pipeFrom delivers every chunk in order and closes the sink', async () => {
    const sink = new RecordingSink<number>();
    await pipeFrom(readableOf(range(50), []), sink);
    assert.deepEqual(sink.events, range(50));
    assert.equal(sink.closed, true);
  });

  it('applies backpressure: a blocked bounded queue stops the pull', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = {
      events: [] as number[],
      async write(e: number) {
        await gate;
        this.events.push(e);
      },
      close() {},
    };
    const queue = new Queue(slow, { capacity: 2 });
    const pulled: number[] = [];
    const piping = pipeFrom(readableOf(range(100), pulled), queue);
    await new Promise((r) => setTimeout(r, 30));
    // One in flight at the sink, two in the queue, one blocked write, a few in stream buffers.
    assert.ok(pulled.length < 10, `pulled ${pulled.length} chunks despite backpressure`);
    release();
    await piping;
    assert.deepEqual(slow.events, range(100));
  });

  it('toWritableStream surfaces write errors to the writer', async () => {
    const stream = toWritableStream(new RecordingSink<number>({ failFirst: 1 }));
    const writer = stream.getWriter();
    await assert.rejects(writer.write(1), /planned failure/);
  });
});
