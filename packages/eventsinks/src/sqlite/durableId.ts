import { getStoredId } from '../internal/durable.js';

/**
 * The stored id of an event a {@link DurableQueue} is delivering: `msg_<file id>_<row id>`,
 * the same on every attempt and after every restart, and different for every event stored in
 * any queue file. `undefined` for anything else: an event not (or not yet) delivered by a
 * DurableQueue, a copy of one, or a primitive (a string or number event has no identity to
 * attach the id to; give such events an id of their own).
 *
 * A sink below a DurableQueue (directly or under wrappers that pass the same object on, such
 * as a `RetryingSink`) calls it in `write` to label what it sends, so that a receiver can drop
 * a redelivery. `HttpSink`, `WebhookSink` and `Endpoint` (eventsinks/http) use it as their
 * default `webhook-id`.
 *
 * @param event - the event object as the sink received it.
 * @returns the stored id, or `undefined`.
 *
 * @example
 * ```ts
 * import { durableId, DurableQueue } from 'eventsinks/sqlite';
 *
 * const queue = new DurableQueue<Order>(
 *   {
 *     write: (order) => publish(order, { idempotencyKey: durableId(order) ?? order.id }),
 *     close() {},
 *   },
 *   { path: './orders.db' },
 * );
 * ```
 */
export function durableId(event: unknown): string | undefined {
  return getStoredId(event);
}
