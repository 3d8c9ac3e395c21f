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

/** Wraps received events; ids are random UUIDs (crypto.randomUUID). */
export function envelop(events: readonly Record<string, unknown>[], source: string): Envelope[] {
  const receivedAt = Date.now();
  return events.map((event) => ({ id: crypto.randomUUID(), receivedAt, source, event }));
}

function field(event: unknown, path: string): unknown {
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
