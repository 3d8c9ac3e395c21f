// The public surface of eventsinks, in one screen. Adapters live behind their own subpaths.
export type { Sink, CloseOptions } from './Sink.js';
export { Broadcaster } from './Broadcaster.js';
export type { BroadcasterOptions } from './Broadcaster.js';
export { Channel } from './Channel.js';
export { Queue } from './Queue.js';
export type { QueueOptions, OverflowPolicy, DropReason } from './Queue.js';
export { RetryingSink } from './RetryingSink.js';
export type { RetryingSinkOptions, DeadLetter } from './RetryingSink.js';
export { Filter } from './Filter.js';
export { TimeoutSink } from './TimeoutSink.js';
export type { TimeoutSinkOptions } from './TimeoutSink.js';
export { BatchingSink } from './BatchingSink.js';
export type { BatchingSinkOptions } from './BatchingSink.js';
export { MapSink } from './MapSink.js';
export { UnbatchingSink } from './UnbatchingSink.js';
export { MeteredSink } from './MeteredSink.js';
export type { MeteredSinkOptions } from './MeteredSink.js';
export { SinkMetrics } from './SinkMetrics.js';
export type { SinkMetricsSnapshot } from './SinkMetrics.js';
export { toWritableStream, pipeFrom } from './streams.js';
export type {
  WritableStreamOptions,
  PipeFromOptions,
  WebWritableStream,
  WebWritableStreamWriter,
  WebReadableStream,
  WebStreamPipeOptions,
} from './streams.js';
export type { Matcher } from './Filter.js';
export type { RetryContext, RetryStrategy } from './retry/RetryStrategy.js';
export { Breaker } from './retry/Breaker.js';
export type { BreakerOptions } from './retry/Breaker.js';
export { ExponentialBackoff, DEFAULT_EXPONENTIAL_BACKOFF } from './retry/ExponentialBackoff.js';
export type {
  ExponentialBackoffConfig,
  ExponentialBackoffOptions,
} from './retry/ExponentialBackoff.js';
export { maxAttempts } from './retry/maxAttempts.js';
export { SinkClosedError, isSinkClosedError } from './errors/SinkClosedError.js';
export { QueueFullError, isQueueFullError } from './errors/QueueFullError.js';
export { SinkTimeoutError, isSinkTimeoutError } from './errors/SinkTimeoutError.js';
export type { PublishError } from './errors/PublishError.js';
export { isPublishError } from './errors/PublishError.js';
export type { MessageHeaders } from './internal/headers.js';
