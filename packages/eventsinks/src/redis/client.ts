/**
 * The part of a node-redis (v5+) client the Redis adapters use. A client from `createClient()`
 * fits it as is; the adapters send raw commands through `sendCommand`, so they depend neither on
 * the client's command typings nor on its RESP version or type mapping.
 *
 * The caller creates and connects the client, attaches an `'error'` listener (node-redis emits
 * `'error'` on every connection failure, and an unhandled one ends the process) and closes it
 * after the sinks and sources that use it.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * const client: RedisStreamClient = createClient({ url: 'redis://127.0.0.1:6379' });
 * client.on('error', (error) => console.error('redis', error));
 * await client.connect();
 * ```
 */
export interface RedisStreamClient {
  /**
   * Sends one command; resolves with the raw reply, rejects with the server's error reply.
   * `options.timeout` overrides node-redis's per-command timeout (5 s by default in node-redis 6,
   * counted until the command is written; 0 turns it off).
   */
  sendCommand(args: readonly string[], options?: { timeout?: number }): Promise<unknown>;
  /** True while the connection is up and ready for commands. */
  readonly isReady: boolean;
  /** False once the client was closed for good. */
  readonly isOpen: boolean;
  /** A new, unconnected client with the same options (used for blocking reads). */
  duplicate(): RedisStreamClient;
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** Closes the connection at once, rejecting pending commands. */
  destroy(): void;
  /** Subscribes to client events (`'error'`, `'ready'`). */
  on(event: 'error', listener: (error: unknown) => void): unknown;
  /** Subscribes to client events (`'error'`, `'ready'`). */
  on(event: 'ready', listener: () => void): unknown;
  /** Removes a listener added with `on`. */
  off(event: 'error', listener: (error: unknown) => void): unknown;
  /** Removes a listener added with `on`. */
  off(event: 'ready', listener: () => void): unknown;
}

/** The stream entry field holding the message's stable id. @internal */
export const ID_FIELD = 'id';
/** The stream entry field holding the encoded event. @internal */
export const DATA_FIELD = 'data';

/** True for an error reply from the Redis server (as opposed to a connection failure). @internal */
export function isErrorReply(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const name = (error as { constructor?: { name?: unknown } }).constructor?.name;
  return name === 'ErrorReply' || name === 'SimpleError' || name === 'BlobError';
}

/** A raw stream entry: its Redis id and its flat field list (null when the entry was deleted). */
export interface RawEntry {
  entryId: string;
  fields: readonly string[] | null;
}

function toText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return String(value);
}

/** Parses one `[id, [field, value, …]]` entry, tolerating Buffers and deleted (nil) entries. @internal */
export function parseEntry(raw: unknown): RawEntry | undefined {
  if (!Array.isArray(raw) || raw.length < 1) return undefined;
  const tuple = raw as unknown[];
  const entryId = toText(tuple[0]);
  const fields = tuple[1];
  if (!Array.isArray(fields)) return { entryId, fields: null };
  return { entryId, fields: fields.map(toText) };
}

/**
 * The entries of an XREADGROUP reply for one stream, in RESP2 (`[[key, entries]]`) or RESP3
 * (a map or object `{ key: entries }`) form; empty for a nil reply (BLOCK timed out).
 * @internal
 */
export function parseReadReply(reply: unknown): RawEntry[] {
  if (reply === null || reply === undefined) return [];
  let streams: unknown[];
  if (Array.isArray(reply)) {
    streams = (reply as unknown[]).map((s) => (Array.isArray(s) ? (s as unknown[])[1] : undefined));
  } else if (reply instanceof Map) streams = [...(reply.values() as Iterable<unknown>)];
  else if (typeof reply === 'object') streams = Object.values(reply);
  else return [];
  const out: RawEntry[] = [];
  for (const entries of streams) {
    if (!Array.isArray(entries)) continue;
    for (const raw of entries) {
      const entry = parseEntry(raw);
      if (entry) out.push(entry);
    }
  }
  return out;
}

/** The value of `name` in a flat field list. @internal */
export function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
