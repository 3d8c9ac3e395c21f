// A destination's health as the operator sees it in the log: one `warn` line when it starts
// failing (with the error), at most one `warn` per interval while it keeps failing (with the
// count), and one `info` line when it delivers again. Failed attempts themselves stay at debug.
import type { Logger } from 'pino';
import { errorText } from './logger.js';

/** Options of {@link DeliveryHealth}. */
export interface DeliveryHealthOptions {
  /** Shortest time between two "still failing" lines, ms; default 10 000. */
  interval?: number;
  now?: () => number;
}

/** Tracks healthy → failing → healthy for one destination and logs each change. */
export class DeliveryHealth {
  readonly #log: Logger;
  readonly #interval: number;
  readonly #now: () => number;
  #failing = false;
  #since = 0;
  #lastReport = 0;
  #failures = 0;
  #unreported = 0;
  #lastError = '';

  constructor(log: Logger, options: DeliveryHealthOptions = {}) {
    this.#log = log;
    this.#interval = options.interval ?? 10_000;
    this.#now = options.now ?? (() => Date.now());
  }

  /** True between a failed attempt and the next successful one. */
  get failing(): boolean {
    return this.#failing;
  }

  /** The last error, as text. */
  get lastError(): string | undefined {
    return this.#lastError || undefined;
  }

  /** A delivery attempt failed. */
  failed(error: unknown): void {
    const now = this.#now();
    this.#lastError = errorText(error);
    this.#failures++;
    this.#log.debug({ err: error }, 'delivery attempt failed');
    if (!this.#failing) {
      this.#failing = true;
      this.#since = now;
      this.#lastReport = now;
      this.#failures = 1;
      this.#unreported = 0;
      this.#log.warn(
        { state: 'failing', lastError: this.#lastError },
        `destination failing: ${this.#lastError}; retrying`,
      );
      return;
    }
    this.#unreported++;
    if (now - this.#lastReport >= this.#interval) {
      const seconds = Math.round((now - this.#lastReport) / 1000);
      this.#log.warn(
        {
          state: 'failing',
          failedAttempts: this.#unreported,
          failingForMs: now - this.#since,
          lastError: this.#lastError,
        },
        `destination still failing: ${this.#unreported} failed attempts in the last ${seconds}s; last error: ${this.#lastError}`,
      );
      this.#lastReport = now;
      this.#unreported = 0;
    }
  }

  /** A delivery attempt succeeded. */
  succeeded(): void {
    if (!this.#failing) return;
    const ms = this.#now() - this.#since;
    this.#failing = false;
    this.#log.info(
      {
        state: 'healthy',
        failedAttempts: this.#failures,
        failingForMs: ms,
        lastError: this.#lastError,
      },
      `destination healthy again after ${this.#failures} failed attempts in ${(ms / 1000).toFixed(1)}s; last error: ${this.#lastError}`,
    );
  }
}
