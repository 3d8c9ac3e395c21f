// eventsinks/amqp: RabbitMQ (AMQP 0-9-1) adapters on amqplib, an optional peer dependency.
export { AmqpSink } from './AmqpSink.js';
export type { AmqpSinkOptions } from './AmqpSink.js';
export { AmqpSource, ATTEMPTS_HEADER, REASON_HEADER } from './AmqpSource.js';
export type { AmqpSourceOptions, AmqpQueueType, AmqpDeadLetter } from './AmqpSource.js';
export type { AmqpConnectionOptions } from './connection.js';
export type { AmqpPublishFailure } from './errors.js';
export {
  AmqpPublishError,
  isAmqpPublishError,
  AmqpConnectionError,
  isAmqpConnectionError,
  AmqpNackError,
  isAmqpNackError,
  AmqpTimeoutError,
  isAmqpTimeoutError,
  AmqpUnroutableError,
  isAmqpUnroutableError,
  AmqpDecodeError,
  isAmqpDecodeError,
} from './errors.js';
