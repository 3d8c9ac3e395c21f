// Helpers for the Redis adapter's tests; not part of the package (excluded from the build).
import { createClient } from 'redis';

export { freePort, sleep, waitFor } from '../test-utils.js';

/** The shared Redis the tests talk to (REDIS_URL overrides). */
export const SHARED_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** True in CI, where a missing service must fail instead of skipping. */
export const IN_CI = ((): boolean => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
})();

/** A node-redis client for `url` that does not reconnect and swallows its error events. */
export function newClient(resp: 2 | 3 = 2, url = SHARED_URL) {
  const client = createClient({ url, RESP: resp, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  return client;
}

/**
 * Why the shared Redis cannot be used, or `undefined` when it answers a PING. Outside CI the
 * caller skips (with a loud message); in CI it fails.
 */
export async function unavailable(url = SHARED_URL): Promise<string | undefined> {
  const probe = newClient(2, url);
  try {
    await probe.connect();
    await probe.ping();
    return undefined;
  } catch (error) {
    return `Redis on ${url} does not answer: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    if (probe.isOpen) probe.destroy();
  }
}
