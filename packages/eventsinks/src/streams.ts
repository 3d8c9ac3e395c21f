import { expectSink } from './internal/validate.js';
import type { Sink } from './Sink.js';

// The WHATWG stream types are spelled out here instead of naming the globals: a Node project
// without the DOM lib (and with an @types/node that predates the global `WritableStream`) has
// no such globals, and the declarations must compile there too. They match lib.dom's shapes,
// so the DOM's, Node's (`node:stream/web`), Deno's and Bun's streams are assignable both ways
// (`closed`/`ready` are `Promise<undefined>` as in Node's types, which lib.dom's `Promise<void>`
// accepts; the other way round would not be).

/**
 * The writer of a {@link WebWritableStream}: the same shape as the WHATWG
 * `WritableStreamDefaultWriter`, declared here so that no DOM lib is needed.
 *
 * @example
 * ```ts
 * const writer = toWritableStream(sink).getWriter();
 * await writer.write('hello');
 * ```
 */
export interface WebWritableStreamWriter<W> {
  /** Settles when the stream is closed (rejects when it errors). */
  readonly closed: Promise<undefined>;
  /** How much more the stream takes before it applies backpressure; null once it errored. */
  readonly desiredSize: number | null;
  /** Settles when the stream takes more (backpressure lifted). */
  readonly ready: Promise<undefined>;
  /** Aborts the stream with `reason`: what is queued is dropped. */
  abort(reason?: unknown): Promise<void>;
  /** Closes the stream once what is queued is written. */
  close(): Promise<void>;
  /** Releases the writer's lock on the stream. */
  releaseLock(): void;
  /** Writes one chunk; resolves once the sink accepted it. */
  write(chunk?: W): Promise<void>;
}

/**
 * A WHATWG `WritableStream`, structurally: what {@link toWritableStream} returns. Assignable to
 * the global `WritableStream<W>` wherever one exists, so it can be passed to `pipeTo`.
 *
 * @example
 * ```ts
 * const writable: WritableStream<string> = toWritableStream(sink);
 * ```
 */
export interface WebWritableStream<W> {
  /** True while a writer holds the stream. */
  readonly locked: boolean;
  /** Aborts the stream with `reason`: what is queued is dropped. */
  abort(reason?: unknown): Promise<void>;
  /** Closes the stream once what is queued is written. */
  close(): Promise<void>;
  /** A writer that locks the stream until it is released. */
  getWriter(): WebWritableStreamWriter<W>;
}

/**
 * The options of `ReadableStream.pipeTo`, structurally (the WHATWG `StreamPipeOptions`).
 *
 * @example
 * ```ts
 * const options: WebStreamPipeOptions = { preventClose: true };
 * ```
 */
export interface WebStreamPipeOptions {
  /** Do not abort the destination when the source errors. */
  preventAbort?: boolean;
  /** Do not cancel the source when the destination errors. */
  preventCancel?: boolean;
  /** Do not close the destination when the source ends. */
  preventClose?: boolean;
  /** Stops the pipe when it aborts. */
  signal?: AbortSignal;
}

/**
 * The part of a WHATWG `ReadableStream` that {@link pipeFrom} uses: any global
 * `ReadableStream<R>` (DOM, `node:stream/web`, Deno, Bun) is one.
 *
 * @example
 * ```ts
 * const readable: WebReadableStream<string> = new ReadableStream<string>();
 * ```
 */
export interface WebReadableStream<R> {
  /** Pipes every chunk into `destination`; resolves when the source ended and it is closed. */
  pipeTo(destination: WebWritableStream<R>, options?: WebStreamPipeOptions): Promise<void>;
}

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
): WebWritableStream<E> {
  expectSink('sink', sink);
  const stream = new WritableStream<E>(
    {
      write: (chunk) => sink.write(chunk),
      close: () => sink.close(),
      abort: () => sink.close(),
    },
    new CountQueuingStrategy({ highWaterMark: options.highWaterMark ?? 1 }),
  );
  // lib.dom says the writer's `closed`/`ready` are Promise<void>; they resolve with undefined.
  return stream as unknown as WebWritableStream<E>;
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
  readable: WebReadableStream<E>,
  sink: Sink<E>,
  options: PipeFromOptions = {},
): Promise<void> {
  const pipeOptions: WebStreamPipeOptions = {};
  if (options.signal !== undefined) pipeOptions.signal = options.signal;
  if (options.preventClose !== undefined) pipeOptions.preventClose = options.preventClose;
  return readable.pipeTo(toWritableStream(sink), pipeOptions);
}
