// The admin API's answers and request bodies as zod schemas: the one source of the types that
// admin.ts answers with, that the dashboard (ui/api.ts) and the tests read, and of the OpenAPI
// document (openapi.ts). Request bodies reuse the configuration file's schema (schema.ts), so
// the API and the file accept the same destinations. Browser code imports this module's types
// only (`import type`), so it must not depend on Node.
import * as z from 'zod';
import { destinationSchema, durationSchema } from './schema.js';

/** What {@link adminSchemas} registers each schema with: its OpenAPI component name. */
export interface AdminSchemaMeta {
  /** The name under `components.schemas`. */
  id: string;
  description?: string;
}

/**
 * Every named schema of the admin API, by OpenAPI component name (openapi.ts turns it into
 * `components.schemas`).
 */
export const adminSchemas = z.registry<AdminSchemaMeta>();

function named<T extends z.ZodType>(schema: T, id: string, description: string): T {
  // z.toJSONSchema takes ids from this registry but descriptions from the global one (`meta`),
  // which gets no id: relay.schema.json, made from the global one, stays free of these names.
  const described = schema.meta({ description });
  adminSchemas.add(described, { id, description });
  return described;
}

const isoTime = z.string().meta({ format: 'date-time' });
const count = z.int().min(0);

/** `{error}` of every answer that is not a success; `problems` when a body is invalid. */
export const errorSchema = named(
  z.object({
    error: z.string().meta({ description: 'What was wrong, naming the bad value.' }),
    problems: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'Each problem of an invalid body or file, `path: message`.' }),
  }),
  'Error',
  'A failed request: what was wrong, naming the bad field or value.',
);
/** {@link errorSchema}'s type. */
export type ErrorJson = z.infer<typeof errorSchema>;

/** A destination's state. */
export const destinationStateSchema = named(
  z.enum(['healthy', 'failing', 'disabled']),
  'DestinationState',
  '`failing`: its last attempt failed; `disabled`: by an operator or `disableAfter`.',
);

/** A destination's counters as the delivery engine reports them. */
export const destinationStatusSchema = named(
  z.object({
    name: z.string(),
    type: z.string(),
    state: destinationStateSchema,
    pending: count,
    inFlight: count,
    delivered: count,
    failed: count,
    deadLetters: count,
    lastError: z.string().nullable(),
    lastSuccessAt: isoTime.nullable(),
  }),
  'DestinationStatus',
  'A running destination: its state and counters (times ISO 8601).',
);
/** One destination's status (the answer of enable/disable). */
export type DestinationStatus = z.infer<typeof destinationStatusSchema>;

/** A destination as `GET /admin/destinations` lists it: its status and where it comes from. */
export const destinationItemSchema = named(
  destinationStatusSchema.extend({
    origin: z.enum(['file', 'api']).meta({
      description: '`file`: declared in the configuration file (the API may only disable it).',
    }),
    eventTypes: z.array(z.string()).nullable(),
  }),
  'Destination',
  'A destination in the list: its status, origin and event types (null: every event).',
);
/** {@link destinationItemSchema}'s type. */
export type DestinationItemJson = z.infer<typeof destinationItemSchema>;

/** `GET /admin/destinations`. */
export const destinationListSchema = named(
  z.object({ items: z.array(destinationItemSchema) }),
  'DestinationList',
  'Every destination, file and API ones.',
);
/** {@link destinationListSchema}'s type. */
export type DestinationListJson = z.infer<typeof destinationListSchema>;

/** `GET /admin/destinations/{name}` and the answer of create, replace and patch. */
export const destinationDetailSchema = named(
  destinationItemSchema.extend({
    version: z.int().min(1).nullable().meta({
      description: 'The API destination version (for concurrent changes); null for file ones.',
    }),
    config: z.looseObject({ name: z.string(), type: z.string() }).meta({
      description:
        'The destination as given (input form), every secret redacted to "whsec_…" and its last 4 characters.',
    }),
  }),
  'DestinationDetail',
  'One destination: its status and its configuration with secrets redacted.',
);
/** {@link destinationDetailSchema}'s type. */
export type DestinationDetailJson = z.infer<typeof destinationDetailSchema>;

/** The body of `POST /admin/destinations` and `PUT /admin/destinations/{name}`. */
export const destinationInputSchema = named(
  destinationSchema,
  'DestinationInput',
  'A destination exactly as in the configuration file (the same validation).',
);

/** The body of `PATCH /admin/destinations/{name}`: an RFC 7386 merge patch of the input. */
export const destinationPatchSchema = named(
  z.record(z.string(), z.unknown()),
  'DestinationPatch',
  'A JSON merge patch (RFC 7386) of the destination input; `null` removes a field. A `signing` left out keeps the stored secrets.',
);

/** The body of `POST /admin/destinations/{name}/rotate-secret` (optional). */
export const rotateSecretRequestSchema = named(
  z.object({
    secret: z
      .string()
      .regex(/^whsec_[A-Za-z0-9+/=]+$/)
      .optional()
      .meta({ description: 'The new secret; a random one when left out.' }),
    grace: durationSchema.optional().meta({
      description: 'How long the old secrets keep signing, e.g. "24h" (the default).',
    }),
  }),
  'RotateSecretRequest',
  'A new signing secret and how long the previous ones keep signing alongside it.',
);

/** The answer of `POST /admin/destinations/{name}/rotate-secret`. */
export const rotateSecretAnswerSchema = named(
  z.object({
    secret: z.string().meta({ description: 'The new secret: shown this once.' }),
    previous: z.array(z.object({ expiresAt: isoTime })),
  }),
  'RotateSecretAnswer',
  'The new secret and when each previous one stops signing.',
);
/** {@link rotateSecretAnswerSchema}'s type. */
export type RotateSecretAnswer = z.infer<typeof rotateSecretAnswerSchema>;

/** The answer of `POST /admin/reload`. */
export const reloadAnswerSchema = named(
  z.object({
    added: z.array(z.string()),
    changed: z.array(z.string()),
    removed: z.array(z.string()),
    unchanged: count,
  }),
  'ReloadAnswer',
  'The file destinations the reload added, changed and removed (names), and how many stayed.',
);
/** {@link reloadAnswerSchema}'s type. */
export type ReloadAnswer = z.infer<typeof reloadAnswerSchema>;

/** A delivery's status in the message log. */
export const deliveryStatusSchema = named(
  z.enum(['pending', 'delivered', 'dead']),
  'DeliveryStatus',
  "A delivery's status in the message log.",
);
/** {@link deliveryStatusSchema}'s type. */
export type DeliveryStatusJson = z.infer<typeof deliveryStatusSchema>;

/** One line of `GET /admin/messages`. */
export const messageSummarySchema = named(
  z.object({
    id: z.string(),
    receivedAt: isoTime,
    source: z.string(),
    deliveries: z.array(
      z.object({ destination: z.string(), status: deliveryStatusSchema, attempts: count }),
    ),
  }),
  'MessageSummary',
  'A message of the log and the status of each of its deliveries.',
);
/** {@link messageSummarySchema}'s type. */
export type MessageSummaryJson = z.infer<typeof messageSummarySchema>;

/** `GET /admin/messages`. */
export const messagePageSchema = named(
  z.object({
    items: z.array(messageSummarySchema),
    next: z.string().nullable().meta({ description: 'The `cursor` of the next page.' }),
  }),
  'MessagePage',
  'A page of the message log, newest first.',
);
/** {@link messagePageSchema}'s type. */
export type MessagePageJson = z.infer<typeof messagePageSchema>;

/** An attempt as `GET /admin/messages/{id}` shows it. */
export const attemptSchema = named(
  z.object({
    at: isoTime,
    durationMs: z.number().min(0),
    status: z.int().optional().meta({ description: "The receiver's HTTP status." }),
    error: z.string().optional(),
    response: z.string().optional().meta({ description: "The start of the receiver's answer." }),
    nextAt: isoTime.optional().meta({ description: 'When the next attempt is due.' }),
  }),
  'Attempt',
  'One delivery attempt.',
);
/** {@link attemptSchema}'s type. */
export type AttemptJson = z.infer<typeof attemptSchema>;

/** `GET /admin/messages/{id}`. */
export const messageDetailSchema = named(
  z.object({
    id: z.string(),
    receivedAt: isoTime,
    source: z.string(),
    event: z.record(z.string(), z.unknown()),
    traceparent: z
      .string()
      .optional()
      .meta({ description: 'The W3C traceparent stored with it; absent when it had none.' }),
    deliveries: z.array(
      z.object({
        destination: z.string(),
        status: deliveryStatusSchema,
        attempts: z.array(attemptSchema),
        attemptsOmitted: count.optional().meta({
          description: 'Older attempts left out to keep the answer bounded; absent when none were.',
        }),
      }),
    ),
  }),
  'MessageDetail',
  'A message, its event and the latest attempts of each delivery.',
);
/** {@link messageDetailSchema}'s type. */
export type MessageDetailJson = z.infer<typeof messageDetailSchema>;

/** The answer of `POST /admin/messages/{id}/resend`. */
export const resendAnswerSchema = named(
  z.object({ id: z.string(), destination: z.string() }),
  'ResendAnswer',
  'The message that will be delivered again, and to which destination.',
);
/** {@link resendAnswerSchema}'s type. */
export type ResendAnswer = z.infer<typeof resendAnswerSchema>;

/** An event as the relay keeps it (times in ms since the epoch). */
export const envelopeSchema = named(
  z.object({
    id: z.string(),
    receivedAt: z.number().meta({ description: 'ms since the epoch.' }),
    source: z.string(),
    event: z.record(z.string(), z.unknown()),
  }),
  'Envelope',
  'An accepted event with its relay id.',
);

/** A dead letter as `GET /admin/dlq/{name}` lists it. */
export const deadLetterSchema = named(
  z.object({
    id: z.string(),
    envelope: envelopeSchema,
    error: z.string(),
    reason: z.enum(['overflow']).optional().meta({
      description: '`overflow`: moved there to make room (`whenFull: dead-letter`).',
    }),
    status: z.int().optional(),
    attempts: count,
    firstFailedAt: z.number().meta({ description: 'ms since the epoch.' }),
    deadAt: z.number().meta({ description: 'ms since the epoch.' }),
  }),
  'DeadLetter',
  'A message given up on, with its last error (times in ms since the epoch).',
);
/** {@link deadLetterSchema}'s type. */
export type DeadLetter = z.infer<typeof deadLetterSchema>;

/** `GET /admin/dlq/{name}`: oldest death first. */
export const deadLetterListSchema = named(
  z.array(deadLetterSchema),
  'DeadLetterList',
  "A destination's dead letters, oldest death first.",
);

/** The answer of `POST /admin/dlq/{name}/replay`. */
export const replayAnswerSchema = named(
  z.object({ replayed: count }),
  'ReplayAnswer',
  'How many dead letters went back to pending.',
);

/** `GET /admin/openapi.json`: only its outline (the document describes itself). */
export const openApiDocumentSchema = named(
  z.looseObject({
    openapi: z.string(),
    info: z.looseObject({ title: z.string(), version: z.string() }),
    paths: z.record(z.string(), z.unknown()),
  }),
  'OpenApiDocument',
  'This OpenAPI 3.1 document.',
);
