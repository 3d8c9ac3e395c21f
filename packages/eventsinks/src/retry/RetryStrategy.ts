/**
 * What a {@link RetryingSink} tells its strategy about the event's failures so far. One object
 * per failed attempt; it describes the attempt that just failed.
 *
 * @example
 * ```ts
 * const logging: RetryStrategy<unknown> = {
 *   proceed: () => 100,
 *   failure: (_event, _error, { attempt, firstFailedAt }) => attempt >= 3 && Date.now() - firstFailedAt > 60_000,
 *   success: () => {},
 * };
 * ```
 */
export interface RetryContext {
  /** The 1-based number of the attempt that just failed (1 after the first failure). */
  readonly attempt: number;
  /** When this event's first attempt failed (ms since the epoch, from the sink's clock). */
  readonly firstFailedAt: number;
  /** The error of the attempt that just failed. */
  readonly error: unknown;
}

/**
 * Decides how a {@link RetryingSink} paces and gives up. Strategies may be shared between sinks.
 *
 * Each method gets the event and, once the event has failed at least once, a
 * {@link RetryContext} describing its last failure (a RetryingSink always passes it to
 * `failure`). A strategy written before the context existed simply ignores the extra argument.
 *
 * @example
 * ```ts
 * // Retry at once, three attempts per event.
 * const eager: RetryStrategy<unknown> = {
 *   proceed: () => 0,
 *   failure: (_event, _error, context) => (context?.attempt ?? 1) >= 3,
 *   success: () => {},
 * };
 * ```
 */
export interface RetryStrategy<E> {
  /**
   * Milliseconds to wait before the next attempt to write `event`; ≤ 0 means at once.
   * `context` describes the last failed attempt; it is undefined before the first attempt.
   */
  proceed(event: E, context?: RetryContext): number;
  /**
   * Called after a failed attempt; `true` drops the event, `false` tries again. `context`
   * describes that attempt; it is optional in the type only so that older callers compile.
   */
  failure(event: E, error: unknown, context?: RetryContext): boolean;
  /**
   * Called after a successful attempt. `context` describes the last failed attempt, or is
   * undefined when the first attempt succeeded.
   */
  success(event: E, context?: RetryContext): void;
}
