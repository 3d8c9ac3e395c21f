// The relay's configuration schema (zod 4). relay.schema.json is generated from it
// (`npm run schema`), so editors can validate and complete a relay.yaml.
import * as z from 'zod';
import { DURATION_UNITS, SIZE_UNITS, parseDuration, parseSize } from './units.js';

// The JSON Schema's pattern for editors; the check itself is parseDuration (units.ts), the same
// grammar as the command line's `--since`.
const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?(ms|s|m|h|d)\\s*$';
const SIZE_PATTERN =
  '^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kK][bB]|[kK][iI][bB]|[mM][bB]|[mM][iI][bB]|[gG][bB]|[gG][iI][bB])?\\s*$';

/** A duration with a unit (`500ms`, `30s`, `5m`, `1h`, `1d`), parsed to milliseconds. */
const duration = z
  .string({
    error: (issue) =>
      typeof issue.input === 'number'
        ? `a bare number is not a duration: write it with a unit, e.g. "${issue.input}s" or "${issue.input}ms"`
        : 'expected a duration with a unit, e.g. "500ms", "30s", "5m"',
  })
  .regex(new RegExp(DURATION_PATTERN), {
    error: (issue) =>
      `expected a duration with a unit (${DURATION_UNITS}), e.g. "30s" or "1d"; got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => parseDuration(text)!);

/** A size in bytes, with an optional unit (`512kb`, `1MiB`). */
const sizeError = (issue: { input?: unknown }): string =>
  `expected a size in bytes, or a number with a unit (${SIZE_UNITS}), e.g. 1048576, "512kb" or "1MiB"; got ${JSON.stringify(issue.input)}`;
const size = z
  .union(
    [
      z.int({ error: sizeError }).positive({ error: sizeError }),
      z.string().regex(new RegExp(SIZE_PATTERN), { error: sizeError }),
    ],
    { error: sizeError },
  )
  .transform((value) => (typeof value === 'number' ? value : parseSize(value)!));

/** `50/s`, `3000/m`, `10000/h`: requests per interval, for a token bucket. */
const RATE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*/\\s*(s|m|h)\\s*$';
const RATE_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };
const rateLimit = z
  .string({ error: 'expected a rate such as "50/s", "3000/m" or "10000/h"' })
  .regex(new RegExp(RATE_PATTERN), {
    error: (issue) =>
      `expected a rate such as "50/s", "3000/m" or "10000/h"; got ${JSON.stringify(issue.input)}`,
  })
  .transform((text, ctx) => {
    const [count, unit] = text.replace(/\s+/g, '').split('/') as [string, string];
    const perSecond = (Number(count) * 1000) / RATE_MS[unit]!;
    if (!(perSecond > 0)) {
      ctx.addIssue({
        code: 'custom',
        message: `a rate of ${text} sends nothing: use a rate above 0`,
      });
      return z.NEVER;
    }
    return { perSecond, text: text.trim() };
  });

/** A field path with dots for nesting (`customer.id`). */
const fieldPath = z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, {
  error: (issue) =>
    `expected a field path such as "customer.id" (names joined by dots); got ${JSON.stringify(issue.input)}`,
});

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, {
  error: 'expected a name of letters, digits, "-" and "_" (at most 64)',
});

const eventTypePattern = z.string().min(1, {
  error: 'expected an event type pattern such as "order.created" or "order.*"',
});

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
/** Field path (dots for nesting) → the value, or any of the values, it must have. */
const fieldMatch = z.record(z.string().min(1), z.union([scalar, z.array(scalar)]));

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, {
    error: 'expected host:port, e.g. "127.0.0.1:8080"',
  })
  .refine((text) => Number(text.slice(text.lastIndexOf(':') + 1)) <= 65535, {
    error: (issue) =>
      `port out of range in ${JSON.stringify(issue.input)}: expected 1 to 65535 (or 0 for any free port)`,
  });

const retry = z
  .strictObject({
    /** Attempts before an event goes to the dead letter. */
    maxAttempts: z.int().min(1).default(10),
    /** Exponential backoff with full jitter between attempts. */
    backoff: z
      .strictObject({
        base: duration.prefault('500ms'),
        factor: duration.prefault('500ms'),
        max: duration.prefault('30s'),
      })
      .prefault({})
      .refine((backoff) => backoff.base <= backoff.max, {
        error: (issue) => {
          const { base, max } = issue.input as { base: number; max: number };
          return `base (${base} ms) is above max (${max} ms): every wait would be cut to max; lower base or raise max`;
        },
        path: ['base'],
      }),
  })
  .prefault({});

const batch = z.strictObject({
  maxSize: z.int().min(1).max(10_000),
  maxDelay: duration,
});

/** Requests in flight at once, per destination. */
const concurrency = (fallback: number) => z.int().min(1).max(4096).default(fallback);

const common = {
  name,
  /**
   * Events with the same value of this field are delivered one at a time, in ingest order;
   * different values go in parallel up to `concurrency`. Without it, no order is promised.
   */
  orderingKey: fieldPath.optional(),
  /** At most this many requests per second (`50/s`), per minute (`3000/m`) or hour. */
  rateLimit: rateLimit.optional(),
  /**
   * A destination that fails for this long without a single success is disabled: its events
   * stay stored until it is enabled again (`POST /admin/destinations/{name}/enable`).
   */
  disableAfter: duration.optional(),
  /** A disabled destination keeps its events on disk until it is enabled again. */
  enabled: z.boolean().default(true),
  match: fieldMatch.optional(),
  ignore: fieldMatch.optional(),
  /**
   * Only events whose type (the relay-wide `eventTypeField`, `type` by default) matches one of
   * these patterns; `*` stands for any run of characters (`order.*`). An event without a
   * string type is not taken. Combined with `match`/`ignore` (all must pass).
   */
  eventTypes: z.array(eventTypePattern).min(1).optional(),
  retry,
  batch: batch.optional(),
  /**
   * Events that may wait for this destination (stored, not yet delivered). Beyond it, `whenFull`
   * decides: backpressure instead of an unbounded backlog on disk.
   */
  maxPending: z.int().min(1).default(1_000_000),
  /**
   * When `maxPending` would be exceeded: `reject` (the request is answered 503 with Retry-After
   * and nothing of it is stored anywhere) or `dead-letter` (the oldest waiting events go to the
   * dead letter with reason `overflow`, to make room).
   */
  whenFull: z.enum(['reject', 'dead-letter']).default('reject'),
};

/** A Standard Webhooks secret. The messages never show the value: it is a secret. */
const whsec = z
  .string({ error: 'expected a Standard Webhooks secret: "whsec_" followed by base64' })
  .regex(/^whsec_[A-Za-z0-9+/=]+$/, {
    error: 'expected a Standard Webhooks secret: "whsec_" followed by base64',
  });

/**
 * An instant with its time zone (`2026-12-03T12:00:00Z`, `…+01:00`): a time without one would
 * mean a different instant on each relay's machine.
 */
const instant = z.iso.datetime({
  offset: true,
  error: (issue) =>
    `expected an ISO-8601 date and time with a time zone, e.g. "2026-12-03T12:00:00Z"; got ${JSON.stringify(issue.input)}`,
});

/**
 * Standard Webhooks signing. `secret` signs always; each of `secrets` signs until its
 * `expiresAt` (for ever without one). Every secret still signing gives one signature, so
 * during a rotation receivers holding either the old or the new secret verify every request.
 */
const signing = z
  .strictObject({
    secret: whsec.optional(),
    secrets: z.array(z.strictObject({ secret: whsec, expiresAt: instant.optional() })).optional(),
  })
  .refine((value) => value.secret !== undefined || (value.secrets?.length ?? 0) > 0, {
    error:
      'expected `secret` or a non-empty `secrets` list: a signing without a secret signs nothing',
  });

const webhookDestination = z.strictObject({
  type: z.literal('webhook'),
  ...common,
  // Receivers answer in 50–500 ms: one request at a time would be 2–20 events/s.
  concurrency: concurrency(16),
  url: httpUrl,
  method: z.enum(['POST', 'PUT', 'PATCH']).default('POST'),
  headers: z.record(z.string(), z.string()).default({}),
  timeout: duration.prefault('5s'),
  signing: signing.optional(),
  followRedirects: z.boolean().default(false),
  maxRetryAfter: duration.prefault('5m'),
});

// One stream or file: writes are appended in turn, more in flight would only reorder them.
const stdoutDestination = z.strictObject({
  type: z.literal('stdout'),
  ...common,
  concurrency: concurrency(1),
});

const fileDestination = z.strictObject({
  type: z.literal('file'),
  ...common,
  concurrency: concurrency(1),
  path: z.string().min(1),
});

const redisDestination = z.strictObject({
  type: z.literal('redis'),
  ...common,
  // Broker clients pipeline publishes on one connection: 16 in flight hides the round trip.
  concurrency: concurrency(16),
  url: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  stream: z.string().min(1),
  maxLen: z.int().positive().optional(),
});

const natsDestination = z.strictObject({
  type: z.literal('nats'),
  ...common,
  // Broker clients pipeline publishes on one connection: 16 in flight hides the round trip.
  concurrency: concurrency(16),
  servers: z.union([z.string(), z.array(z.string())]).default('127.0.0.1:4222'),
  subject: z.string().min(1),
});

const amqpDestination = z.strictObject({
  type: z.literal('amqp'),
  ...common,
  // Broker clients pipeline publishes on one connection: 16 in flight hides the round trip.
  concurrency: concurrency(16),
  url: z.url({ protocol: /^amqps?$/ }).default('amqp://guest:guest@127.0.0.1:5672'),
  queue: z.string().min(1),
});

/**
 * One destination, as the file's `destinations` list and the admin API's
 * `POST /admin/destinations` take it (one schema, the same messages).
 */
export const destinationSchema = z.discriminatedUnion('type', [
  webhookDestination,
  stdoutDestination,
  fileDestination,
  redisDestination,
  natsDestination,
  amqpDestination,
]);

const httpSource = z.strictObject({
  type: z.literal('http'),
  path: z.string().startsWith('/').default('/events'),
  maxBodySize: size.prefault('1MiB'),
  /** At most this many events in one request; more is answered 413. */
  maxEvents: z.int().min(1).default(10_000),
  /** Bearer token required on ingest and admin requests. */
  token: z.string().min(1).optional(),
});

const stdinSource = z.strictObject({ type: z.literal('stdin') });

const redisSource = z.strictObject({
  type: z.literal('redis'),
  url: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  stream: z.string().min(1),
  group: z.string().min(1).default('eventsinks-relay'),
});

const natsSource = z.strictObject({
  type: z.literal('nats'),
  servers: z.union([z.string(), z.array(z.string())]).default('127.0.0.1:4222'),
  stream: z.string().min(1),
  subject: z.string().min(1).optional(),
  durable: z.string().min(1).default('eventsinks-relay'),
});

const amqpSource = z.strictObject({
  type: z.literal('amqp'),
  url: z.url({ protocol: /^amqps?$/ }).default('amqp://guest:guest@127.0.0.1:5672'),
  queue: z.string().min(1),
});

const source = z.discriminatedUnion('type', [
  httpSource,
  stdinSource,
  redisSource,
  natsSource,
  amqpSource,
]);

/** The HTTP server: ingest (with an http source), /metrics, /healthz, /readyz, admin. */
const server = z.strictObject({ listen: hostPort.default('127.0.0.1:8080') }).prefault({});
/**
 * OpenTelemetry (src/telemetry.ts): where a W3C `traceparent` may come from besides the http
 * source's header, and the OTLP/HTTP collector that spans and metrics go to.
 */
const telemetry = z
  .strictObject({
    /** A field path of the event holding its `traceparent`; preferred to the request's header. */
    traceparentField: fieldPath.optional(),
    /** Export traces and metrics over OTLP/HTTP (needs the optional @opentelemetry packages). */
    otlp: z
      .strictObject({
        /** The collector's base URL, e.g. `http://127.0.0.1:4318`; `/v1/traces` and `/v1/metrics` are appended. */
        endpoint: httpUrl,
        /** Headers sent with every export (e.g. an API key). */
        headers: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
  })
  .prefault({});

/** Where each destination's durable queue and dead letters live. */
const dataDir = z.string().min(1).default('./.eventsinks');
const durability = z.enum(['process', 'power']).default('process');
const store = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('sqlite'), path: z.string().min(1).optional() }),
    /**
     * PostgreSQL shared by any number of relays: any relay ingests, any relay delivers what it
     * has claimed (leases of `leaseTimeout`, taken over when a relay dies).
     */
    z.strictObject({
      type: z.literal('postgres'),
      /** The connection string, `postgres://user@host:5432/db`. */
      url: z.string().min(1),
      /** The Postgres schema holding the tables (created when missing). */
      schema: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a plain SQL identifier, e.g. "eventsinks"')
        .default('eventsinks'),
      /** How long a claimed delivery stays with a relay that neither records nor renews it. */
      leaseTimeout: duration.prefault('30s'),
    }),
  ])
  .prefault({ type: 'sqlite' });

/**
 * The admin API (`/admin/*`) and the dashboard (`/ui`). With `token`, every admin request needs
 * `Authorization: Bearer <token>`, from any address; without it, the http source's `token` is
 * required, and without either the admin API answers only on loopback.
 */
const admin = z
  .strictObject({
    /** Bearer token of the admin API and dashboard (compared in constant time, never logged). */
    token: z.string().min(1).optional(),
  })
  .prefault({});

/** The whole relay configuration. */
export const relayConfigSchema = z
  .strictObject({
    server,
    dataDir,
    durability,
    admin,
    /** The store: the embedded SQLite database `<dataDir>/relay.db` by default. */
    store,
    /**
     * How long every accepted event is kept with its deliveries and attempts once delivered
     * (the message log); `0s` deletes it on delivery. Also the window of `idField` and
     * `Idempotency-Key` deduplication.
     */
    retention: duration.prefault('24h'),
    /**
     * A field path whose value, when an event carries it, is the event's relay id: an id
     * accepted before (within `retention`) is acknowledged again and not stored twice.
     */
    idField: fieldPath.optional(),
    /** The field path of an event's type, which destinations' `eventTypes` match. */
    eventTypeField: fieldPath.default('type'),
    /** On SIGTERM/SIGINT: how long to keep delivering before leaving the rest on disk. */
    drainTimeout: duration.prefault('20s'),
    /** Tracing and metrics with OpenTelemetry: see the relay guide. */
    telemetry,
    log: z
      .strictObject({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info'),
      })
      .prefault({}),
    sources: z.array(source).prefault([{ type: 'http' }]),
    destinations: z
      .array(destinationSchema)
      .min(1)
      .prefault([{ type: 'stdout', name: 'stdout' }]),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.destinations.forEach((d, i) => {
      if (seen.has(d.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['destinations', i, 'name'],
          message: `destination name "${d.name}" is used twice`,
        });
      }
      seen.add(d.name);
    });
    for (const type of ['http', 'stdin'] as const) {
      const indexes = config.sources.flatMap((s, i) => (s.type === type ? [i] : []));
      if (indexes.length > 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', indexes[1]!],
          message: `only one ${type} source is allowed`,
        });
      }
    }
  });

/**
 * The parts of the configuration that the admin commands (`dlq`, `messages`) read: where
 * the relay listens, where its files and store are, the admin token (else the http source's) and
 * the destinations' names.
 * The rest is not checked (nor interpolated) by them: `validate` and `relay` do that.
 */
export const relayAdminSchema = z.looseObject({
  server,
  dataDir,
  durability,
  // For opening the store when no relay runs (`eventsinks messages`, `dlq`).
  store,
  retention: duration.prefault('24h'),
  // The admin token the commands send to a running relay (else the http source's).
  admin,
  sources: z
    .array(z.looseObject({ type: z.string(), token: z.string().min(1).optional() }))
    .prefault([{ type: 'http' }]),
  destinations: z
    .array(z.looseObject({ name }))
    .min(1)
    .prefault([{ name: 'stdout' }]),
});
/** What {@link relayAdminSchema} yields. */
export type RelayAdminConfig = z.output<typeof relayAdminSchema>;

/**
 * The body of `POST /admin/destinations/{name}/rotate-secret`: the new secret (a fresh one when
 * absent) and how long the old ones keep signing (`grace`, default 24 h), both optional.
 */
export const rotateSecretRequestSchema = z.strictObject({
  secret: whsec.optional(),
  grace: duration.prefault('24h'),
});
/** What {@link rotateSecretRequestSchema} yields: `grace` in ms. */
export type RotateSecretRequest = z.output<typeof rotateSecretRequestSchema>;

/** The configuration after validation: durations in ms, sizes in bytes, defaults filled in. */
export type RelayConfig = z.output<typeof relayConfigSchema>;
/** One destination's configuration. */
export type DestinationConfig = RelayConfig['destinations'][number];
/** One source's configuration. */
export type SourceConfig = RelayConfig['sources'][number];
/** A webhook destination's `signing`: its secrets, with their expiry as ISO-8601 text. */
export type SigningConfig = z.output<typeof signing>;
/** A `match`/`ignore` filter. */
export type FieldMatch = z.output<typeof fieldMatch>;

/** A duration with a unit (`30s`, `24h`), parsed to milliseconds. */
export const durationSchema = duration;

/** The JSON Schema of the configuration file (its input form: durations as strings). */
export function relayJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(relayConfigSchema, { io: 'input', unrepresentable: 'any' });
}
