// The `headersOf` option every broker sink has: per-event message headers (a W3C traceparent,
// a tenant), checked here once so each adapter refuses a bad result with the same message.
import { describe } from './validate.js';

/**
 * What a broker sink's `headersOf` returns for an event: header names to string values.
 *
 * @example
 * ```ts
 * const headersOf = (e: { trace?: string }): MessageHeaders | undefined =>
 *   e.trace === undefined ? undefined : { traceparent: e.trace };
 * ```
 */
export type MessageHeaders = Readonly<Record<string, string>>;

/**
 * The headers `headersOf` gives `event`, checked: `undefined` or an object whose every value is
 * a string and whose names are non-empty and not in `reserved` (names the adapter writes itself).
 * @throws TypeError naming the bad header or value.
 * @internal
 */
export function headersFor<E>(
  headersOf: ((event: E) => MessageHeaders | undefined) | undefined,
  event: E,
  reserved: readonly string[] = [],
): MessageHeaders | undefined {
  if (headersOf === undefined) return undefined;
  const headers = headersOf(event);
  if (headers === undefined) return undefined;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new TypeError(
      `Expected \`headersOf\` to return an object of strings or undefined, got ${describe(headers)}`,
    );
  }
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (name === '' || reserved.includes(name)) {
      throw new TypeError(
        `Expected \`headersOf\` to return header names other than ${['""', ...reserved.map((r) => `"${r}"`)].join(', ')}, got ${describe(name)}`,
      );
    }
    if (typeof value !== 'string') {
      throw new TypeError(
        `Expected \`headersOf\` to return a string for header "${name}", got ${describe(value)}`,
      );
    }
  }
  return headers;
}
