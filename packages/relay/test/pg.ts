// The local PostgreSQL that the relay's PostgreSQL tests share (postgres://postgres@127.0.0.1:5432/test,
// or EVENTSINKS_PG_URL): each test uses a schema of its own. Without a reachable server a test
// fails when CI is set and skips loudly otherwise, so a missing service never passes unseen.
import assert from 'node:assert/strict';
import pg from 'pg';

/** The shared server's connection string. */
export const PG_URL = process.env['EVENTSINKS_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs one query on a connection of its own; its rows. */
export async function pgQuery<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Why `url` cannot be queried, or undefined when it can. */
export async function pgUnreachable(url = PG_URL): Promise<string | undefined> {
  try {
    await pgQuery(url, 'select 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Fails under CI, else skips `t` loudly: a missing prerequisite must not pass unseen. */
export function unavailable(
  t: { skip(message: string): void },
  what: string,
  reason: string,
): void {
  const message = `${what}: ${reason}`;
  if (process.env['CI']) assert.fail(`${message}: CI must run this test`);
  console.warn(`\n*** SKIPPED ${message} ***\n`);
  t.skip(message);
}

/** True when PostgreSQL at `url` answers; else {@link unavailable} and false (return then). */
export async function needPostgres(
  t: { skip(message: string): void },
  what: string,
  url = PG_URL,
): Promise<boolean> {
  const down = await pgUnreachable(url);
  if (down === undefined) return true;
  unavailable(t, what, `PostgreSQL at ${url} is unreachable (${down})`);
  return false;
}
