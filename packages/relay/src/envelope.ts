// What the relay stores and delivers: the event as received, wrapped with the id that makes
// retries recognisable (webhook-id, Nats-Msg-Id, AMQP messageId) and the time it was received.
import type { FieldMatch } from './schema.js';

/** An event as the relay keeps it in a destination's queue. */
export interface Envelope {
  /** Unique per event, stable across retries and replays. */
  id: string;
  /** When the relay accepted it (ms since the epoch). */
  receivedAt: number;
  /** The source that received it (`http`, `stdin`, `redis`, …). */
  source: string;
  /** The event itself: a JSON object. */
  event: Record<string, unknown>;
}

/** A dead letter as the relay keeps it: the envelope and why it was given up on. */
export interface DeadRecord {
  envelope: Envelope;
  error: string;
  /** `overflow` when it was moved here to make room (`whenFull: dead-letter`). */
  reason?: 'overflow';
  status?: number;
  attempts: number;
  firstFailedAt: number;
  deadAt: number;
}

/** The longest relay id an `idField` may give an event. */
export const MAX_ID_LENGTH = 256;

/**
 * The relay id an event's `idField` gives it: a string (1–256 characters, no control
 * characters: it travels as the `webhook-id` header) or a finite number, as text. Undefined when
 * the event does not carry the field; a string saying what is wrong when its value cannot be an id.
 */
export function idFromField(
  event: Record<string, unknown>,
  path: string,
): { id: string } | { problem: string } | undefined {
  const value = field(event, path);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return { id: String(value) };
  if (typeof value !== 'string') {
    return {
      problem: `its ${path} (the idField) is ${typeof value}, expected a string or a number`,
    };
  }
  // eslint-disable-next-line no-control-regex
  if (value === '' || value.length > MAX_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(value)) {
    return {
      problem: `its ${path} (the idField) ${JSON.stringify(value.slice(0, 40))} is not an id: expected 1 to ${MAX_ID_LENGTH} characters without control characters`,
    };
  }
  return { id: value };
}

/**
 * Wraps received events; an event's id is its `idField` value when it has one (checked by the
 * caller with {@link idFromField}), else a random UUID (crypto.randomUUID).
 */
export function envelop(
  events: readonly Record<string, unknown>[],
  source: string,
  idField?: string,
): Envelope[] {
  const receivedAt = Date.now();
  return events.map((event) => {
    const given = idField === undefined ? undefined : idFromField(event, idField);
    const id = given !== undefined && 'id' in given ? given.id : crypto.randomUUID();
    return { id, receivedAt, source, event };
  });
}

/** The value at a field path (`customer.id`) of an event; undefined when it is missing. */
export function field(event: unknown, path: string): unknown {
  let value: unknown = event;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function fieldMatches(event: unknown, path: string, expected: FieldMatch[string]): boolean {
  const value = field(event, path);
  return Array.isArray(expected) ? expected.some((e) => e === value) : expected === value;
}

/**
 * The predicate for a destination's `match` and `ignore`: an event passes when every `match`
 * field has (one of) its values, and no `ignore` field has (one of) its values — the way the
 * registry's `ignore: { mediatypes, actions }` drops an event matching either list.
 */
export function makePredicate(
  match: FieldMatch | undefined,
  ignore: FieldMatch | undefined,
): ((envelope: Envelope) => boolean) | undefined {
  const matchEntries = Object.entries(match ?? {});
  const ignoreEntries = Object.entries(ignore ?? {});
  if (matchEntries.length === 0 && ignoreEntries.length === 0) return undefined;
  return ({ event }) =>
    matchEntries.every(([path, expected]) => fieldMatches(event, path, expected)) &&
    !ignoreEntries.some(([path, expected]) => fieldMatches(event, path, expected));
}

/**
 * The predicate for a destination's `eventTypes`: the event's `typeField` value must be a
 * string matching one of `patterns`, where `*` stands for any run of characters (so `order.*`
 * takes `order.created` and `order.item.added`, `*` every event that has a type). Undefined
 * without patterns (every event passes).
 * @example
 * ```ts
 * const takes = makeEventTypePredicate(['order.*'], 'type');
 * takes?.({ id: '1', receivedAt: 0, source: 'http', event: { type: 'order.created' } }); // true
 * ```
 */
export function makeEventTypePredicate(
  patterns: readonly string[] | undefined,
  typeField: string,
): ((envelope: Envelope) => boolean) | undefined {
  if (patterns === undefined || patterns.length === 0) return undefined;
  const regex = new RegExp(
    `^(?:${patterns
      .map((p) =>
        p
          .split('*')
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*'),
      )
      .join('|')})$`,
    's',
  );
  return ({ event }) => {
    const type = field(event, typeField);
    return typeof type === 'string' && regex.test(type);
  };
}
