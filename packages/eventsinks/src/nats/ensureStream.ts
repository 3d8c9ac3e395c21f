import {
  JetStreamApiCodes,
  jetstreamManager,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe } from '../internal/validate.js';

/**
 * A stream to create when it does not exist: JetStream's own `StreamConfig`, of which `name`
 * and `subjects` are required and everything else keeps the server's defaults (file storage,
 * limits retention, a 2-minute `duplicate_window`, which bounds how late a retried write is
 * still recognised as a duplicate).
 *
 * @example
 * ```ts
 * const spec: StreamSpec = { name: 'ORDERS', subjects: ['orders.>'], max_age: 7 * 24 * 3600e9 };
 * ```
 */
export type StreamSpec = Partial<StreamConfig> & {
  /** The stream's name (no spaces, `.`, `*` or `>`). */
  name: string;
  /** The subjects it captures; wildcards allowed. */
  subjects: string[];
};

/**
 * Creates the stream `spec.name` unless it exists; resolves with its info.
 *
 * An existing stream is never modified (its retention, limits and replicas are somebody's
 * decision), but it must capture every subject of `spec`, or this rejects. Safe to call from
 * several processes at once.
 *
 * @throws rejects with a `TypeError` on a malformed spec, an `Error` when the existing stream
 *   lacks a subject, or the client's error when JetStream cannot be reached.
 *
 * @example
 * ```ts
 * await ensureStream(connection, { name: 'ORDERS', subjects: ['orders.>'] });
 * await ensureStream(connection, { name: 'ORDERS_DLQ', subjects: ['dlq.orders'] });
 * ```
 */
export async function ensureStream(
  connection: NatsConnection,
  spec: StreamSpec,
): Promise<StreamInfo> {
  validateStreamSpec(spec);
  const jsm = await jetstreamManager(connection);
  return ensureWith(jsm, spec);
}

/** @internal */
export function validateStreamSpec(spec: unknown): asserts spec is StreamSpec {
  if (typeof spec !== 'object' || spec === null) {
    throw new TypeError(`Expected a stream spec ({ name, subjects }), got ${describe(spec)}`);
  }
  const { name, subjects } = spec as { name?: unknown; subjects?: unknown };
  if (typeof name !== 'string' || name === '' || /[\s.*>]/.test(name)) {
    throw new TypeError(
      `Expected the stream \`name\` to be a non-empty string without spaces, '.', '*' or '>', got ${describe(name)}`,
    );
  }
  if (
    !Array.isArray(subjects) ||
    subjects.length === 0 ||
    !subjects.every((s) => typeof s === 'string' && s !== '')
  ) {
    throw new TypeError(
      `Expected the stream \`subjects\` to be a non-empty array of subjects, got ${describe(subjects)}`,
    );
  }
}

/** @internal */
export async function ensureWith(jsm: JetStreamManager, spec: StreamSpec): Promise<StreamInfo> {
  let info = await findStream(jsm, spec.name);
  if (info === undefined) {
    try {
      info = await jsm.streams.add(spec);
    } catch (error) {
      // Another process may have created it between our lookup and our add.
      info = await findStream(jsm, spec.name);
      if (info === undefined) throw error;
    }
  }
  const have = new Set(info.config.subjects ?? []);
  const missing = spec.subjects.filter((s) => !have.has(s));
  if (missing.length > 0) {
    throw new Error(
      `stream ${spec.name} exists but does not capture ${missing.join(', ')} (it has ${[...have].join(', ') || 'no subjects'}); eventsinks does not modify existing streams`,
    );
  }
  return info;
}

async function findStream(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return undefined;
    throw error;
  }
}

/** @internal True for a JetStream API error with this error code. */
export function isApiError(error: unknown, code: number): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { apiError?: unknown }).apiError === 'function' &&
    (error as { code?: unknown }).code === code
  );
}
