// eventsinks/http: webhooks. HttpSink sends events with the runtime's own fetch; Endpoint is
// the registry's composition around it; signing and verification follow Standard Webhooks.
export { HttpSink } from './HttpSink.js';
export type { HttpSinkOptions, EncodedBody, WebhookSigning } from './HttpSink.js';
export { Endpoint } from './Endpoint.js';
export type { EndpointOptions, EndpointMetrics, EndpointBatchOptions } from './Endpoint.js';
export { WebhookSink } from './WebhookSink.js';
export type { WebhookSinkOptions } from './WebhookSink.js';
export { httpRetryStrategy } from './httpRetryStrategy.js';
export type { HttpRetryStrategyOptions } from './httpRetryStrategy.js';
export {
  signWebhook,
  signWebhookAll,
  verifyWebhook,
  DEFAULT_WEBHOOK_TOLERANCE,
} from './signing.js';
export type {
  VerifyWebhookOptions,
  VerifiedWebhook,
  WebhookBody,
  WebhookHeaders,
} from './signing.js';
export {
  HttpStatusError,
  isHttpStatusError,
  HttpTransportError,
  isHttpTransportError,
  HttpEncodeError,
  isHttpEncodeError,
  WebhookVerificationError,
  isWebhookVerificationError,
  isRetryableStatus,
} from './errors.js';
export type {
  HttpStatusErrorDetails,
  HttpPublishFailure,
  WebhookVerificationReason,
} from './errors.js';
