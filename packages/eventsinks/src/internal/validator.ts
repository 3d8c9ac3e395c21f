/**
 * A source's `validate` option: preferably a type guard (`(value): value is E => …`), or a
 * plain boolean check, which is still accepted. `false` (or a throw) refuses the value.
 * @internal
 */
export type Validator<E> = ((value: unknown) => value is E) | ((value: unknown) => boolean);

/**
 * Runs `validate` on a decoded value; true narrows it to `E`, so no cast is needed after it.
 * Throws what `validate` throws.
 * @internal
 */
export function isValid<E>(validate: Validator<E>, value: unknown): value is E {
  return validate(value);
}
