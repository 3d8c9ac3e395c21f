import { expectSink } from './internal/validate.js';
import type { Sink } from './Sink.js';

/**
 * Options for {@link toWritableStream}.
 *
 * @example
 * ```ts
 * toWritableStream(queue, { highWaterMark: 64 });
 * ```
 */
export interface WritableStreamOptions {
  /** Chunks the stream buffers before it applies backpressure (default 1). */
  highWaterMark?: number;
}

/**
 * Wraps a sink as a WHATWG `WritableStream`: each chunk is written to the sink, and the stream
 * waits for each write before taking the next, so a slow sink applies real backpressure to
 * `ReadableStream.pipeTo`. Closing the stream closes the sink; aborting it closes the sink too.
 *
 * @example
 * ```ts
 * await readable.pipeTo(toWritableStream(new Queue(sink, { capacity: 100 })));
 * ```
 * @throws TypeError if `sink` is not a sink.
 */
export function toWritableStream<E>(
  sink: Sink<E>,
  options: WritableStreamOptions = {},
): WritableStream<E> {
  expectSink('sink', sink);
  return new WritableStream<E>(
    {
      write: (chunk) => sink.write(chunk),
      close: () => sink.close(),
      abort: () => sink.close(),
    },
    new CountQueuingStrategy({ highWaterMark: options.highWaterMark ?? 1 }),
  );
}

/**
 * Options for {@link pipeFrom}.
 *
 * @example
 * ```ts
 * await pipeFrom(readable, sink, { signal: AbortSignal.timeout(10_000) });
 * ```
 */
export interface PipeFromOptions {
  /** Stops piping when it aborts (the promise then rejects with the abort reason). */
  signal?: AbortSignal;
  /** Leave the sink open when the readable ends (default false: close it). */
  preventClose?: boolean;
}

/**
 * Pipes every chunk of `readable` into `sink` with backpressure; resolves when the readable is
 * exhausted and the sink closed (unless `preventClose`).
 *
 * @example
 * ```ts
 * const response = await fetch(url);
 * await pipeFrom(response.body!.pipeThrough(new TextDecoderStream()), logSink);
 * ```
 * @throws TypeError if `sink` is not a sink; rejects with the first write error.
 */
export function pipeFrom<E>(
  readable: ReadableStream<E>,
  sink: Sink<E>,
  options: PipeFromOptions = {},
): Promise<void> {
  const pipeOptions: StreamPipeOptions = {};
  if (options.signal !== undefined) pipeOptions.signal = options.signal;
  if (options.preventClose !== undefined) pipeOptions.preventClose = options.preventClose;
  return readable.pipeTo(toWritableStream(sink), pipeOptions);
}
