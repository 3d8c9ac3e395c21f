import { brand, hasErrorCode } from '../errors/brand.js';

const OPEN = 'ERR_QUEUE_OPEN';
const LOCKED = 'ERR_QUEUE_LOCKED';
const ENCODE = 'ERR_EVENT_ENCODE';
const DECODE = 'ERR_EVENT_DECODE';

/**
 * Thrown when a queue file cannot be opened: its directory does not exist, it cannot be read or
 * written, it is not a SQLite database, or it is a SQLite database that is not an eventsinks
 * queue. The message names the path and the reason; `cause` is the underlying error, if any.
 *
 * @example
 * ```ts
 * try {
 *   new DurableQueue(sink, { path: '/var/lib/relay/missing/queue.db' });
 * } catch (error) {
 *   if (isQueueOpenError(error)) console.error(error.message, error.path);
 * }
 * ```
 */
export class QueueOpenError extends Error {
  /** Stable error code: `'ERR_QUEUE_OPEN'`. */
  readonly code = OPEN;
  /** The path that could not be opened, as given. */
  readonly path: string;

  /**
   * @param path - the queue file's path, as given.
   * @param reason - why it cannot be opened, completing "cannot open queue file <path>: ".
   * @param options - `cause` is passed through.
   */
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super(`cannot open queue file ${JSON.stringify(path)}: ${reason}`, options);
    this.name = 'QueueOpenError';
    this.path = path;
    brand(this, OPEN);
  }
}

/**
 * True when `error` is a {@link QueueOpenError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isQueueOpenError(error)) process.exitCode = 2;
 * ```
 */
export function isQueueOpenError(error: unknown): error is QueueOpenError {
  return hasErrorCode(error, OPEN);
}

/**
 * Thrown when a queue file is already open, by another process or by another queue in this one.
 * A queue file has one owner at a time (SQLite's exclusive locking mode), so two processes can
 * never deliver, or corrupt, the same events.
 *
 * @example
 * ```ts
 * try {
 *   queue = new DurableQueue(sink, { path });
 * } catch (error) {
 *   if (isQueueLockedError(error)) console.error(`${error.path} is in use by another process`);
 * }
 * ```
 */
export class QueueLockedError extends Error {
  /** Stable error code: `'ERR_QUEUE_LOCKED'`. */
  readonly code = LOCKED;
  /** The path of the locked file, as given. */
  readonly path: string;

  /** @param path - the queue file's path, as given; @param options - `cause` is passed through. */
  constructor(path: string, options?: ErrorOptions) {
    super(
      `cannot open queue file ${JSON.stringify(path)}: it is locked by another open queue (in this process or another one)`,
      options,
    );
    this.name = 'QueueLockedError';
    this.path = path;
    brand(this, LOCKED);
  }
}

/**
 * True when `error` is a {@link QueueLockedError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isQueueLockedError(error)) await retryLater();
 * ```
 */
export function isQueueLockedError(error: unknown): error is QueueLockedError {
  return hasErrorCode(error, LOCKED);
}

/**
 * Thrown by a write whose event the codec cannot encode (the default JSON codec fails on a cycle,
 * a BigInt, or a value such as `undefined` that has no JSON form). Nothing was stored. It is a
 * `TypeError`: the event is of a kind the queue cannot hold.
 *
 * @example
 * ```ts
 * try {
 *   await queue.write({ size: 10n });
 * } catch (error) {
 *   if (isEncodeError(error)) console.error('not storable:', error.message);
 * }
 * ```
 */
export class EncodeError extends TypeError {
  /** Stable error code: `'ERR_EVENT_ENCODE'`. */
  readonly code = ENCODE;

  /** @param reason - why encoding failed; @param options - `cause` is passed through. */
  constructor(reason: string, options?: ErrorOptions) {
    super(`cannot store the event: the codec could not encode it: ${reason}`, options);
    this.name = 'EncodeError';
    brand(this, ENCODE);
  }
}

/**
 * True when `error` is an {@link EncodeError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isEncodeError(error)) response.status(422);
 * ```
 */
export function isEncodeError(error: unknown): error is EncodeError {
  return hasErrorCode(error, ENCODE);
}

/**
 * Reported (to `onError`, or thrown by `QueueFile.list`) for a stored event the codec cannot
 * decode, for instance after the codec changed. It carries the row's `id` and the stored `data`,
 * so nothing is lost: a tool can save the bytes and remove the row.
 *
 * @example
 * ```ts
 * const queue = new DurableQueue(sink, {
 *   path,
 *   onError(error, event) {
 *     if (isDecodeError(error)) quarantine(error.id, error.data);
 *     else console.error('delivery failed', event, error);
 *   },
 * });
 * ```
 */
export class DecodeError extends Error {
  /** Stable error code: `'ERR_EVENT_DECODE'`. */
  readonly code = DECODE;
  /** The row's id in the queue file. */
  readonly id: number;
  /** The stored data, exactly as the codec's `encode` returned it. */
  readonly data: string | Uint8Array;

  /**
   * @param id - the row's id; @param data - the stored data;
   * @param options - `cause` is the codec's error.
   */
  constructor(id: number, data: string | Uint8Array, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`cannot decode stored event ${id} with the codec${reason}`, options);
    this.name = 'DecodeError';
    this.id = id;
    this.data = data;
    brand(this, DECODE);
  }
}

/**
 * True when `error` is a {@link DecodeError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isDecodeError(error)) console.error('row', error.id, 'is unreadable');
 * ```
 */
export function isDecodeError(error: unknown): error is DecodeError {
  return hasErrorCode(error, DECODE);
}
