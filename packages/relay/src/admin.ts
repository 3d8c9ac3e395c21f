// The admin API: destinations (status, enable, disable), the message log (list, show, resend)
// and the dead-letter views of the same log (`eventsinks dlq`). server.ts authenticates the
// request (the token, or loopback without one) before it gets here. Every answer is JSON with
// times as ISO 8601 strings and is bounded in size: lists by `limit` (at most 1000), a
// message's attempts by {@link MAX_ATTEMPTS_SHOWN} per delivery.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isSinkClosedError } from 'eventsinks';
import type {
  Attempt,
  DeliveryStatus,
  MessageDetail,
  MessageSummary,
  Store,
} from './store/Store.js';
import { rotateSecret } from './rotate.js';
import { parseDuration } from './units.js';
import type {
  AttemptJson,
  DeadLetter,
  DestinationStatus,
  MessageDetailJson,
  MessagePageJson,
  MessageSummaryJson,
} from './adminSchemas.js';

// The answers' types are the zod schemas' of adminSchemas.ts (the OpenAPI document's source).
export type {
  AttemptJson,
  DeadLetter,
  DestinationStatus,
  MessageDetailJson,
  MessagePageJson,
  MessageSummaryJson,
} from './adminSchemas.js';
import {
  DestinationInvalidError,
  RegistryError,
  ReloadInvalidError,
  type DestinationRegistry,
  type ReloadOutcome,
} from './registry.js';

/** server.ts's `reply`: writes a JSON (or text) answer; adds `connection: close` while draining. */
export type Reply = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
) => void;

/** What the handler from {@link createAdminHandler} is. */
export type AdminHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  reply: Reply,
) => Promise<void>;

/** What the admin API needs of a running destination (the delivery engine provides it). */
export interface AdminDestination {
  readonly name: string;
  status(): DestinationStatus | Promise<DestinationStatus>;
  enable(): Promise<void>;
  disable(): Promise<void>;
  /** Delivers message `id` again (same id); false when there is no such message. */
  resend(id: string): Promise<boolean>;
  /** Dead letters that died at or after `since` (ms since the epoch) back to pending; how many. */
  replay(since: number): Promise<number>;
}

/** What {@link createAdminHandler} works with. */
export interface AdminContext {
  store: Store;
  destinations: readonly AdminDestination[];
  logger: Logger;
  /**
   * The relay's destinations at runtime: with it, the list and detail show `origin` and
   * `eventTypes`, and destinations can be created, replaced, patched and deleted.
   */
  registry?: DestinationRegistry;
  /** `POST /admin/reload`: re-reads the configuration file (see Relay.reload). */
  reload?: () => Promise<ReloadOutcome>;
}

/** The largest JSON body the admin API reads. */
export const MAX_ADMIN_BODY = 1024 * 1024;

/** The most items one list answer holds (`limit` above it is a 400). */
export const MAX_LIMIT = 1000;
/** `limit` of `GET /admin/messages` when the request has none. */
export const DEFAULT_MESSAGES_LIMIT = 100;
/** `limit` of `GET /admin/dlq/{name}` when the request has none. */
export const DEFAULT_DLQ_LIMIT = 1000;
/** A message's answer shows at most this many attempts per delivery (the latest). */
export const MAX_ATTEMPTS_SHOWN = 100;

const iso = (ms: number): string => new Date(ms).toISOString();

/** A store summary as the API shows it. */
export function summaryJson(message: MessageSummary): MessageSummaryJson {
  return {
    id: message.id,
    receivedAt: iso(message.receivedAt),
    source: message.source,
    deliveries: message.deliveries.map((d) => ({
      destination: d.destination,
      status: d.status,
      attempts: d.attempts,
    })),
  };
}

function attemptJson(attempt: Attempt): AttemptJson {
  const json: AttemptJson = { at: iso(attempt.at), durationMs: attempt.durationMs };
  if (attempt.status !== undefined) json.status = attempt.status;
  if (attempt.error !== undefined) json.error = attempt.error;
  if (attempt.response !== undefined) json.response = attempt.response;
  if (attempt.nextAt !== undefined) json.nextAt = iso(attempt.nextAt);
  return json;
}

/** A store message as the API shows it: the latest {@link MAX_ATTEMPTS_SHOWN} attempts each. */
export function detailJson(message: MessageDetail): MessageDetailJson {
  return {
    id: message.id,
    receivedAt: iso(message.receivedAt),
    source: message.source,
    event: message.event,
    ...(message.traceparent !== undefined ? { traceparent: message.traceparent } : {}),
    deliveries: message.deliveries.map((d) => {
      const omitted = Math.max(0, d.attempts.length - MAX_ATTEMPTS_SHOWN);
      const delivery: MessageDetailJson['deliveries'][number] = {
        destination: d.destination,
        status: d.status,
        attempts: d.attempts.slice(omitted).map(attemptJson),
      };
      if (omitted > 0) delivery.attemptsOmitted = omitted;
      return delivery;
    }),
  };
}

/**
 * The dead letters of `destination`, oldest death first: the newest `limit` dead messages of
 * the log, each with its last attempt's error. Used by the API and by `eventsinks dlq list`
 * when no relay runs.
 */
export async function listDeadLetters(
  store: Store,
  destination: string,
  limit: number,
): Promise<DeadLetter[]> {
  const page = await store.listMessages({ destination, status: 'dead', limit });
  const letters: DeadLetter[] = [];
  // Newest first from the store; reversed so that equal death times stay in ingest order.
  for (const summary of [...page.items].reverse()) {
    const message = await store.getMessage(summary.id);
    // Purged between the two calls (it was resent and delivered meanwhile): no longer dead.
    const delivery = message?.deliveries.find((d) => d.destination === destination);
    if (!message || !delivery || delivery.status !== 'dead') continue;
    letters.push(deadLetter(message, delivery.attempts));
  }
  return letters.sort((a, b) => a.deadAt - b.deadAt);
}

function deadLetter(message: MessageDetail, attempts: readonly Attempt[]): DeadLetter {
  const last = attempts[attempts.length - 1];
  const firstFailed = attempts.find((a) => a.error !== undefined) ?? attempts[0];
  const error = last?.error ?? 'given up (no error recorded)';
  const letter: DeadLetter = {
    id: message.id,
    envelope: {
      id: message.id,
      receivedAt: message.receivedAt,
      source: message.source,
      event: message.event,
    },
    error,
    attempts: attempts.length,
    firstFailedAt: firstFailed?.at ?? message.receivedAt,
    deadAt: last ? last.at + last.durationMs : message.receivedAt,
  };
  // The engine records a move to make room as an attempt whose error starts so.
  if (error.startsWith('overflow')) letter.reason = 'overflow';
  if (last?.status !== undefined) letter.status = last.status;
  return letter;
}

/**
 * Every dead letter of `destination` that died at or after `since` back to pending, through
 * the store (for `eventsinks dlq replay` when no relay runs); how many.
 */
export async function replayDeadLetters(
  store: Store,
  destination: string,
  since: number,
): Promise<number> {
  let replayed = 0;
  for (;;) {
    const moved = await store.replayDead(destination, since, 500);
    replayed += moved.length;
    if (moved.length < 500) return replayed;
  }
}

/**
 * A point in time as the API takes it: an ISO date, ms since the epoch, or a duration back
 * from `now` (`1h`, as in the configuration); undefined when it is none of them.
 */
export function parseSinceParam(text: string, now = Date.now()): number | undefined {
  const value = text.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const ms = parseDuration(value);
  if (ms !== undefined) return now - ms;
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const date = Date.parse(value);
    if (!Number.isNaN(date)) return date;
  }
  return undefined;
}

/** A bad request parameter: answered 400 with this message. */
class BadParameter extends Error {}

function limitParam(url: URL, fallback: number): number {
  const text = url.searchParams.get('limit');
  if (text === null) return fallback;
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_LIMIT) {
    throw new BadParameter(
      `limit: expected a whole number from 1 to ${MAX_LIMIT}, got ${JSON.stringify(text)}`,
    );
  }
  return limit;
}

function sinceParam(url: URL, now: number): number | undefined {
  const text = url.searchParams.get('since');
  if (text === null || text === '') return undefined;
  const since = parseSinceParam(text, now);
  if (since === undefined) {
    throw new BadParameter(
      `since: expected an ISO date, ms since the epoch or a duration such as 1h, got ${JSON.stringify(text)}`,
    );
  }
  return since;
}

const STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'dead'];

function statusParam(url: URL): DeliveryStatus | undefined {
  const text = url.searchParams.get('status');
  if (text === null || text === '') return undefined;
  if (!(STATUSES as readonly string[]).includes(text)) {
    throw new BadParameter(
      `status: expected one of ${STATUSES.join(', ')}, got ${JSON.stringify(text)}`,
    );
  }
  return text as DeliveryStatus;
}

/** Cursors are the store's own; this only keeps a request from carrying an unbounded one. */
const MAX_CURSOR = 512;

function cursorParam(url: URL): string | undefined {
  const text = url.searchParams.get('cursor');
  if (text === null) return undefined;
  if (text === '' || text.length > MAX_CURSOR) {
    throw new BadParameter(
      `cursor: expected the "next" of a previous page, got ${JSON.stringify(text.slice(0, 64))}`,
    );
  }
  return text;
}

function segment(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new BadParameter(`${what}: not a valid percent-encoded path segment: "${text}"`);
  }
}

type Route =
  | { kind: 'destinations' }
  | { kind: 'create' }
  | { kind: 'show'; name: string }
  | { kind: 'replace'; name: string }
  | { kind: 'patch'; name: string }
  | { kind: 'delete'; name: string }
  | { kind: 'destination'; name: string; action: 'enable' | 'disable' }
  | { kind: 'reload' }
  | { kind: 'rotate'; name: string }
  | { kind: 'messages' }
  | { kind: 'message'; id: string }
  | { kind: 'resend'; id: string }
  | { kind: 'dlq'; name: string }
  | { kind: 'replay'; name: string };

type Make = (m: RegExpExecArray) => Route;
const named =
  (kind: 'show' | 'replace' | 'patch' | 'delete'): Make =>
  (m) => ({ kind, name: segment(m[1]!, 'destination') });

const ROUTES: [RegExp, Record<string, Make>][] = [
  [
    /^\/admin\/destinations\/?$/,
    { GET: () => ({ kind: 'destinations' }), POST: () => ({ kind: 'create' }) },
  ],
  [
    /^\/admin\/destinations\/([^/]+)$/,
    {
      GET: named('show'),
      PUT: named('replace'),
      PATCH: named('patch'),
      DELETE: named('delete'),
    },
  ],
  [
    /^\/admin\/destinations\/([^/]+)\/(enable|disable)$/,
    {
      POST: (m) => ({
        kind: 'destination',
        name: segment(m[1]!, 'destination'),
        action: m[2] as 'enable' | 'disable',
      }),
    },
  ],
  [
    /^\/admin\/destinations\/([^/]+)\/rotate-secret$/,
    { POST: (m) => ({ kind: 'rotate', name: segment(m[1]!, 'destination') }) },
  ],
  [/^\/admin\/reload$/, { POST: () => ({ kind: 'reload' }) }],
  [/^\/admin\/messages\/?$/, { GET: () => ({ kind: 'messages' }) }],
  [
    /^\/admin\/messages\/([^/]+)$/,
    { GET: (m) => ({ kind: 'message', id: segment(m[1]!, 'message id') }) },
  ],
  [
    /^\/admin\/messages\/([^/]+)\/resend$/,
    { POST: (m) => ({ kind: 'resend', id: segment(m[1]!, 'message id') }) },
  ],
  [
    /^\/admin\/dlq\/([^/]+)$/,
    { GET: (m) => ({ kind: 'dlq', name: segment(m[1]!, 'destination') }) },
  ],
  [
    /^\/admin\/dlq\/([^/]+)\/replay$/,
    { POST: (m) => ({ kind: 'replay', name: segment(m[1]!, 'destination') }) },
  ],
];

/**
 * The handler's routes, `{method, path}` with `{}` for each path parameter, read off the
 * patterns above (so that test/openapi.test.ts holds the OpenAPI document against what the
 * handler really answers, not against a second list).
 */
export function adminRoutes(): { method: string; path: string }[] {
  return ROUTES.flatMap(([pattern, methods]) =>
    pathTemplates(pattern).flatMap((path) =>
      Object.keys(methods).map((method) => ({ method, path })),
    ),
  );
}

/** `^\/admin\/x\/([^/]+)\/(a|b)$` → `/admin/x/{}/a`, `/admin/x/{}/b`. */
function pathTemplates(pattern: RegExp): string[] {
  const expand = (text: string): string[] => {
    const choice = /\(([\w-]+(?:\|[\w-]+)+)\)/.exec(text);
    if (!choice) return [text];
    return choice[1]!.split('|').flatMap((option) => expand(text.replace(choice[0], option)));
  };
  return expand(
    pattern.source
      .replace(/^\^/, '')
      .replace(/\$$/, '')
      .replace(/\\\/\?$/, '')
      .replaceAll('([^/]+)', '{}')
      .replaceAll('\\/', '/'),
  );
}

/**
 * The request's JSON body (at most {@link MAX_ADMIN_BODY} bytes); with `optional`, undefined
 * for an empty body. A bad body is answered 400 by the admin handler.
 */
export async function jsonBody(req: IncomingMessage, optional = false): Promise<unknown> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Read to the end even past the limit: leaving the loop early would destroy the request,
  // and with it the socket the 400 goes out on.
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size <= MAX_ADMIN_BODY) chunks.push(chunk);
  }
  if (size > MAX_ADMIN_BODY) throw new BadParameter(`body: larger than ${MAX_ADMIN_BODY} bytes`);
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  if (text.trim() === '') {
    if (optional) return undefined;
    throw new BadParameter('body: expected a JSON object, got an empty body');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new BadParameter(`body: not valid JSON (${(error as Error).message})`);
  }
}

function forceParam(url: URL): boolean {
  const text = url.searchParams.get('force');
  if (text === null || text === 'false') return false;
  if (text === 'true' || text === '') return true;
  throw new BadParameter(`force: expected true or false, got ${JSON.stringify(text)}`);
}

/**
 * The admin API's request handler, for server.ts to call with every authenticated `/admin/`
 * request. Answers (never throws, except what server.ts answers with 500): 400 naming a bad
 * parameter and its value, 404 for an unknown route, destination or message, 405 with `allow`
 * for a wrong method, 503 while the store is closing.
 *
 * @example
 * const admin = createAdminHandler({ store, destinations, logger });
 * if (url.pathname.startsWith('/admin/')) return admin(req, res, url, reply);
 */
export function createAdminHandler(context: AdminContext): AdminHandler {
  const log = context.logger.child({ component: 'admin' });
  const byName = (name: string): AdminDestination | undefined =>
    context.destinations.find((d) => d.name === name);
  const names = (): string => context.destinations.map((d) => d.name).join(', ') || 'none';
  const noDestination = (name: string): { error: string } => ({
    error: `no destination named ${JSON.stringify(name)} (have: ${names()})`,
  });

  const registry = (): DestinationRegistry => {
    if (context.registry === undefined)
      throw new BadParameter('destinations cannot be changed here');
    return context.registry;
  };

  async function route(
    found: Route,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    reply: Reply,
  ): Promise<void> {
    switch (found.kind) {
      case 'destinations': {
        const items =
          context.registry !== undefined
            ? context.registry.statuses()
            : await Promise.all(context.destinations.map(async (d) => d.status()));
        return reply(res, 200, { items });
      }
      case 'create': {
        const body = await jsonBody(req);
        const detail = await registry().create(body);
        return reply(res, 201, detail, {
          location: `/admin/destinations/${encodeURIComponent(detail.name)}`,
        });
      }
      case 'show':
        return reply(res, 200, registry().detail(found.name));
      case 'replace':
        return reply(res, 200, await registry().replace(found.name, await jsonBody(req)));
      case 'rotate': {
        const body = await jsonBody(req, true);
        const registered = registry();
        const answer = await rotateSecret(
          {
            origin: (name) => registered.origin(name),
            update: (name, edit) => registered.update(name, edit, 'secret rotated'),
          },
          found.name,
          body,
        );
        return reply(res, answer.status, answer.body);
      }
      case 'patch':
        return reply(res, 200, await registry().patch(found.name, await jsonBody(req)));
      case 'delete': {
        const force = forceParam(url);
        await registry().remove(found.name, force);
        return reply(res, 204, '');
      }
      case 'reload': {
        req.resume();
        if (context.reload === undefined) throw new BadParameter('this relay cannot reload');
        return reply(res, 200, await context.reload());
      }
      case 'destination': {
        const destination = byName(found.name);
        if (!destination) return reply(res, 404, noDestination(found.name));
        if (found.action === 'enable') await destination.enable();
        else await destination.disable();
        log.info({ destination: destination.name }, `destination ${found.action}d by an operator`);
        return reply(
          res,
          200,
          context.registry?.get(destination.name) !== undefined
            ? context.registry.status(destination.name)
            : await destination.status(),
        );
      }
      case 'messages': {
        const limit = limitParam(url, DEFAULT_MESSAGES_LIMIT);
        const status = statusParam(url);
        const since = sinceParam(url, Date.now());
        const cursor = cursorParam(url);
        const name = url.searchParams.get('destination');
        if (name === '') throw new BadParameter('destination: expected a name, got ""');
        if (name !== null && !byName(name)) return reply(res, 404, noDestination(name));
        const page = await context.store.listMessages({
          limit,
          ...(name !== null && { destination: name }),
          ...(status !== undefined && { status }),
          ...(since !== undefined && { since }),
          ...(cursor !== undefined && { cursor }),
        });
        const body: MessagePageJson = { items: page.items.map(summaryJson), next: page.next };
        return reply(res, 200, body);
      }
      case 'message': {
        const message = await context.store.getMessage(found.id);
        if (!message) {
          return reply(res, 404, {
            error: `no message ${JSON.stringify(found.id)} (never stored, or purged after retention)`,
          });
        }
        return reply(res, 200, detailJson(message));
      }
      case 'resend': {
        const name = url.searchParams.get('destination');
        if (name === null || name === '') {
          throw new BadParameter(
            `destination: required (the destination to deliver message ${JSON.stringify(found.id)} to again)`,
          );
        }
        const destination = byName(name);
        if (!destination) return reply(res, 404, noDestination(name));
        if (!(await destination.resend(found.id))) {
          return reply(res, 404, {
            error: `no message ${JSON.stringify(found.id)} (never stored, or purged after retention)`,
          });
        }
        log.info({ destination: name, id: found.id }, 'message resent by an operator');
        return reply(res, 202, { id: found.id, destination: name });
      }
      case 'dlq': {
        const limit = limitParam(url, DEFAULT_DLQ_LIMIT);
        if (!byName(found.name)) return reply(res, 404, noDestination(found.name));
        return reply(res, 200, await listDeadLetters(context.store, found.name, limit));
      }
      case 'replay': {
        const since = sinceParam(url, Date.now()) ?? 0;
        const destination = byName(found.name);
        if (!destination) return reply(res, 404, noDestination(found.name));
        const replayed = await destination.replay(since);
        log.info({ destination: found.name, replayed }, 'replayed dead letters');
        return reply(res, 200, { replayed });
      }
    }
  }

  return async (req, res, url, reply) => {
    try {
      for (const [pattern, methods] of ROUTES) {
        const match = pattern.exec(url.pathname);
        if (!match) continue;
        const make = methods[req.method ?? ''];
        if (make === undefined) {
          req.resume();
          const allow = Object.keys(methods).join(', ');
          return reply(res, 405, { error: `use ${allow} for ${url.pathname}` }, { allow });
        }
        const found = make(match);
        // Only the routes that read a body leave it to be read.
        if (!['create', 'replace', 'patch', 'rotate'].includes(found.kind)) req.resume();
        return await route(found, req, res, url, reply);
      }
      return reply(res, 404, { error: `no admin endpoint ${url.pathname}` });
    } catch (error) {
      if (error instanceof BadParameter) return reply(res, 400, { error: error.message });
      if (error instanceof DestinationInvalidError || error instanceof ReloadInvalidError) {
        return reply(res, 400, { error: error.message, problems: error.problems });
      }
      if (error instanceof RegistryError) return reply(res, error.status, { error: error.message });
      // The store closes at the end of a drain; a request that comes in after is told so.
      if (isSinkClosedError(error)) {
        return reply(
          res,
          503,
          { error: 'the relay is stopping; run the command again once it has stopped' },
          { 'retry-after': '5' },
        );
      }
      throw error;
    }
  };
}
