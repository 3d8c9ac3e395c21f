// What a destination sends to: a webhook, stdout, a file or a broker. A target makes one
// attempt and reports how it went; the Dispatcher decides about retries, order and pace.
import type { CloseOptions } from 'eventsinks';
import type { Envelope } from '../envelope.js';

/** How one attempt went. */
export interface AttemptOutcome {
  ok: boolean;
  /** The HTTP status, when a response came. */
  status?: number;
  /** The first 1 KiB of the response body (UTF-8), when there was one. */
  response?: string;
  /** Why it failed, as one line of text (no stack). */
  error?: string;
  /**
   * False when trying again cannot help (a 4xx other than 408/409/425/429, an event the
   * target cannot encode): the delivery goes to the dead letter at once.
   */
  retryable: boolean;
  /** The receiver's Retry-After, in ms (a 429 or 503): the whole destination waits this long. */
  retryAfter?: number;
}

/** What the dispatcher gives a target about one attempt, beyond the events. */
export interface AttemptContext {
  /** The W3C `traceparent` to send with it (telemetry.ts: the attempt's span as the parent). */
  traceparent?: string | undefined;
}

/** A destination's target. */
export interface Target {
  /**
   * One attempt at `envelopes`: one event (`batchId` undefined; its `webhook-id` is the
   * envelope's id) or a batch (its `webhook-id` is `batchId`, each element carrying its own id
   * under `webhook-id`). `attempt` carries its trace context, for targets whose protocol has
   * headers. Never rejects: a failure is an outcome.
   */
  send(
    envelopes: readonly Envelope[],
    batchId: string | undefined,
    attempt?: AttemptContext,
  ): Promise<AttemptOutcome>;
  /** Releases connections and files; with an aborted signal, at once. */
  close(options?: CloseOptions): Promise<void>;
}
