import { describe } from './validate.js';

/**
 * The message of a thrown value, for reasons and logs: `error.message` for an `Error`, else
 * `String(value)`.
 * @internal
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * One line naming a thrown value, for a dead letter's reason (a header or a field): `name:
 * message` for an `Error`, `thrown <value>` otherwise; control characters become spaces and the
 * text is cut at `max` characters, `mark` (default an ellipsis) showing the cut.
 * @internal
 */
export function reasonOf(error: unknown, max = 1_000, mark = '…'): string {
  const text =
    error instanceof Error ? `${error.name}: ${error.message}` : `thrown ${describe(error)}`;
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\r\n\u0000-\u001f]+/g, ' ');
  return line.length > max ? `${line.slice(0, max)}${mark}` : line;
}
