// Helpers shared by the tests; not part of the package (excluded from the build).
import { createServer } from 'node:net';
import type { Sink } from './Sink.js';
import { SinkClosedError } from './errors/SinkClosedError.js';

/** go-events' testSink: records events, fails after close, optionally async with a delay. */
export class RecordingSink<E> implements Sink<E> {
  readonly events: E[] = [];
  closed = false;
  closeCalls = 0;
  constructor(
    private readonly options: {
      delay?: number | (() => number);
      failRate?: number;
      failFirst?: number;
      async?: boolean;
    } = {},
  ) {}
  write(event: E): void | Promise<void> {
    if (this.closed) throw new SinkClosedError('RecordingSink closed');
    if (this.options.failFirst !== undefined && this.options.failFirst > 0) {
      this.options.failFirst--;
      throw new Error(`planned failure for ${String(event)}`);
    }
    if (this.options.failRate !== undefined && Math.random() < this.options.failRate) {
      if (this.options.async)
        return Promise.reject(new Error(`flaky failure for ${String(event)}`));
      throw new Error(`flaky failure for ${String(event)}`);
    }
    const { delay } = this.options;
    if (delay !== undefined) {
      const ms = typeof delay === 'function' ? delay() : delay;
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          this.events.push(event);
          resolve();
        }, ms),
      );
    }
    if (this.options.async) {
      return Promise.resolve().then(() => {
        this.events.push(event);
      });
    }
    this.events.push(event);
  }
  close(): void {
    this.closeCalls++;
    this.closed = true;
  }
}

export function range(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => i + start);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true if `promise` settles within `ms`, else false (generous bounds only). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = promise.then(
    () => true,
    () => true,
  );
  const result = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  return result;
}

/** go-events' checkClose: close twice, then a write must fail with SinkClosedError. */
export async function checkClose<E>(
  sink: Sink<E>,
  event: E,
  assertClosed: (error: unknown) => void,
): Promise<void> {
  await sink.close();
  await sink.close();
  let error: unknown;
  try {
    await sink.write(event);
  } catch (e) {
    error = e;
  }
  assertClosed(error);
}

/** A sink whose writes wait until released, one by one. */
export class GatedSink<E> implements Sink<E> {
  readonly events: E[] = [];
  closed = false;
  #gates: (() => void)[] = [];
  write(event: E): Promise<void> {
    return new Promise((resolve) => {
      this.#gates.push(() => {
        this.events.push(event);
        resolve();
      });
    });
  }
  release(n = 1): void {
    for (let i = 0; i < n; i++) this.#gates.shift()?.();
  }
  get waiting(): number {
    return this.#gates.length;
  }
  close(): void {
    this.closed = true;
  }
}

/** One turn of the event loop (after pending I/O and microtasks). */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A TCP port free on 127.0.0.1 right now (the probe server is closed before resolving). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Polls `predicate` every `interval` ms (default 20) until it holds; throws naming `what` after
 * `timeout` ms (generous bounds only). Either `(predicate, timeout, what)` or
 * `(predicate, what, timeout = 20 000)`.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeout: number,
  what: string | (() => string),
  interval?: number,
): Promise<void>;
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  what: string | (() => string),
  timeout?: number,
  interval?: number,
): Promise<void>;
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  a: number | string | (() => string),
  b?: number | string | (() => string),
  interval = 20,
): Promise<void> {
  const timeout = typeof a === 'number' ? a : typeof b === 'number' ? b : 20_000;
  const what = typeof a === 'number' ? b : a;
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) {
      const named = typeof what === 'function' ? what() : String(what);
      throw new Error(`timed out after ${timeout} ms waiting for ${named}`);
    }
    await sleep(interval);
  }
}
