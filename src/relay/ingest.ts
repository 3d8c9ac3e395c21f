// Parsing what the http and stdin sources receive: one JSON object, a JSON array of objects,
// or NDJSON. A malformed body is rejected whole, naming the line (or element) at fault, so a
// client never has half a batch accepted.

export type ParseResult =
  { ok: true; events: Record<string, unknown>[] } | { ok: false; error: string };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeJsonError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Parses NDJSON: one object per non-blank line. */
export function parseNdjson(text: string): ParseResult {
  const events: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      return { ok: false, error: `line ${i + 1}: invalid JSON (${describeJsonError(error)})` };
    }
    if (!isObject(value)) return { ok: false, error: `line ${i + 1}: expected a JSON object` };
    events.push(value);
  }
  if (events.length === 0) return { ok: false, error: 'no events in the body' };
  return { ok: true, events };
}

/** Parses a request body by its content type, falling back on its shape. */
export function parseBody(text: string, contentType = ''): ParseResult {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, error: 'empty body' };
  if (/ndjson|jsonl|json-seq/i.test(contentType)) return parseNdjson(text);
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (error) {
    // Several lines that are not one JSON document: NDJSON, whose parser names the bad line.
    if (trimmed.includes('\n')) return parseNdjson(text);
    return { ok: false, error: `line 1: invalid JSON (${describeJsonError(error)})` };
  }
  if (isObject(value)) return { ok: true, events: [value] };
  if (Array.isArray(value)) {
    if (value.length === 0) return { ok: false, error: 'no events in the body' };
    const index = value.findIndex((v) => !isObject(v));
    if (index >= 0) return { ok: false, error: `element ${index}: expected a JSON object` };
    return { ok: true, events: value as Record<string, unknown>[] };
  }
  return { ok: false, error: 'expected a JSON object, an array of objects, or NDJSON' };
}
