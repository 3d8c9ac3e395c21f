// The admin API as the page uses it: typed calls, relative to the page (/ui/ → ../admin/), so
// that a relay behind a path prefix works too. The shapes are the zod schemas' of
// src/adminSchemas.ts, imported as types only (erased by the bundler: no zod in the page).

import type {
  AttemptJson,
  DeliveryStatusJson,
  DestinationDetailJson,
  DestinationItemJson,
  MessageDetailJson,
  MessageSummaryJson,
  RotateSecretAnswer,
} from '../src/adminSchemas.js';

/** A destination as `GET /admin/destinations` lists it. */
export type DestinationStatus = DestinationItemJson;

/** `GET /admin/destinations/{name}`: the status, its version (api only) and redacted config. */
export type DestinationDetail = DestinationDetailJson;

/** `POST /admin/destinations/{name}/rotate-secret`. */
export type RotatedSecret = RotateSecretAnswer;

/** How the page's requests are allowed: `GET /ui/session` (server.ts). */
export interface UiSession {
  auth: 'bearer' | 'cookie' | 'loopback';
}

/** A delivery's status in the log. */
export type DeliveryStatus = DeliveryStatusJson;
/** One line of `GET /admin/messages`. */
export type MessageSummary = MessageSummaryJson;
/** One delivery attempt. */
export type Attempt = AttemptJson;
/** `GET /admin/messages/{id}`. */
export type MessageDetail = MessageDetailJson;

/** An answer other than 2xx: `status` and the API's own `error` text. */
export class ApiError extends Error {
  readonly status: number;
  /** The API's own `error` text, without the method, path and status. */
  readonly reason: string;
  constructor(status: number, message: string, reason = message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.reason = reason;
  }
}

/** An error (or anything thrown) as the one line the page shows. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : JSON.stringify(error);
}

/**
 * Sent with every call: a request signed in by the dashboard's cookie that changes something
 * must carry it (server.ts's check against cross-site request forgery).
 */
const UI_HEADER = { 'x-eventsinks-ui': '1' };

async function call(
  method: 'GET' | 'POST',
  path: string,
  body?: Record<string, unknown>,
): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', ...UI_HEADER };
  if (body !== undefined) headers['content-type'] = 'application/json';
  // The session cookie goes with it (same origin); no token is ever kept in the page.
  const response = await fetch(new URL(`../${path}`, document.baseURI), {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) {
    const text = await response.text();
    let message = text.trim() || response.statusText;
    try {
      const answer = JSON.parse(text) as { error?: unknown };
      if (typeof answer.error === 'string') message = answer.error;
    } catch {
      // Not JSON (a proxy's page): its text is the message.
    }
    throw new ApiError(
      response.status,
      `${method} /${path}: ${response.status} ${message}`,
      message,
    );
  }
  return response;
}

async function json<T>(
  method: 'GET' | 'POST',
  path: string,
  body?: Record<string, unknown>,
): Promise<T> {
  return (await (await call(method, path, body)).json()) as T;
}

const seg = encodeURIComponent;

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** The admin API's calls. */
export const api = {
  destinations: async (): Promise<DestinationStatus[]> =>
    (await json<{ items: DestinationStatus[] }>('GET', 'admin/destinations')).items,
  setEnabled: (name: string, enabled: boolean): Promise<DestinationStatus> =>
    json('POST', `admin/destinations/${seg(name)}/${enabled ? 'enable' : 'disable'}`),
  messages: (params: {
    destination?: string;
    status?: DeliveryStatus;
    limit?: number;
  }): Promise<{ items: MessageSummary[]; next: string | null }> =>
    json('GET', `admin/messages${query(params)}`),
  message: (id: string): Promise<MessageDetail> => json('GET', `admin/messages/${seg(id)}`),
  resend: async (id: string, destination: string): Promise<void> => {
    await call('POST', `admin/messages/${seg(id)}/resend${query({ destination })}`);
  },
  replay: async (destination: string, since: string): Promise<number> =>
    (
      await json<{ replayed: number }>(
        'POST',
        `admin/dlq/${seg(destination)}/replay${query({ since })}`,
      )
    ).replayed,
  metrics: async (): Promise<string> => (await call('GET', 'metrics')).text(),
  destination: (name: string): Promise<DestinationDetail> =>
    json('GET', `admin/destinations/${seg(name)}`),
  rotateSecret: (name: string, grace: string): Promise<RotatedSecret> =>
    json('POST', `admin/destinations/${seg(name)}/rotate-secret`, grace === '' ? {} : { grace }),
  /** How this page is signed in (`ui/session`, beside the page). */
  session: async (): Promise<UiSession | undefined> => {
    const response = await fetch(new URL('session', document.baseURI), { headers: UI_HEADER });
    return response.ok ? ((await response.json()) as UiSession) : undefined;
  },
};
