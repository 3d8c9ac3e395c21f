/** @internal Renders a received value for an error message: `-1` (number). */
export function describe(value: unknown): string {
  let shown: string;
  if (typeof value === 'string') shown = JSON.stringify(value);
  else if (typeof value === 'bigint') shown = `${value}n`;
  else if (typeof value === 'function') shown = `function ${value.name || '(anonymous)'}`;
  else if (typeof value === 'symbol') shown = value.toString();
  else {
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = Object.prototype.toString.call(value);
    }
    if (typeof value === 'number') shown = String(value);
  }
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `\`${shown}\` (${type})`;
}

/** @internal */
export function expectNumber(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`Expected \`${name}\` to be a number, got ${describe(value)}`);
  }
}

/** @internal A finite number ≥ 0 (a duration in ms, a rate). */
export function expectNonNegative(name: string, value: unknown): asserts value is number {
  expectNumber(name, value);
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Expected \`${name}\` to be a finite non-negative number, got ${describe(value)}`,
    );
  }
}

/** @internal An integer ≥ min (default 1); `Infinity` allowed when `allowInfinity`. */
export function expectInteger(
  name: string,
  value: unknown,
  min = 1,
  allowInfinity = false,
): asserts value is number {
  expectNumber(name, value);
  if (allowInfinity && value === Infinity) return;
  if (!Number.isInteger(value) || value < min) {
    const what = min === 1 ? 'a positive integer' : `an integer ≥ ${min}`;
    throw new RangeError(`Expected \`${name}\` to be ${what}, got ${describe(value)}`);
  }
}

/** @internal */
export function expectFunction(name: string, value: unknown): void {
  if (typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function, got ${describe(value)}`);
  }
}

/** @internal Optional hook: undefined or a function. */
export function expectOptionalFunction(name: string, value: unknown): void {
  if (value !== undefined) expectFunction(name, value);
}

/** @internal */
export function expectSink(name: string, value: unknown): void {
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { write?: unknown }).write !== 'function' ||
    typeof (value as { close?: unknown }).close !== 'function'
  ) {
    throw new TypeError(
      `Expected \`${name}\` to be a Sink (an object with write() and close()), got ${describe(value)}`,
    );
  }
}

/** @internal */
export function expectOneOf<T extends string>(
  name: string,
  value: unknown,
  allowed: readonly T[],
): asserts value is T {
  if (!allowed.includes(value as T)) {
    throw new TypeError(
      `Expected \`${name}\` to be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`,
    );
  }
}

/** @internal */
export function expectSignal(name: string, value: unknown): void {
  if (value === undefined) return;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { aborted?: unknown }).aborted !== 'boolean' ||
    typeof (value as { addEventListener?: unknown }).addEventListener !== 'function'
  ) {
    throw new TypeError(`Expected \`${name}\` to be an AbortSignal, got ${describe(value)}`);
  }
}

/**
 * @internal A timeout option, in ms: a positive number. 0 is refused everywhere (it never meant
 * the same thing twice); `Infinity` (no timeout) only where `allowInfinity`.
 */
export function expectTimeout(
  name: string,
  value: unknown,
  allowInfinity: boolean,
): asserts value is number {
  expectNumber(name, value);
  if (value === Infinity && allowInfinity) return;
  if (!(value > 0) || !Number.isFinite(value)) {
    const what = allowInfinity
      ? 'a positive number of ms (Infinity for no timeout)'
      : 'a positive finite number of ms';
    throw new RangeError(`Expected \`${name}\` to be ${what}, got ${describe(value)}`);
  }
}
