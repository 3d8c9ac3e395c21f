// eventsinks/redis: Redis Streams sink and source on node-redis (an optional peer dependency).
export { RedisStreamSink } from './RedisStreamSink.js';
export type { RedisStreamSinkOptions } from './RedisStreamSink.js';
export { RedisStreamSource } from './RedisStreamSource.js';
export type { RedisDeadLetter, RedisStreamSourceOptions } from './RedisStreamSource.js';
export type { RedisStreamClient } from './client.js';
export {
  RedisStreamDecodeError,
  RedisStreamPublishError,
  isRedisStreamDecodeError,
  isRedisStreamPublishError,
} from './errors.js';
export type { RedisStreamPublishFailure } from './errors.js';
