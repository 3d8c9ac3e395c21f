// What the relay delivery suites share: posting a backlog of events to relays over HTTP, and
// waiting for a condition with a deadline.

/**
 * Posts `total` events (`{n, type}`) to `urls` in batches of `batch` from `clients` concurrent
 * keep-alive clients, each request to the next relay in turn; resolves with the ms taken.
 */
export async function ingest(
  urls: readonly string[],
  total: number,
  options: { batch: number; clients: number },
): Promise<number> {
  let next = 0;
  let turn = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (next < total) {
      const size = Math.min(options.batch, total - next);
      const from = next;
      next += size;
      const url = urls[turn++ % urls.length]!;
      const body = JSON.stringify(
        Array.from({ length: size }, (_, i) => ({ n: from + i, type: 'order.created' })),
      );
      const response = await fetch(`${url}/events`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      const text = await response.text();
      if (response.status !== 202) throw new Error(`ingest answered ${response.status}: ${text}`);
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  return performance.now() - started;
}

/** Resolves once `check()` holds, polling every `pollMs`; throws with `what()` after `ms`. */
export async function until(
  check: () => boolean,
  ms: number,
  what: () => string,
  pollMs = 2,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
