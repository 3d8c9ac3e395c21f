import { describe } from '../internal/validate.js';
import { EncodeError } from './errors.js';

/**
 * Turns events into what a queue file stores, and back. `decode` receives exactly the kind of
 * value `encode` returned: a string, or a `Uint8Array` (a `Buffer`, when read back).
 *
 * @example
 * ```ts
 * // Raw bytes, stored as they are: what an HTTP relay forwarding request bodies wants.
 * const bytes: Codec<Uint8Array> = {
 *   encode: (event) => event,
 *   decode: (data) => (typeof data === 'string' ? new TextEncoder().encode(data) : data),
 * };
 * ```
 */
export interface Codec<E> {
  /** Encodes one event; throws if it cannot (the write then fails with `EncodeError`). */
  encode(event: E): string | Uint8Array;
  /** Decodes what `encode` returned. */
  decode(data: string | Uint8Array): E;
}

const decoder = new TextDecoder();

/** The default codec: `JSON.stringify` / `JSON.parse`. @internal */
export const jsonCodec: Codec<unknown> = {
  encode: (event) => JSON.stringify(event),
  decode: (data) => JSON.parse(typeof data === 'string' ? data : decoder.decode(data)) as unknown,
};

/**
 * QueueFile's default: JSON too, but an `Error` anywhere in the event is written as
 * `{ name, message, ...its own enumerable properties, cause }` instead of JSON's `{}`, so that a
 * stored `DeadLetter` keeps its error. The replacer doubles the cost of encoding, which is why
 * DurableQueue's hot path does not use it. @internal
 */
export const jsonWithErrorsCodec: Codec<unknown> = {
  encode: (event) => JSON.stringify(event, errorReplacer),
  decode: jsonCodec.decode,
};

function errorReplacer(_key: string, value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  // Own enumerable properties (a `code`, a `status`) first; name and message are inherited or
  // non-enumerable, so they are set explicitly.
  const plain: Record<string, unknown> = { ...value };
  plain.name = value.name;
  plain.message = value.message;
  if (value.cause !== undefined) plain.cause = value.cause;
  return plain;
}

/** Validates a `codec` option. @internal */
export function expectCodec(value: unknown): void {
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { encode?: unknown }).encode !== 'function' ||
    typeof (value as { decode?: unknown }).decode !== 'function'
  ) {
    throw new TypeError(
      `Expected \`codec\` to be a Codec (an object with encode() and decode()), got ${describe(value)}`,
    );
  }
}

/**
 * Encodes `event`, turning every failure into an {@link EncodeError} (a TypeError) so that the
 * write fails before anything is stored. @internal
 */
export function encodeWith<E>(codec: Codec<E>, event: E): string | Uint8Array {
  let data: unknown;
  try {
    data = codec.encode(event);
  } catch (error) {
    throw new EncodeError(error instanceof Error ? error.message : String(error), {
      cause: error,
    });
  }
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  throw new EncodeError(`it returned ${describe(data)}, not a string or a Uint8Array`);
}
