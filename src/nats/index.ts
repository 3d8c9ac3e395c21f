// eventsinks/nats: NATS JetStream adapters. Needs the optional peers @nats-io/transport-node and
// @nats-io/jetstream (v3).
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
