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
  readonly closed: Promise<undefined>;
  readonly desiredSize: number | null;
  readonly ready: Promise<undefined>;
  abort(reason?: unknown): Promise<void>;
  close(): Promise<void>;
  releaseLock(): void;
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
  readonly locked: boolean;
  abort(reason?: unknown): Promise<void>;
  close(): Promise<void>;
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
  preventAbort?: boolean;
  preventCancel?: boolean;
  preventClose?: boolean;
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
