// The OpenAPI 3.1 document of the admin API, generated from the zod schemas of adminSchemas.ts
// (z.toJSONSchema) and the table of operations below: nothing of it is written as JSON by hand.
// Served at GET /admin/openapi.json (server.ts) and committed as packages/relay/openapi.json
// (`npm run schema`); test/openapi.test.ts calls every operation of a running relay against it.
import { readFileSync } from 'node:fs';
import * as z from 'zod';
import {
  adminSchemas,
  deadLetterListSchema,
  destinationDetailSchema,
  destinationInputSchema,
  destinationListSchema,
  destinationPatchSchema,
  destinationItemSchema,
  errorSchema,
  messageDetailSchema,
  messagePageSchema,
  openApiDocumentSchema,
  reloadAnswerSchema,
  replayAnswerSchema,
  resendAnswerSchema,
  rotateSecretAnswerSchema,
  rotateSecretRequestSchema,
} from './adminSchemas.js';
import { MAX_LIMIT } from './admin.js';

/** An HTTP method of the admin API, as OpenAPI spells it. */
export type OperationMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One documented answer of an operation. */
export interface OperationResponse {
  description: string;
  /** The body's schema (one of adminSchemas.ts); none for a 204. */
  schema?: z.ZodType;
  /** Headers the answer carries, name → description. */
  headers?: Record<string, string>;
}

/** A query parameter of an operation. */
export interface QueryParameter {
  name: string;
  description: string;
  schema: z.ZodType;
  required?: boolean;
}

/** One operation of the admin API: what the document says of `method path`. */
export interface AdminOperation {
  method: OperationMethod;
  /** The path template, `{name}` for a path parameter. */
  path: string;
  operationId: string;
  summary: string;
  tag: 'destinations' | 'messages' | 'dead letters' | 'relay';
  query?: QueryParameter[];
  /** The request body's schema, and whether a body is required. */
  body?: { schema: z.ZodType; required: boolean; contentTypes?: string[] };
  /** Status code → answer. */
  responses: Record<number, OperationResponse>;
}

const error = (description: string): OperationResponse => ({ description, schema: errorSchema });
const unauthorized = error(
  'Missing or wrong bearer token (admin.token, else the http source token; none needed on loopback when neither is set).',
);
const stopping = error('The relay is stopping (retry-after 5).');
const noDestination = error('No destination of that name.');
const fileDestination = error(
  'The destination is declared in the configuration file: change it there (or disable it over the API).',
);
const badBody = error(
  'The body is not a valid destination: `problems` lists each `path: message`.',
);

const limit = (fallback: number): QueryParameter => ({
  name: 'limit',
  description: `At most this many items (default ${fallback}).`,
  schema: z.int().min(1).max(MAX_LIMIT),
});
const since: QueryParameter = {
  name: 'since',
  description: 'An ISO date, ms since the epoch, or a duration back from now such as `1h`.',
  schema: z.string(),
};

/** Every operation of the admin API, in the document's order. */
export const ADMIN_OPERATIONS: readonly AdminOperation[] = [
  {
    method: 'get',
    path: '/admin/destinations',
    operationId: 'listDestinations',
    summary: 'Every destination (file and API ones) with its status',
    tag: 'destinations',
    responses: {
      200: { description: 'The destinations.', schema: destinationListSchema },
      401: unauthorized,
      503: stopping,
    },
  },
  {
    method: 'post',
    path: '/admin/destinations',
    operationId: 'createDestination',
    summary: 'Add a destination, effective at once (stored, seen by every relay of the store)',
    tag: 'destinations',
    body: { schema: destinationInputSchema, required: true },
    responses: {
      201: {
        description: 'Created.',
        schema: destinationDetailSchema,
        headers: { location: 'The new destination: /admin/destinations/{name}.' },
      },
      400: badBody,
      401: unauthorized,
      409: error('A destination of that name exists (in the file or over the API).'),
      503: stopping,
    },
  },
  {
    method: 'get',
    path: '/admin/destinations/{name}',
    operationId: 'getDestination',
    summary: 'One destination: status, origin, version and configuration (secrets redacted)',
    tag: 'destinations',
    responses: {
      200: { description: 'The destination.', schema: destinationDetailSchema },
      401: unauthorized,
      404: noDestination,
      503: stopping,
    },
  },
  {
    method: 'put',
    path: '/admin/destinations/{name}',
    operationId: 'replaceDestination',
    summary: 'Replace an API destination (its `name`, if given, must be the path one)',
    tag: 'destinations',
    body: { schema: destinationInputSchema, required: true },
    responses: {
      200: { description: 'Replaced.', schema: destinationDetailSchema },
      400: badBody,
      401: unauthorized,
      404: noDestination,
      409: fileDestination,
      503: stopping,
    },
  },
  {
    method: 'patch',
    path: '/admin/destinations/{name}',
    operationId: 'patchDestination',
    summary: 'Change part of an API destination (JSON merge patch)',
    tag: 'destinations',
    body: {
      schema: destinationPatchSchema,
      required: true,
      contentTypes: ['application/merge-patch+json', 'application/json'],
    },
    responses: {
      200: { description: 'Changed.', schema: destinationDetailSchema },
      400: badBody,
      401: unauthorized,
      404: noDestination,
      409: fileDestination,
      503: stopping,
    },
  },
  {
    method: 'delete',
    path: '/admin/destinations/{name}',
    operationId: 'deleteDestination',
    summary: 'Remove an API destination',
    tag: 'destinations',
    query: [
      {
        name: 'force',
        description:
          'With pending events: `true` moves them to the dead letter (reason `deleted`); without it the answer is 409.',
        schema: z.enum(['true', 'false']),
      },
    ],
    responses: {
      204: { description: 'Removed.' },
      401: unauthorized,
      404: noDestination,
      409: error('Declared in the file, or pending events without `force=true` (their count).'),
      503: stopping,
    },
  },
  ...(['enable', 'disable'] as const).map((action): AdminOperation => ({
    method: 'post',
    path: `/admin/destinations/{name}/${action}`,
    operationId: `${action}Destination`,
    summary:
      action === 'enable'
        ? 'Deliver again (file destinations too)'
        : 'Stop delivering; events stay stored (file destinations too)',
    tag: 'destinations',
    responses: {
      200: { description: 'Its status now.', schema: destinationItemSchema },
      401: unauthorized,
      404: noDestination,
      503: stopping,
    },
  })),
  {
    method: 'post',
    path: '/admin/destinations/{name}/rotate-secret',
    operationId: 'rotateSecret',
    summary:
      'A new signing secret for a webhook; the previous ones keep signing until the grace period ends',
    tag: 'destinations',
    body: { schema: rotateSecretRequestSchema, required: false },
    responses: {
      200: { description: 'The new secret, shown this once.', schema: rotateSecretAnswerSchema },
      400: error('Not a webhook destination, or a bad `secret` or `grace`.'),
      401: unauthorized,
      404: noDestination,
      409: error(
        "Declared in the file: rotate in the file's `signing.secrets` and reload instead.",
      ),
      503: stopping,
    },
  },
  {
    method: 'post',
    path: '/admin/reload',
    operationId: 'reload',
    summary: 'Read the configuration file again (as SIGHUP does)',
    tag: 'relay',
    responses: {
      200: { description: 'What changed.', schema: reloadAnswerSchema },
      400: error('The file is invalid (its `problems`): nothing changed.'),
      401: unauthorized,
      503: stopping,
    },
  },
  {
    method: 'get',
    path: '/admin/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    tag: 'relay',
    responses: {
      200: { description: 'The OpenAPI 3.1 document.', schema: openApiDocumentSchema },
      401: unauthorized,
    },
  },
  {
    method: 'get',
    path: '/admin/messages',
    operationId: 'listMessages',
    summary: 'The message log, newest first, a page at a time',
    tag: 'messages',
    query: [
      { name: 'destination', description: 'Only deliveries to it.', schema: z.string() },
      {
        name: 'status',
        description: 'Only deliveries in this status.',
        schema: z.enum(['pending', 'delivered', 'dead']),
      },
      since,
      limit(100),
      { name: 'cursor', description: 'The `next` of the previous page.', schema: z.string() },
    ],
    responses: {
      200: { description: 'A page.', schema: messagePageSchema },
      400: error('A bad parameter (named, with its value).'),
      401: unauthorized,
      404: noDestination,
      503: stopping,
    },
  },
  {
    method: 'get',
    path: '/admin/messages/{id}',
    operationId: 'getMessage',
    summary: 'A message: its event and the latest 100 attempts of each delivery',
    tag: 'messages',
    responses: {
      200: { description: 'The message.', schema: messageDetailSchema },
      400: error('The id is not a valid path segment.'),
      401: unauthorized,
      404: error('No such message (never stored, or purged after retention).'),
      503: stopping,
    },
  },
  {
    method: 'post',
    path: '/admin/messages/{id}/resend',
    operationId: 'resendMessage',
    summary: 'Deliver a message to a destination again, with the same id',
    tag: 'messages',
    query: [
      {
        name: 'destination',
        description: 'The destination to deliver it to.',
        schema: z.string(),
        required: true,
      },
    ],
    responses: {
      202: { description: 'Queued.', schema: resendAnswerSchema },
      400: error('`destination` missing.'),
      401: unauthorized,
      404: error('No such destination or message.'),
      503: stopping,
    },
  },
  {
    method: 'get',
    path: '/admin/dlq/{name}',
    operationId: 'listDeadLetters',
    summary: "A destination's dead letters, oldest death first",
    tag: 'dead letters',
    query: [limit(1000)],
    responses: {
      200: { description: 'The dead letters.', schema: deadLetterListSchema },
      400: error('A bad `limit`.'),
      401: unauthorized,
      404: noDestination,
      503: stopping,
    },
  },
  {
    method: 'post',
    path: '/admin/dlq/{name}/replay',
    operationId: 'replayDeadLetters',
    summary: 'Dead letters that died since `since` (default: all) back to pending',
    tag: 'dead letters',
    query: [since],
    responses: {
      200: { description: 'How many.', schema: replayAnswerSchema },
      400: error('A bad `since`.'),
      401: unauthorized,
      404: noDestination,
      503: stopping,
    },
  },
];

const PATH_PARAMETERS: Record<string, { description: string }> = {
  name: { description: 'The destination name.' },
  id: { description: 'The message relay id.' },
};

/** The relay's version (its package.json, one directory above src/ and dist/ alike). */
function version(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** `{$ref}` of a registered schema; throws for one that adminSchemas.ts did not name. */
function ref(schema: z.ZodType): { $ref: string } {
  const meta = adminSchemas.get(schema);
  if (!meta) throw new TypeError('an admin API schema without a name in adminSchemas.ts');
  return { $ref: `#/components/schemas/${meta.id}` };
}

/** An inline JSON Schema (a parameter's), without the draft's `$schema`. */
function inline(schema: z.ZodType): Record<string, unknown> {
  const json: Record<string, unknown> = z.toJSONSchema(schema, { io: 'input' });
  delete json.$schema;
  return json;
}

/** Every named schema, as `components.schemas`. */
function components(): Record<string, unknown> {
  // io: 'input' for all: request bodies are the input form (durations as text), and the
  // answers have no transforms, so this leaves them open to new fields (no
  // `additionalProperties: false`), which clients should expect of a growing API.
  const { schemas } = z.toJSONSchema(adminSchemas, {
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  const out: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))) {
    // Each is a part of this document, not a document of its own.
    const part: Record<string, unknown> = { ...schema };
    delete part.$schema;
    delete part.$id;
    out[id] = part;
  }
  return out;
}

function operation(op: AdminOperation): Record<string, unknown> {
  const parameters = [
    ...[...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      description: PATH_PARAMETERS[name!]?.description ?? name,
      schema: { type: 'string' },
    })),
    ...(op.query ?? []).map((q) => ({
      name: q.name,
      in: 'query',
      required: q.required ?? false,
      description: q.description,
      schema: inline(q.schema),
    })),
  ];
  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(op.responses)) {
    responses[status] = {
      description: answer.description,
      ...(answer.headers && {
        headers: Object.fromEntries(
          Object.entries(answer.headers).map(([name, description]) => [
            name,
            { description, schema: { type: 'string' } },
          ]),
        ),
      }),
      ...(answer.schema && { content: { 'application/json': { schema: ref(answer.schema) } } }),
    };
  }
  return {
    operationId: op.operationId,
    summary: op.summary,
    tags: [op.tag],
    ...(parameters.length > 0 && { parameters }),
    ...(op.body && {
      requestBody: {
        required: op.body.required,
        content: Object.fromEntries(
          (op.body.contentTypes ?? ['application/json']).map((type) => [
            type,
            { schema: ref(op.body!.schema) },
          ]),
        ),
      },
    }),
    responses,
  };
}

/**
 * The OpenAPI 3.1 document of the admin API (a new object each call).
 *
 * @example
 * const doc = adminOpenApi();
 * doc.paths['/admin/destinations'].get.responses[200];
 */
export function adminOpenApi(): Record<string, unknown> & {
  paths: Record<string, Record<string, unknown>>;
} {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ADMIN_OPERATIONS) (paths[op.path] ??= {})[op.method] = operation(op);
  return {
    openapi: '3.1.0',
    info: {
      title: 'eventsinks relay admin API',
      version: version(),
      description:
        'Destinations (status, create, change, delete, enable, disable, rotate a signing secret), configuration reload, the message log and dead letters of a running relay. Every request needs the bearer token: admin.token, else the http source token; with neither, the relay answers admin requests on loopback only, without a token.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: 'http://127.0.0.1:8080', description: 'The default server.listen.' }],
    tags: [
      { name: 'destinations' },
      { name: 'messages' },
      { name: 'dead letters' },
      { name: 'relay' },
    ],
    security: [{ bearer: [] }, {}],
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'admin.token, else the http source token.',
        },
      },
      schemas: components(),
    },
  };
}

/** {@link adminOpenApi} as the committed packages/relay/openapi.json: 2-space JSON and a newline. */
export function adminOpenApiText(): string {
  return `${JSON.stringify(adminOpenApi(), null, 2)}\n`;
}
