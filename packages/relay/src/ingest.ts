// Parsing what the http and stdin sources receive: one JSON object, a JSON array of objects,
// or NDJSON. A body is checked whole before anything of it is stored: a malformed line, an
// event that could not be stored (nested too deep, not representable as JSON) or too many events
// reject the request, naming the line (or element) at fault, so a client never has half a batch
// accepted.
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * How deep an event may nest (objects and arrays inside one another, the event itself being
 * level 1). Deeper events are refused with a 400: they cannot be encoded reliably (JSON.stringify
 * runs out of stack long before JSON.parse does) and no receiver wants them.
 */
export const MAX_DEPTH = 128;

/** The outcome of parsing a body: its events, or the status and reason to refuse it with. */
export type ParseResult =
  { ok: true; events: Record<string, unknown>[] } | { ok: false; status: 400 | 413; error: string };

/** Limits applied while parsing a request body. */
export interface ParseOptions {
  /** At most this many events; more is a 413. Default: unlimited. */
  maxEvents?: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeJsonError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What in `value` cannot be stored as it is: nesting deeper than `limit` levels, or a number
 * that JSON cannot carry (`1e400` parses to Infinity, which JSON.stringify would turn into
 * `null`). Iterative, so any depth is safe.
 */
function structureProblem(value: unknown, limit: number): string | undefined {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (typeof current === 'number') {
      if (!Number.isFinite(current)) return 'a number out of range (it would be stored as null)';
      continue;
    }
    if (typeof current !== 'object' || current === null) continue;
    if (depth > limit) return `nested deeper than ${limit} levels`;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) {
      if (typeof child === 'number' || (typeof child === 'object' && child !== null))
        stack.push({ value: child, depth: depth + 1 });
    }
  }
  return undefined;
}

/**
 * Why `event` could not be stored, or `undefined` when it can: it nests deeper than
 * {@link MAX_DEPTH}, holds a number JSON cannot carry (Infinity, NaN), or `JSON.stringify`
 * (the queue's encoding) fails on it or drops it. With `parsed: true` (the event came from
 * `JSON.parse`, so it is plain JSON data) JSON.stringify is not tried: once depth and numbers
 * are fine such a value is representable, and stringifying it here as well as in the queue
 * would double the cost of a large request.
 */
export function checkEvent(event: unknown, parsed = false): string | undefined {
  const problem = structureProblem(event, MAX_DEPTH);
  if (problem !== undefined || parsed) return problem;
  try {
    if (typeof JSON.stringify(event) !== 'string') return 'not representable as JSON';
  } catch (error) {
    return `not representable as JSON (${describeJsonError(error)})`;
  }
  return undefined;
}

function tooMany(max: number, got: string): ParseResult {
  return {
    ok: false,
    status: 413,
    error: `more than ${max} events in one request (maxEvents; got ${got}): split the request`,
  };
}

/**
 * Yields to the event loop once `sliceMs` have passed since the last turn, so that one large
 * request does not hold up /healthz, /metrics and other requests.
 */
function yielder(sliceMs = 10): () => Promise<void> | undefined {
  let last = performance.now();
  let calls = 0;
  return () => {
    // Reading the clock is cheap but not free: look every 64 events.
    if ((++calls & 63) !== 0) return undefined;
    const now = performance.now();
    if (now - last < sliceMs) return undefined;
    return nextTurn().then(() => {
      last = performance.now();
    });
  };
}

/**
 * Parses NDJSON: one object per non-blank line, each checked with {@link checkEvent}.
 * Synchronous (the stdin source parses line by line).
 */
export function parseNdjson(text: string, options: ParseOptions = {}): ParseResult {
  const events: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  const max = options.maxEvents ?? Infinity;
  for (let i = 0; i < lines.length; i++) {
    const result = ndjsonLine(lines[i]!, i, events, max);
    if (result) return result;
  }
  if (events.length === 0) return { ok: false, status: 400, error: 'no events in the body' };
  return { ok: true, events };
}

function ndjsonLine(
  raw: string,
  i: number,
  events: Record<string, unknown>[],
  max: number,
): ParseResult | undefined {
  const line = raw.trim();
  if (line === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return {
      ok: false,
      status: 400,
      error: `line ${i + 1}: invalid JSON (${describeJsonError(error)})`,
    };
  }
  if (!isObject(value))
    return { ok: false, status: 400, error: `line ${i + 1}: expected a JSON object` };
  const problem = checkEvent(value, true);
  if (problem !== undefined) return { ok: false, status: 400, error: `line ${i + 1}: ${problem}` };
  if (events.length >= max) return tooMany(max, `line ${i + 1}`);
  events.push(value);
  return undefined;
}

async function parseNdjsonAsync(text: string, max: number): Promise<ParseResult> {
  const events: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  const pause = yielder();
  for (let i = 0; i < lines.length; i++) {
    const result = ndjsonLine(lines[i]!, i, events, max);
    if (result) return result;
    await pause();
  }
  if (events.length === 0) return { ok: false, status: 400, error: 'no events in the body' };
  return { ok: true, events };
}

/**
 * Parses a request body by its content type, falling back on its shape, and checks every event
 * (see {@link checkEvent}) before returning any. Yields to the event loop between slices of a
 * large body. A bad event is a 400 naming its line (NDJSON) or element (array); more than
 * `maxEvents` events is a 413.
 */
export async function parseBody(
  text: string,
  contentType = '',
  options: ParseOptions = {},
): Promise<ParseResult> {
  const max = options.maxEvents ?? Infinity;
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, status: 400, error: 'empty body' };
  if (/ndjson|jsonl|json-seq/i.test(contentType)) return parseNdjsonAsync(text, max);
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (error) {
    // Several lines that are not one JSON document: NDJSON, whose parser names the bad line.
    if (trimmed.includes('\n')) return parseNdjsonAsync(text, max);
    return {
      ok: false,
      status: 400,
      error: `line 1: invalid JSON (${describeJsonError(error)})`,
    };
  }
  if (isObject(value)) {
    const problem = checkEvent(value, true);
    if (problem !== undefined) return { ok: false, status: 400, error: `the event is ${problem}` };
    return { ok: true, events: [value] };
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return { ok: false, status: 400, error: 'no events in the body' };
    if (value.length > max) return tooMany(max, String(value.length));
    const pause = yielder();
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      if (!isObject(element))
        return { ok: false, status: 400, error: `element ${i}: expected a JSON object` };
      const problem = checkEvent(element, true);
      if (problem !== undefined)
        return { ok: false, status: 400, error: `element ${i}: ${problem}` };
      await pause();
    }
    return { ok: true, events: value as Record<string, unknown>[] };
  }
  return {
    ok: false,
    status: 400,
    error: 'expected a JSON object, an array of objects, or NDJSON',
  };
}

/** Why a request was refused, as the `reason` label of the rejected-requests metric. */
export type RefusalReason = 'invalid' | 'full';

/**
 * The relay refused a request's events as a whole: nothing of it was stored anywhere. `status`
 * is the HTTP status to answer with (400 for an event that cannot be stored, 503 when a
 * destination is full), `retryAfter` the seconds to suggest with a 503.
 */
export class IngestRefusedError extends Error {
  override readonly name = 'IngestRefusedError';
  readonly status: 400 | 503;
  readonly reason: RefusalReason;
  readonly retryAfter: number | undefined;

  constructor(message: string, status: 400 | 503, reason: RefusalReason, retryAfter?: number) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.retryAfter = retryAfter;
  }
}

/**
 * One or more destinations could not store a request's events (a SQLite failure: disk full,
 * I/O error); `cause` is the first such error. `failed` names those destinations; `stored`
 * those that had stored them already (each in its own file, committed independently), which
 * deliver them. Empty `stored` means nothing of the request is anywhere.
 */
export class StoreFailedError extends Error {
  override readonly name = 'StoreFailedError';
  readonly failed: readonly string[];
  readonly stored: readonly string[];

  constructor(failed: readonly string[], stored: readonly string[], cause: unknown) {
    super(
      stored.length === 0
        ? `could not store the events (${failed.join(', ')}); nothing was accepted`
        : `could not store the events for ${failed.join(', ')}; they were stored for ` +
            `${stored.join(', ')} and will be delivered there (a retry delivers them there twice)`,
      { cause },
    );
    this.failed = failed;
    this.stored = stored;
  }
}
