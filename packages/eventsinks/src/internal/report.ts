/**
 * The default for every `onError`/`onDrop` hook a user did not set: print it, so nothing is lost
 * silently. `console` exists in every runtime we target, unlike `process`.
 * @internal
 */
export function reportDefault(component: string, what: string, detail: unknown): void {
  console.error(`[eventsinks] ${component}: ${what}`, detail);
}

/**
 * Calls a user hook; a hook that throws must not break the pipeline that called it, so its
 * error is printed instead.
 * @internal
 */
export function callHook<A extends unknown[]>(
  component: string,
  hook: (...args: A) => void,
  ...args: A
): void {
  try {
    hook(...args);
  } catch (error) {
    reportDefault(component, 'a hook threw', error);
  }
}
