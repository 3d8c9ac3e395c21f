// The admin API as the page uses it: typed calls, relative to the page (/ui/ → ../admin/), so
// that a relay behind a path prefix works too. The shapes are the zod schemas' of
// src/adminSchemas.ts, imported as types only (erased by the bundler: no zod in the page).

import type {
  AttemptJson,
  DeliveryStatusJson,
  DestinationStatus,
  MessageDetailJson,
  MessageSummaryJson,
} from '../src/adminSchemas.js';

/** A destination as `GET /admin/destinations` lists it. */
export type { DestinationStatus };
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
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** An error (or anything thrown) as the one line the page shows. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : JSON.stringify(error);
}

const TOKEN_KEY = 'eventsinks-relay-token';

/** The bearer token the operator entered (kept for this tab only), if any. */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `value` as the bearer token of every later call (this tab only); empty forgets it. */
export function setToken(value: string): void {
  if (value === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

async function call(method: 'GET' | 'POST', path: string): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const bearer = token();
  if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(new URL(`../${path}`, document.baseURI), { method, headers });
  if (!response.ok) {
    const text = await response.text();
    let message = text.trim() || response.statusText;
    try {
      const body = JSON.parse(text) as { error?: unknown };
      if (typeof body.error === 'string') message = body.error;
    } catch {
      // Not JSON (a proxy's page): its text is the message.
    }
    throw new ApiError(response.status, `${method} /${path}: ${response.status} ${message}`);
  }
  return response;
}

async function json<T>(method: 'GET' | 'POST', path: string): Promise<T> {
  return (await (await call(method, path)).json()) as T;
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
};
