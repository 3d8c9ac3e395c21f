/**
 * A registry-wide symbol, so that two installed copies of eventsinks recognise each other's
 * errors: `instanceof` fails across copies, a `Symbol.for` brand does not.
 * @internal
 */
export const ERROR_BRAND: unique symbol = Symbol.for('eventsinks.error.code') as never;

/** @internal */
export function hasErrorCode(value: unknown, code: string): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [ERROR_BRAND]?: unknown })[ERROR_BRAND] === code
  );
}

/** @internal */
export function brand(error: Error, code: string): void {
  Object.defineProperty(error, ERROR_BRAND, { value: code, enumerable: false });
}

/**
 * Only the `cause` of options that may carry fields of ours (`messageId`), for `super()`, and only
 * when one was given: an error without a cause then has no `cause` property.
 * @internal
 */
export function causeOnly(options: ErrorOptions | undefined): ErrorOptions | undefined {
  return options !== undefined && 'cause' in options ? { cause: options.cause } : undefined;
}
