// The targets of the delivery engine, one per destination type: each makes one attempt and
// turns whatever happened into an AttemptOutcome. Retries, order and pace are the Dispatcher's.
import { open, type FileHandle } from 'node:fs/promises';
import { isPublishError, isSinkClosedError, type CloseOptions, type Sink } from 'eventsinks';
import { HttpEncodeError, isHttpStatusError, isHttpTransportError } from 'eventsinks/http';
import { brokerSink, type BrokerPublish } from '../brokers.js';
import type { Envelope } from '../envelope.js';
import { describeError } from '../logger.js';
import type { DestinationConfig } from '../schema.js';
import type { AttemptOutcome, Target } from './Target.js';
import { signingKeys } from '../signing.js';
import { WebhookClient } from './WebhookClient.js';

/**
 * The field of each element of a batch that carries the event's own relay id (the
 * `webhook-id` it has when sent alone), so a receiver can also drop duplicates per event.
 */
export const BATCH_ID_FIELD = 'webhook-id';

/** How much of a response body an outcome keeps (`AttemptOutcome.response`), in UTF-8 bytes. */
export const RESPONSE_EXCERPT_BYTES = 1024;

/** What a target needs from the relay besides its configuration. */
export interface TargetContext {
  /** Where a `stdout` destination writes. */
  stdout: NodeJS.WritableStream;
  /**
   * Told of an error no outcome can carry (a close that failed after its deadline, a stream
   * error between writes). Default: a process warning.
   */
  onError?(error: unknown, during: string): void;
  /** Told of a condition worth a warning (every signing secret expired). Default: a process warning. */
  warn?(message: string): void;
  /** The clock webhook signing secrets' `expiresAt` is checked against; default `Date.now`. */
  now?(): number;
}

/**
 * The target of one destination: a {@link WebhookClient} (undici) for a webhook, NDJSON lines for stdout and a file,
 * the broker adapters for redis, nats and amqp. `send` never rejects; `close` without a signal
 * waits for the attempts in flight, and with an aborted signal returns at once (the attempts
 * still in flight then end as retryable failures).
 *
 * @example
 * ```ts
 * const target = createTarget(config.destinations[0]!, { stdout: process.stdout });
 * const outcome = await target.send([envelope], undefined);
 * await target.close({ signal: AbortSignal.timeout(5_000) });
 * ```
 */
export function createTarget(config: DestinationConfig, context: TargetContext): Target {
  const report =
    context.onError ??
    ((error: unknown, during: string) =>
      process.emitWarning(`${config.name}: ${during}: ${oneLine(describeError(error))}`));
  switch (config.type) {
    case 'webhook':
      return webhookTarget(config, report, context);
    case 'stdout':
      return streamTarget(context.stdout, report);
    case 'file':
      return fileTarget(config.path, report);
    default:
      return brokerTarget(brokerSink(config), report);
  }
}

type Report = (error: unknown, during: string) => void;

/** A batch's body: the events as received, each with its relay id under BATCH_ID_FIELD. */
export function batchBody(envelopes: readonly Envelope[]): Record<string, unknown>[] {
  return envelopes.map((e) => ({ ...e.event, [BATCH_ID_FIELD]: e.id }));
}

/**
 * The first `max` bytes of `text` as UTF-8, cut before a character that would not fit whole.
 *
 * @example
 * ```ts
 * utf8Prefix('héllo', 2); // 'h' (the é takes two bytes)
 * ```
 */
export function utf8Prefix(text: string, max = RESPONSE_EXCERPT_BYTES): string {
  // Every UTF-16 unit is at most 3 bytes: short strings need no encoding.
  if (text.length * 3 <= max) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  // Back off continuation bytes (10xxxxxx): the cut must fall on the start of a character.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

const CLOSED: AttemptOutcome = {
  ok: false,
  retryable: true,
  error: 'the target is closed',
};
const CUT_OFF: AttemptOutcome = {
  ok: false,
  retryable: true,
  error: 'cut off by the close deadline before the attempt finished',
};

/** What one send is: one event, or a batch with its own id. */
type Shape = { batch: false; envelope: Envelope } | { batch: true; id: string };

function shapeOf(envelopes: readonly Envelope[], batchId: string | undefined): Shape | string {
  if (batchId !== undefined) {
    return envelopes.length === 0 ? 'an empty batch' : { batch: true, id: batchId };
  }
  const [envelope] = envelopes;
  if (envelope === undefined || envelopes.length !== 1) {
    return `${envelopes.length} events without a batchId (one event, or a batch with its id)`;
  }
  return { batch: false, envelope };
}

/**
 * The attempts in flight of one target and its close: what every target shares. An attempt
 * never rejects; the close deadline settles the attempts still running as retryable failures.
 */
class Attempts {
  readonly #pending = new Set<(outcome: AttemptOutcome) => void>();
  readonly #release: (signal?: AbortSignal) => void | Promise<void>;
  readonly #report: Report;
  #closed = false;
  #idle: (() => void) | undefined;
  #graceful: Promise<void> | undefined;
  #aborted = false;
  #released = false;

  constructor(release: (signal?: AbortSignal) => void | Promise<void>, report: Report) {
    this.#release = release;
    this.#report = report;
  }

  run(attempt: () => Promise<AttemptOutcome>): Promise<AttemptOutcome> {
    if (this.#closed) return Promise.resolve(CLOSED);
    return new Promise<AttemptOutcome>((resolve) => {
      this.#pending.add(resolve);
      const settle = (outcome: AttemptOutcome): void => {
        // Already settled (CUT_OFF) when the close deadline came first.
        if (!this.#pending.delete(resolve)) return;
        resolve(outcome);
        if (this.#pending.size === 0) this.#idle?.();
      };
      attempt().then(settle, (error: unknown) => settle(failure(error, true)));
    });
  }

  close(options?: CloseOptions): Promise<void> {
    this.#closed = true;
    const signal = options?.signal;
    if (signal?.aborted) {
      this.#abort(signal);
      return Promise.resolve();
    }
    this.#graceful ??= this.#whenIdle()
      .then(() => this.#release())
      .then(() => {
        this.#released = true;
      });
    if (signal === undefined) return this.#graceful;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = (): void => {
        this.#abort(signal);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return Promise.race([this.#graceful, aborted]).finally(() => {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    });
  }

  #whenIdle(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#idle = resolve));
  }

  // The deadline passed: settle what is in flight and release in the background, so that the
  // caller is not held by a remote end that does not answer.
  #abort(signal: AbortSignal): void {
    if (this.#aborted) return;
    this.#aborted = true;
    for (const resolve of this.#pending) resolve(CUT_OFF);
    this.#pending.clear();
    this.#idle?.();
    // A graceful release already under way may fail too: its caller has gone, report it here.
    this.#graceful?.catch((error: unknown) => this.#report(error, 'closing'));
    if (this.#released) return;
    Promise.resolve()
      .then(() => this.#release(signal))
      .catch((error: unknown) => this.#report(error, 'closing after the deadline'));
  }
}

/** An outcome for an error that is not an HTTP status. */
function failure(error: unknown, retryable: boolean): AttemptOutcome {
  return { ok: false, retryable, error: oneLine(describeError(error)) || 'unknown error' };
}

// --- webhook -------------------------------------------------------------------------------

type WebhookConfig = Extract<DestinationConfig, { type: 'webhook' }>;

/** What a webhook attempt heard: a 2xx's status and body (a refusal's are in its error). */
interface Heard {
  status: number;
  body: string;
}

function webhookTarget(config: WebhookConfig, report: Report, context: TargetContext): Target {
  // undici's request on connections sized to the concurrency, not HttpSink's global fetch:
  // fetch's per-request CPU capped delivery far below the destination's concurrency.
  const client = new WebhookClient(config.url, {
    method: config.method,
    headers: config.headers,
    timeout: config.timeout,
    followRedirects: config.followRedirects,
    connections: config.concurrency,
    // Every secret of `signing`; each signs until its expiresAt (rotation).
    secrets: signingKeys(config.signing),
    // Without a warn hook, WebhookClient's own default (a process warning).
    onWarning: context.warn && ((message) => context.warn!(message)),
    now: context.now && (() => context.now!()),
  });
  const attempts = new Attempts((signal) => client.close(signal), report);
  return {
    send(envelopes, batchId, attempt) {
      const shape = shapeOf(envelopes, batchId);
      if (typeof shape === 'string') {
        return Promise.resolve({ ok: false, retryable: false, error: `cannot send ${shape}` });
      }
      return attempts.run(async () => {
        let body: string;
        try {
          body = JSON.stringify(shape.batch ? batchBody(envelopes) : shape.envelope.event);
        } catch (error) {
          // The same event fails the same way every time: not worth retrying.
          return webhookOutcome(undefined, new HttpEncodeError({ cause: error }));
        }
        try {
          // Sent always (signed with `signing`), stable across retries, restarts and replays,
          // so a receiver can drop what it already has: an event's own id, or its batch's.
          return webhookOutcome(
            await client.send(body, shape.batch ? shape.id : shape.envelope.id, {
              traceparent: attempt?.traceparent,
            }),
            undefined,
          );
        } catch (error) {
          return webhookOutcome(undefined, error);
        }
      });
    },
    close: (options) => attempts.close(options),
  };
}

function webhookOutcome(heard: Heard | undefined, error: unknown): AttemptOutcome {
  const outcome: AttemptOutcome = { ok: error === undefined, retryable: error !== undefined };
  if (heard !== undefined) {
    outcome.status = heard.status;
    outcome.response = utf8Prefix(heard.body);
  }
  if (error === undefined) return outcome;
  if (isHttpStatusError(error)) {
    outcome.status = error.status;
    outcome.response ??= utf8Prefix(error.body);
    // 409 is retryable for the relay (a receiver's conflict with an earlier event of the same
    // key clears once that one lands), though the library's own retry policy leaves it out.
    outcome.retryable = error.retryable || error.status === 409;
    if (error.retryAfter !== undefined) outcome.retryAfter = error.retryAfter;
    // The status and reason only: the body is in `response`, headers are never shown.
    outcome.error = `${error.status} ${error.statusText}`.trim();
    return outcome;
  }
  if (isHttpTransportError(error)) return { ...outcome, ...failure(error, true) };
  // HttpEncodeError (the same event fails the same way every time), or a closed sink.
  return { ...outcome, ...failure(error, isSinkClosedError(error)) };
}

// --- stdout and file -----------------------------------------------------------------------

function ndjson(envelopes: readonly Envelope[]): string {
  let out = '';
  for (const envelope of envelopes) out += `${JSON.stringify(envelope.event)}\n`;
  return out;
}

function streamTarget(stream: NodeJS.WritableStream, report: Report): Target {
  // The write callback carries a stream's error to the attempt; this listener keeps the same
  // error's 'error' event from crashing the process, and reports one that came between writes.
  let writing = 0;
  const onError = (error: unknown): void => {
    if (writing === 0) report(error, 'stdout');
  };
  stream.on('error', onError);
  const attempts = new Attempts(() => {
    stream.off('error', onError);
  }, report);
  return {
    send(envelopes, batchId) {
      const shape = shapeOf(envelopes, batchId);
      if (typeof shape === 'string') {
        return Promise.resolve({ ok: false, retryable: false, error: `cannot write ${shape}` });
      }
      return attempts.run(
        () =>
          new Promise<AttemptOutcome>((resolve) => {
            writing++;
            // The callback comes once the stream has taken the line (flushed, on a pipe), so
            // a slow reader holds delivery, not memory, and an I/O error fails this attempt.
            stream.write(ndjson(envelopes), (error?: Error | null) => {
              writing--;
              resolve(error ? failure(error, true) : { ok: true, retryable: false });
            });
          }),
      );
    },
    close: (options) => attempts.close(options),
  };
}

function fileTarget(path: string, report: Report): Target {
  let handle: Promise<FileHandle> | undefined;
  const attempts = new Attempts(async () => {
    const opened = handle;
    handle = undefined;
    const file = await opened?.catch(() => undefined);
    await file?.close();
  }, report);
  return {
    send(envelopes, batchId) {
      const shape = shapeOf(envelopes, batchId);
      if (typeof shape === 'string') {
        return Promise.resolve({ ok: false, retryable: false, error: `cannot write ${shape}` });
      }
      return attempts.run(async () => {
        const opening = (handle ??= open(path, 'a'));
        try {
          await (await opening).appendFile(ndjson(envelopes));
          return { ok: true, retryable: false };
        } catch (error) {
          // A file that could not be opened is opened again by the next attempt.
          if (handle === opening) {
            handle = undefined;
            void opening.then(
              (file) => file.close(),
              () => undefined,
            );
          }
          return failure(error, true);
        }
      });
    },
    close: (options) => attempts.close(options),
  };
}

// --- brokers -------------------------------------------------------------------------------

function brokerTarget(sink: Sink<BrokerPublish>, report: Report): Target {
  const attempts = new Attempts((signal) => sink.close(signal ? { signal } : undefined), report);
  return {
    send(envelopes, batchId, attempt) {
      const shape = shapeOf(envelopes, batchId);
      if (typeof shape === 'string') {
        return Promise.resolve({ ok: false, retryable: false, error: `cannot publish ${shape}` });
      }
      return attempts.run(async () => {
        try {
          await sink.write({ envelopes, traceparent: attempt?.traceparent });
          return { ok: true, retryable: false };
        } catch (error) {
          // A connection that failed or closed is not a PublishError: worth another attempt.
          return failure(error, isPublishError(error) ? error.retryable : true);
        }
      });
    },
    close: (options) => attempts.close(options),
  };
}
