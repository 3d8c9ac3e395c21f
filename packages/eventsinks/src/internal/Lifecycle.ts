import type { CloseOptions } from '../Sink.js';
import { isAbandon } from './abandon.js';
import { noop } from './close.js';
import { expectSignal } from './validate.js';

/** @internal Where a closable thing is: accepting, draining after `close()`, or done. */
export type LifecycleState = 'open' | 'closing' | 'closed';

/**
 * The lifecycle of a closable thing, in one place: its state (open → closing → closed), an
 * idempotent `close()`, a drain that a signal cuts short, and the abort listeners, which are
 * removed as soon as the close settles so that a long-lived signal never keeps a closed object
 * reachable.
 *
 * Every `signal` handed to `close()` while the drain runs (the first call's and later ones')
 * aborts it: the owner's `onAbort` runs once and a pending {@link Lifecycle.untilIdle} resolves.
 * A close that abandons (see `abandon.ts`) is remembered in {@link Lifecycle.abandoned}.
 * @internal
 */
export class Lifecycle {
  #state: LifecycleState = 'open';
  #aborted = false;
  #abandoned = false;
  // close() was called and its drain has not settled: close signals are listened to.
  #draining = false;
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;
  #until: (() => void) | undefined;
  // The signals listened to, until the close settles; an array only once a second one comes.
  #signal: AbortSignal | undefined;
  #signals: AbortSignal[] | undefined;
  readonly #onAbort: (() => void) | undefined;
  // One listener for every signal, so removing it needs no bookkeeping per signal.
  readonly #listener = (): void => this.abort();

  /** @param onAbort - runs once, the first time a close signal aborts (or `abort()` is called). */
  constructor(onAbort?: () => void) {
    this.#onAbort = onAbort;
  }

  /** Where the owner is in its life. */
  get state(): LifecycleState {
    return this.#state;
  }

  /**
   * True once `close()` was called (closing or closed): writes must fail. A plain field, not a
   * getter over the state, because every write of every class reads it on the hot path.
   */
  closed = false;

  /** True once a close signal aborted (or `abort()` was called). */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** True once a close asked to abandon what is pending (see `abandon.ts`). */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /**
   * The owner's `close(options)`. The first call moves to `'closing'` and runs `drain` with the
   * first signal (its synchronous part at once), listening to that signal from then on. When
   * `drain` settles every listener is removed and `release` runs (whatever the outcome of
   * `drain`); then the state becomes `'closed'` and the returned promise settles as they did.
   * Later calls, while `drain` runs, add their signal to those that abort it; every later call
   * resolves when the first close is done, never rejecting.
   * @throws TypeError (synchronously) when `options.signal` is not an AbortSignal.
   */
  close(
    options: CloseOptions | undefined,
    drain: (signal: AbortSignal | undefined) => void | PromiseLike<void>,
    release?: (signal: AbortSignal | undefined) => void | PromiseLike<void>,
  ): Promise<void> {
    const signal = options?.signal;
    expectSignal('signal', signal);
    if (isAbandon(options)) this.#abandoned = true;
    if (this.#closing !== undefined) {
      this.#listen(signal);
      return this.#closing.then(noop, noop);
    }
    this.#state = 'closing';
    this.closed = true;
    this.#draining = true;
    this.#closing = this.#run(signal, drain, release);
    // After drain's synchronous part: an already-aborted signal then finds what it waits for.
    this.#listen(signal);
    return this.#closing;
  }

  /**
   * Closes at once, for an owner whose close has nothing to drain; true on the first call only.
   */
  end(): boolean {
    if (this.#state !== 'open') return false;
    this.#state = 'closed';
    this.closed = true;
    this.#closing = Promise.resolve();
    return true;
  }

  /** Aborts the drain: runs `onAbort` (once), then resolves a pending `untilIdle()`/`until()`. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#onAbort?.();
    this.idle();
    const until = this.#until;
    this.#until = undefined;
    until?.();
  }

  /** Resolves when the owner calls `idle()` or the drain aborts (at once if it has). */
  untilIdle(): Promise<void> {
    if (this.#aborted) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#idle = resolve));
  }

  /** Resolves when `work` settles or the drain aborts, whichever comes first. */
  until(work: PromiseLike<unknown>): Promise<void> {
    if (this.#aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#until = resolve;
      const done = (): void => {
        if (this.#until === resolve) this.#until = undefined;
        resolve();
      };
      work.then(done, done);
    });
  }

  /** Tells a close waiting in `untilIdle()` that the work is done. Allocates nothing. */
  idle(): void {
    const idle = this.#idle;
    if (idle === undefined) return;
    this.#idle = undefined;
    idle();
  }

  async #run(
    signal: AbortSignal | undefined,
    drain: (signal: AbortSignal | undefined) => void | PromiseLike<void>,
    release: ((signal: AbortSignal | undefined) => void | PromiseLike<void>) | undefined,
  ): Promise<void> {
    try {
      try {
        await drain(signal);
      } finally {
        // The deadline bounds the drain only: from here on no signal is listened to.
        this.#draining = false;
        this.#idle = this.#until = undefined;
        this.#unlisten();
        if (release !== undefined) await release(signal);
      }
    } finally {
      this.#state = 'closed';
    }
  }

  #listen(signal: AbortSignal | undefined): void {
    if (signal === undefined || this.#aborted || !this.#draining) return;
    if (signal.aborted) {
      this.abort();
      return;
    }
    if (signal === this.#signal || this.#signals?.includes(signal)) return;
    signal.addEventListener('abort', this.#listener, { once: true });
    if (this.#signal === undefined) this.#signal = signal;
    else (this.#signals ??= []).push(signal);
  }

  #unlisten(): void {
    this.#signal?.removeEventListener('abort', this.#listener);
    this.#signal = undefined;
    if (this.#signals === undefined) return;
    for (const signal of this.#signals) signal.removeEventListener('abort', this.#listener);
    this.#signals = undefined;
  }
}
