/**
 * Decides how a {@link RetryingSink} paces and gives up. Strategies may be shared between sinks.
 *
 * @example
 * ```ts
 * // Retry at once, forever.
 * const eager: RetryStrategy<unknown> = {
 *   proceed: () => 0,
 *   failure: () => false,
 *   success: () => {},
 * };
 * ```
 */
export interface RetryStrategy<E> {
  /** Milliseconds to wait before the next attempt to write `event`; ≤ 0 means at once. */
  proceed(event: E): number;
  /** Called after a failed attempt; `true` drops the event, `false` tries again. */
  failure(event: E, error: unknown): boolean;
  /** Called after a successful attempt. */
  success(event: E): void;
}
