/**
 * Resolves when `promise` settles or `signal` aborts, whichever comes first, and removes its
 * abort listener on both paths so a long-lived signal does not collect listeners.
 * @internal
 */
export function untilAborted(
  promise: PromiseLike<unknown>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const settled = Promise.resolve(promise).then(
    () => undefined,
    () => undefined,
  );
  if (signal === undefined) return settled;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    void settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** Calls `fn` once when `signal` aborts (at once if it already has); returns the cleanup. @internal */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (signal === undefined) return noop;
  if (signal.aborted) {
    fn();
    return noop;
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}

function noop(): void {}
