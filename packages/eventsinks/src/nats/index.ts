/**
 * `eventsinks/nats`: carry events between processes on NATS JetStream (server 2.9 or later),
 * on the optional peers `@nats-io/transport-node` and `@nats-io/jetstream` (v3).
 *
 * - {@link JetStreamSink} publishes each event and resolves once the stream acknowledged it.
 * - {@link JetStreamSource} consumes a stream through a durable pull consumer into any local
 *   `Sink`, acknowledging each message after its write resolved (at-least-once).
 * - {@link ensureStream} creates a stream unless it exists. The sink and the source expect their
 *   stream to exist unless given `ensureStream`: streams (retention, limits, replicas) are
 *   usually infrastructure someone owns.
 *
 * Scaling out: one producer, the broker, and a group of consumer processes sharing a durable.
 *
 * @example
 * ```ts
 * // producer.ts
 * import { connect } from '@nats-io/transport-node';
 * import { Queue, RetryingSink, Breaker } from 'eventsinks';
 * import { JetStreamSink, ensureStream } from 'eventsinks/nats';
 *
 * const connection = await connect({ servers: 'nats:4222', maxReconnectAttempts: -1 });
 * await ensureStream(connection, { name: 'ORDERS', subjects: ['orders.>'] });
 * await ensureStream(connection, { name: 'ORDERS_DLQ', subjects: ['dlq.orders'] });
 * const sink = new JetStreamSink<Order>({
 *   connection,
 *   subject: (order) => `orders.${order.region}`,
 *   msgId: (order) => order.id, // a retried publish is stored once
 *   maxInFlight: 64,
 * });
 * // Retry through broker restarts; the Queue keeps the caller from waiting on the broker.
 * const orders = new Queue(new RetryingSink(sink, new Breaker(1, 500)));
 * orders.write({ id: 'o-1', region: 'eu', total: 42 });
 *
 * // worker.ts: start as many as needed; they share the durable 'billing'.
 * import { JetStreamSource } from 'eventsinks/nats';
 *
 * const source = new JetStreamSource<Order>(billingSink, {
 *   servers: 'nats:4222',
 *   stream: 'ORDERS',
 *   durable: 'billing',
 *   concurrency: 8,
 *   maxDeliveries: 5,
 *   deadLetterSubject: 'dlq.orders',
 * });
 * await source.start();
 * process.once('SIGTERM', () => void source.close({ signal: AbortSignal.timeout(10_000) }));
 * ```
 *
 * @packageDocumentation
 */
export type { NatsConnectionOptions } from './connection.js';
export { ensureStream } from './ensureStream.js';
export type { StreamSpec } from './ensureStream.js';
export {
  JetStreamDecodeError,
  JetStreamPublishError,
  isJetStreamDecodeError,
  isJetStreamPublishError,
} from './errors.js';
export type { JetStreamPublishFailure } from './errors.js';
export { JetStreamSink } from './JetStreamSink.js';
export type { JetStreamSinkOptions, JetStreamSinkStats } from './JetStreamSink.js';
export { DEAD_LETTER_HEADERS, JetStreamSource } from './JetStreamSource.js';
export type {
  JetStreamDeadLetter,
  JetStreamDeadLetterReason,
  JetStreamSourceOptions,
  JetStreamSourceStats,
} from './JetStreamSource.js';
