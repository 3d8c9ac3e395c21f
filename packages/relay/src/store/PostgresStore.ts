// The PostgreSQL store: one database (one Postgres schema, `eventsinks` by default) shared by
// any number of relay processes. Any relay ingests, any relay delivers, and the admin API of
// any relay sees every message.
//
// Design (after graphile-worker's get_job and pg-boss's fetch, which claim jobs the same way):
//
// - Claims. A delivery row carries a lease: `lease_owner` (one id per relay process) and
//   `lease_until` (ms). `claim` is one statement: a CTE selects the candidates in `seq` order
//   with `FOR UPDATE OF d SKIP LOCKED` (two relays claiming at once never wait for each other
//   and never take the same row) and an UPDATE sets the lease. A candidate is pending, due,
//   unleased or with an expired lease, and, when it has a key, the `head` of its key.
// - Per-key order is graphile-worker's named queue without the queue table: each key with
//   pending deliveries has one head, its lowest pending seq, the only claimable delivery of the
//   key; while it is in flight (leased) or waiting for its retry, the key is blocked, in every
//   relay. The flag is kept by every change of a key's pending set (ingest, record, resend,
//   replay, overflow) under a transaction-scoped advisory lock on the key, so a claim is one
//   index range scan over heads and unkeyed deliveries instead of a look at each key's backlog
//   (which, measured, made claims O(backlog): 66 deliveries/s with 50 keys × 600 deep).
//   Ingest takes its keys' locks before its messages get a seq, so a key's seqs are in commit
//   order even when relays ingest it at once.
// - Takeover: a relay that is SIGKILLed leaves leases that expire after `leaseTimeout`; the
//   next claim anywhere takes them over (at least once: the receiver may see that delivery
//   twice).
// - `record` releases the lease as it moves the delivery on. A late record from a relay whose
//   lease was taken over still logs its attempt, and a success still marks the delivery
//   delivered (it was), but a failure does not touch a delivery another owner holds now.
// - Time. Leases, `nextAt` and the admin timestamps are ms from the relays' clocks (the
//   injected `now`; graphile-worker's `useNodeTime`), so the clocks of relays sharing a
//   database must agree to well within `leaseTimeout` (NTP does).
// - Wake-ups. Ingest, resend and replay `pg_notify` the destinations they touched (sent at
//   commit); `subscribe` LISTENs on one dedicated connection. After that connection is lost and
//   re-established, every destination this store has claimed for is announced once, since
//   notifications meanwhile were lost. The dispatcher polls slowly besides: never a busy loop.
// - Ordering. `seq` is a bigserial taken at insert: increasing in commit order for requests
//   that do not overlap in time (one producer) and for one key (its lock, above); arbitrary
//   between unkeyed requests committed at the same moment by two relays (no order to keep).
// - Migrations are numbered; `open()` applies the missing ones in one transaction under
//   `pg_advisory_xact_lock`, so relays starting at once apply each exactly once, and refuses a
//   database whose schema is newer than this code.
// - Health. A query that cannot reach the server (refused, reset, timed out, server shutting
//   down) marks the store unhealthy and starts a probe every second; the first success marks
//   it healthy again. The pool replaces broken connections by itself.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Client, Pool, PoolClient, QueryResultRow } from 'pg';
import type {
  AttemptRecord,
  DeliveryCounts,
  DeliveryStatus,
  DestinationRecord,
  DestinationSpec,
  IngestBatch,
  IngestOutcome,
  MessageDetail,
  MessageQuery,
  MessageSummary,
  NewMessage,
  PendingDelivery,
  Store,
  StoreOptions,
  StoredMessage,
} from './Store.js';
import { DestinationSpecConflictError } from './Store.js';

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions extends StoreOptions {
  /** The connection string, `postgres://user@host:5432/db`. */
  url: string;
  /** The Postgres schema holding the tables (created when missing); default `eventsinks`. */
  schema?: string;
  /** How long a claim holds a delivery without `record` or `renew`, ms; default 30 000. */
  leaseTimeout?: number;
  /** This relay's id in leases; default `<hostname>:<pid>:<random>`, unique per process. */
  owner?: string;
  /** Connections in the pool; default 10. */
  poolSize?: number;
  /** How long to wait for a connection before a query fails, ms; default 5000. */
  connectTimeout?: number;
  /** The clock, ms since the epoch (tests). */
  now?: () => number;
  /**
   * Hears what the store survives without failing a call: the LISTEN connection lost (it
   * reconnects), a subscriber that threw, leases it could not release at close. Default: a
   * process warning.
   */
  onError?: (error: unknown, context: string) => void;
}

/** A PostgreSQL store failure: says what failed and why; the driver's error is `cause`. */
export class PostgresStoreError extends Error {
  override readonly name = 'PostgresStoreError';
}

type PgModule = typeof import('pg');

interface Migration {
  version: number;
  sql: (s: string) => string;
}

// Append only: a released version is never edited, a change is a new version.
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: (s) => `
      CREATE TABLE ${s}.messages (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        received_at bigint NOT NULL,
        source text NOT NULL,
        event json NOT NULL
      );
      CREATE INDEX messages_received_at ON ${s}.messages (received_at);
      CREATE TABLE ${s}.deliveries (
        destination text NOT NULL,
        seq bigint NOT NULL REFERENCES ${s}.messages (seq) ON DELETE CASCADE,
        key text,
        status text NOT NULL DEFAULT 'pending'
          CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts integer NOT NULL DEFAULT 0,
        next_at bigint NOT NULL DEFAULT 0,
        batch_id text,
        dead_at bigint,
        lease_owner text,
        lease_until bigint,
        head boolean NOT NULL DEFAULT false,
        PRIMARY KEY (destination, seq)
      );
      CREATE INDEX deliveries_seq ON ${s}.deliveries (seq);
      CREATE INDEX deliveries_pending ON ${s}.deliveries (destination, seq)
        WHERE status = 'pending';
      CREATE INDEX deliveries_pending_key ON ${s}.deliveries (destination, key, seq)
        WHERE status = 'pending' AND key IS NOT NULL;
      CREATE INDEX deliveries_claimable ON ${s}.deliveries (destination, seq)
        WHERE status = 'pending' AND (key IS NULL OR head);
      CREATE INDEX deliveries_head ON ${s}.deliveries (destination, key)
        WHERE status = 'pending' AND head;
      CREATE INDEX deliveries_dead ON ${s}.deliveries (destination, dead_at)
        WHERE status = 'dead';
      CREATE INDEX deliveries_lease_owner ON ${s}.deliveries (lease_owner)
        WHERE lease_owner IS NOT NULL;
      CREATE TABLE ${s}.attempts (
        id bigserial PRIMARY KEY,
        destination text NOT NULL,
        seq bigint NOT NULL,
        at bigint NOT NULL,
        duration_ms integer NOT NULL,
        status integer,
        error text,
        response text,
        next_at bigint,
        outcome text NOT NULL,
        FOREIGN KEY (destination, seq) REFERENCES ${s}.deliveries (destination, seq)
          ON DELETE CASCADE
      );
      CREATE INDEX attempts_delivery ON ${s}.attempts (destination, seq, id);
      CREATE TABLE ${s}.idempotency (
        key text PRIMARY KEY,
        answer text NOT NULL,
        at bigint NOT NULL
      );
      CREATE INDEX idempotency_at ON ${s}.idempotency (at);
      CREATE TABLE ${s}.destinations (
        name text PRIMARY KEY,
        state text CHECK (state IN ('enabled', 'disabled')),
        reason text,
        failing_since bigint,
        last_success_at bigint,
        last_error text
      );
    `,
  },
  {
    // Destinations created over the admin API (the file's are not stored), and each
    // message's W3C traceparent.
    version: 2,
    sql: (s) => `
      CREATE TABLE ${s}.destination_specs (
        name text PRIMARY KEY,
        config jsonb NOT NULL,
        version integer NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
      ALTER TABLE ${s}.messages ADD COLUMN traceparent text;
    `,
  },
  {
    // The attempts made before a delivery's last resend or replay, so that it gets the whole
    // retry budget again from any relay (attempts keeps the total).
    version: 3,
    sql: (s) => `
      ALTER TABLE ${s}.deliveries ADD COLUMN attempts_before_resend integer NOT NULL DEFAULT 0;
    `,
  },
];

interface SpecRow {
  name: string;
  config: Record<string, unknown>;
  version: number;
  created_at: number;
  updated_at: number;
}

function toSpec(row: SpecRow): DestinationSpec {
  return {
    name: row.name,
    config: row.config,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The newest schema version this code knows. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const PROBE_INTERVAL = 1_000;
const INT8_OID = 20;

// SQLSTATE classes that mean the server is not there for us (connection exception, operator
// intervention such as a shutdown, insufficient resources such as too many connections).
const UNREACHABLE_SQLSTATE = /^(08|57|53)/;
// What pg says when it loses or cannot get a connection (these errors carry no code).
const PG_CONNECTION_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|connection error|Connection ended|not queryable/i;

/** True when `error` says the server could not be reached, not that a query was wrong. */
function isUnreachable(error: unknown): boolean {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return isUnreachable(error.errors[0]);
  }
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^[0-9A-Z]{5}$/.test(code)) return UNREACHABLE_SQLSTATE.test(code);
    // Node's socket errors: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE, EAI_AGAIN, …
    if (/^E[A-Z_]+$/.test(code)) return true;
  }
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && PG_CONNECTION_MESSAGE.test(message);
}

function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

async function loadPg(): Promise<PgModule> {
  try {
    const module = (await import('pg')) as PgModule & { default?: PgModule };
    return module.default ?? module;
  } catch (error) {
    throw new PostgresStoreError(
      'the PostgreSQL store needs the "pg" package, which is not installed: ' +
        'run `npm install pg` next to eventsinks-relay',
      { cause: error },
    );
  }
}

// attempts: those of the current retry budget (since the last resend or replay).
const PENDING_COLUMNS = `d.seq, m.id, m.received_at, m.source, m.event, d.key,
  d.attempts - d.attempts_before_resend AS attempts, d.next_at, d.batch_id, m.traceparent`;

interface PendingRow extends QueryResultRow {
  seq: number;
  id: string;
  received_at: number;
  source: string;
  event: Record<string, unknown>;
  key: string | null;
  attempts: number;
  next_at: number;
  batch_id: string | null;
  traceparent: string | null;
}

function toPending(row: PendingRow): PendingDelivery {
  return {
    seq: row.seq,
    id: row.id,
    receivedAt: row.received_at,
    source: row.source,
    event: row.event,
    key: row.key ?? undefined,
    attempts: row.attempts,
    nextAt: row.next_at,
    batchId: row.batch_id ?? undefined,
    ...(row.traceparent !== null ? { traceparent: row.traceparent } : {}),
  };
}

const STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'dead'];

// Opaque to clients (base64url of the last seq), so nobody builds cursors by hand.
function encodeCursor(seq: number): string {
  return Buffer.from(String(seq)).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const seq = Number(Buffer.from(cursor, 'base64url').toString());
  if (!/^[A-Za-z0-9_-]+$/.test(cursor) || !Number.isSafeInteger(seq) || seq < 1) {
    throw new RangeError(
      `Expected \`cursor\` to be the \`next\` of a previous page, got ${JSON.stringify(cursor)}`,
    );
  }
  return seq;
}

// Text as PostgreSQL takes it inside a JSON literal: no NUL (text cannot hold one) and no lone
// surrogate (invalid in UTF-8), either of which would fail the whole statement.
function pgText(text: string): string {
  return (
    text
      // eslint-disable-next-line no-control-regex
      .replace(/\u0000/g, '')
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
  );
}

function bySeq(a: { seq: number }, b: { seq: number }): number {
  return a.seq - b.seq;
}

/**
 * The relay's store on PostgreSQL, shared by many relay processes: leased claims with
 * `FOR UPDATE SKIP LOCKED`, per-key order across processes, `LISTEN/NOTIFY` wake-ups,
 * versioned migrations under an advisory lock. Needs the optional `pg` package.
 *
 * @example
 * ```ts
 * const store = new PostgresStore({ url: 'postgres://postgres@127.0.0.1/relay', retention: 86_400_000 });
 * await store.open();
 * const due = await store.claim('orders-webhook', 16);
 * ```
 */
export class PostgresStore implements Store {
  readonly #url: string;
  readonly #schema: string;
  readonly #s: string;
  readonly #channel: string;
  readonly #specChannel: string;
  readonly #retention: number;
  readonly #leaseTimeout: number;
  readonly #owner: string;
  readonly #poolSize: number;
  readonly #connectTimeout: number;
  readonly #now: () => number;
  readonly #onError: (error: unknown, context: string) => void;

  #pg: PgModule | undefined;
  #pool: Pool | undefined;
  #opened = false;
  #closed = false;
  #healthy = false;
  #probe: NodeJS.Timeout | undefined;
  #applied: number[] = [];

  readonly #listeners = new Set<(destination: string) => void>();
  readonly #specListeners = new Set<() => void>();
  readonly #claimed = new Set<string>();
  #listenClient: Client | undefined;
  #listenRetry: NodeJS.Timeout | undefined;
  #listenFailures = 0;
  #listenedBefore = false;
  #wakeups = new Set<string>();
  #wakeScheduled = false;

  constructor(options: PostgresStoreOptions) {
    const schema = options.schema ?? 'eventsinks';
    if (!SCHEMA_NAME.test(schema)) {
      throw new PostgresStoreError(
        `invalid PostgreSQL schema name "${schema}": expected lower-case letters, digits and ` +
          'underscores, not starting with a digit, at most 63 characters',
      );
    }
    this.#url = options.url;
    this.#schema = schema;
    this.#s = `"${schema}"`;
    this.#channel = `${schema}.deliveries`;
    this.#specChannel = `${schema}.specs`;
    this.#retention = options.retention;
    this.#leaseTimeout = options.leaseTimeout ?? 30_000;
    this.#owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#poolSize = options.poolSize ?? 10;
    this.#connectTimeout = options.connectTimeout ?? 5_000;
    this.#now = options.now ?? Date.now;
    // Unless told where, these are printed as process warnings, not lost.
    this.#onError =
      options.onError ??
      ((error, context) =>
        process.emitWarning(`PostgreSQL store: ${context}: ${messageOf(error)}`));
  }

  /** This store's id in leases. */
  get owner(): string {
    return this.#owner;
  }

  /** The migration versions the last `open()` applied (empty when the schema was current). */
  get applied(): readonly number[] {
    return this.#applied;
  }

  /** Connects, creates the schema when missing and applies the missing migrations. */
  async open(): Promise<void> {
    if (this.#closed) throw new PostgresStoreError('the PostgreSQL store is closed');
    if (this.#opened) return;
    const pg = (this.#pg ??= await loadPg());
    const pool = new pg.Pool({
      connectionString: this.#url,
      max: this.#poolSize,
      connectionTimeoutMillis: this.#connectTimeout,
      keepAlive: true,
      types: { getTypeParser: this.#typeParser(pg) },
    });
    // An idle connection that breaks (server restart) is dropped by the pool, which emits it
    // here; without a listener it would crash the process.
    pool.on('error', (error) => {
      this.#onError(error, 'idle PostgreSQL connection lost');
      this.#unreachable(error);
    });
    this.#pool = pool;
    try {
      await this.#migrate();
    } catch (error) {
      this.#pool = undefined;
      await pool.end().catch(() => undefined);
      throw error;
    }
    this.#healthy = true;
    this.#opened = true;
    // Subscribed before open: listening needs the driver, loaded only now.
    if (this.#listeners.size + this.#specListeners.size > 0 && this.#listenClient === undefined)
      this.#listen();
  }

  // bigint columns (seq, ms timestamps) as numbers: they stay far below 2^53.
  #typeParser(pg: PgModule): (oid: number, format?: string) => unknown {
    return (oid, format) =>
      oid === INT8_OID && format !== 'binary'
        ? (value: string) => Number(value)
        : (pg.types.getTypeParser as (oid: number, format?: string) => unknown)(oid, format);
  }

  async #migrate(): Promise<void> {
    const s = this.#s;
    this.#applied = await this.#tx('open', async (c) => {
      // One lock per schema name, held to commit: the first relay migrates, the others then
      // find the schema current. The lock comes before CREATE SCHEMA, which is not safe to run
      // concurrently even with IF NOT EXISTS.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1)::bigint)', [
        `eventsinks.migrate:${this.#schema}`,
      ]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${s}.migrations (
           version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const { rows } = await c.query<{ version: number | null }>(
        `SELECT max(version) AS version FROM ${s}.migrations`,
      );
      const current = rows[0]?.version ?? 0;
      if (current > POSTGRES_SCHEMA_VERSION) {
        throw new PostgresStoreError(
          `the PostgreSQL schema "${this.#schema}" is at version ${current}, newer than this ` +
            `relay knows (${POSTGRES_SCHEMA_VERSION}): upgrade the relay, or use another schema`,
        );
      }
      const applied: number[] = [];
      for (const migration of MIGRATIONS) {
        if (migration.version <= current) continue;
        await c.query(migration.sql(s));
        await c.query(`INSERT INTO ${s}.migrations (version) VALUES ($1)`, [migration.version]);
        applied.push(migration.version);
      }
      return applied;
    });
  }

  /** Releases this owner's leases (so other relays take them at once), stops listening, closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#probe);
    clearTimeout(this.#listenRetry);
    this.#listeners.clear();
    this.#specListeners.clear();
    const listen = this.#listenClient;
    this.#listenClient = undefined;
    await listen?.end().catch(() => undefined);
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool === undefined) return;
    try {
      if (this.#opened) {
        await pool.query(
          `UPDATE ${this.#s}.deliveries SET lease_owner = NULL, lease_until = NULL
           WHERE lease_owner = $1`,
          [this.#owner],
        );
      }
    } catch (error) {
      // Unreachable at close: the leases expire by themselves after leaseTimeout.
      this.#onError(error, 'releasing leases at close');
    } finally {
      await pool.end().catch(() => undefined);
    }
  }

  /** False while PostgreSQL is unreachable; see {@link Store.healthy}. */
  /** Every stored destination spec, by name; see {@link Store.listDestinationSpecs}. */
  async listDestinationSpecs(): Promise<DestinationSpec[]> {
    const rows = await this.#query<SpecRow>(
      'listDestinationSpecs',
      `SELECT * FROM ${this.#s}.destination_specs ORDER BY name`,
    );
    return rows.map(toSpec);
  }

  /**
   * Creates or replaces a spec; the version check and the write are one statement, so two
   * relays writing at once cannot both pass it. Notifies the other relays at commit.
   */
  async putDestinationSpec(
    name: string,
    config: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<DestinationSpec> {
    const s = this.#s;
    const now = this.#now();
    const json = JSON.stringify(config);
    return this.#tx('putDestinationSpec', async (c) => {
      const result =
        expectedVersion === undefined
          ? await c.query<SpecRow>(
              `INSERT INTO ${s}.destination_specs AS t (name, config, version, created_at, updated_at)
               VALUES ($1, $2::jsonb, 1, $3, $3)
               ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config,
                 version = t.version + 1, updated_at = EXCLUDED.updated_at
               RETURNING *`,
              [name, json, now],
            )
          : expectedVersion === 0
            ? await c.query<SpecRow>(
                `INSERT INTO ${s}.destination_specs (name, config, version, created_at, updated_at)
                 VALUES ($1, $2::jsonb, 1, $3, $3) ON CONFLICT (name) DO NOTHING RETURNING *`,
                [name, json, now],
              )
            : await c.query<SpecRow>(
                `UPDATE ${s}.destination_specs SET config = $2::jsonb, version = version + 1,
                   updated_at = $3 WHERE name = $1 AND version = $4 RETURNING *`,
                [name, json, now, expectedVersion],
              );
      const row = result.rows[0];
      if (row === undefined) {
        const actual = await c.query<{ version: number }>(
          `SELECT version FROM ${s}.destination_specs WHERE name = $1`,
          [name],
        );
        throw new DestinationSpecConflictError(
          name,
          expectedVersion ?? 0,
          actual.rows[0]?.version ?? 0,
        );
      }
      await c.query('SELECT pg_notify($1, $2)', [this.#specChannel, name]);
      return toSpec(row);
    });
  }

  /** Deletes a spec and notifies the other relays; see {@link Store.deleteDestinationSpec}. */
  async deleteDestinationSpec(name: string): Promise<boolean> {
    return this.#tx('deleteDestinationSpec', async (c) => {
      const result = await c.query(`DELETE FROM ${this.#s}.destination_specs WHERE name = $1`, [
        name,
      ]);
      const deleted = (result.rowCount ?? 0) > 0;
      if (deleted) await c.query('SELECT pg_notify($1, $2)', [this.#specChannel, name]);
      return deleted;
    });
  }

  /**
   * Hears spec changes of every relay on this schema (NOTIFY on the LISTEN connection
   * `subscribe` uses); see {@link Store.subscribeSpecs}.
   */
  subscribeSpecs(listener: () => void): () => void {
    this.#specListeners.add(listener);
    if (this.#listenClient === undefined && this.#listenRetry === undefined) this.#listen();
    return () => {
      this.#specListeners.delete(listener);
    };
  }

  #specsChanged(): void {
    for (const listener of this.#specListeners) {
      try {
        listener();
      } catch (error) {
        this.#onError(error, 'spec subscriber threw');
      }
    }
  }

  /**
   * Ends this owner's leases on `seqs` at once and wakes the relays on the store, which claim
   * them without waiting for the lease timeout; see {@link Store.release}.
   */
  async release(destination: string, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    // One statement: the notification goes out at its commit, when the rows are claimable.
    await this.#query(
      'release',
      `WITH r AS (
         UPDATE ${this.#s}.deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE destination = $1 AND seq = ANY($2::bigint[]) AND lease_owner = $3
           AND status = 'pending'
         RETURNING seq
       )
       SELECT pg_notify($4, $1) FROM (SELECT 1 FROM r LIMIT 1) x`,
      [destination, [...seqs], this.#owner, this.#channel],
    );
  }

  healthy(): boolean {
    return this.#healthy && !this.#closed;
  }

  #unreachable(error: unknown): void {
    if (!isUnreachable(error) || this.#closed) return;
    this.#healthy = false;
    if (this.#probe !== undefined) return;
    const probe = (): void => {
      const pool = this.#pool;
      if (pool === undefined || this.#closed) return;
      pool.query('SELECT 1').then(
        () => {
          this.#probe = undefined;
          this.#healthy = true;
        },
        () => {
          this.#probe = setTimeout(probe, PROBE_INTERVAL);
          this.#probe.unref();
        },
      );
    };
    this.#probe = setTimeout(probe, PROBE_INTERVAL);
    this.#probe.unref();
  }

  #poolOrThrow(what: string): Pool {
    if (this.#closed)
      throw new PostgresStoreError(`PostgreSQL store: ${what}: the store is closed`);
    const pool = this.#pool;
    if (pool === undefined) {
      throw new PostgresStoreError(`PostgreSQL store: ${what}: open() was not called`);
    }
    return pool;
  }

  #error(what: string, error: unknown): Error {
    if (error instanceof PostgresStoreError || error instanceof DestinationSpecConflictError)
      return error;
    this.#unreachable(error);
    const reason = isUnreachable(error)
      ? `PostgreSQL is unreachable (${messageOf(error)})`
      : messageOf(error);
    return new PostgresStoreError(`PostgreSQL store: ${what} failed: ${reason}`, { cause: error });
  }

  async #query<R extends QueryResultRow>(
    what: string,
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    const pool = this.#poolOrThrow(what);
    try {
      const result = await pool.query<R>(text, values);
      this.#healthy = true;
      return result.rows;
    } catch (error) {
      throw this.#error(what, error);
    }
  }

  async #tx<T>(what: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
    const pool = this.#poolOrThrow(what);
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw this.#error(what, error);
    }
    // A checked-out connection that breaks emits 'error' on itself (the pool listens only to
    // idle ones); the failing query rejects with it as well, which is where it is handled.
    const onBroken = (): void => undefined;
    client.on('error', onBroken);
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      this.#healthy = true;
      return result;
    } catch (error) {
      if (isUnreachable(error)) {
        broken = error;
      } else {
        try {
          await client.query('ROLLBACK');
        } catch (rollback) {
          broken = rollback;
        }
      }
      throw this.#error(what, error);
    } finally {
      client.off('error', onBroken);
      // A connection that broke, or whose rollback failed, is destroyed, not reused.
      client.release(broken === undefined ? undefined : true);
    }
  }

  /** Stores a request in one transaction; see {@link Store.ingest}. */
  async ingest(batch: IngestBatch): Promise<IngestOutcome> {
    const s = this.#s;
    const now = this.#now();
    // Before the transaction: an event that is not JSON fails the request without a round trip.
    const events = batch.messages.map((m) => {
      let json: string | undefined;
      try {
        json = JSON.stringify(m.event);
      } catch (error) {
        throw new TypeError(`cannot store message ${JSON.stringify(m.id)}: ${String(error)}`, {
          cause: error,
        });
      }
      if (typeof json !== 'string') {
        throw new TypeError(`cannot store message ${JSON.stringify(m.id)}: it is not JSON`);
      }
      return json;
    });
    const keyed = new Map<string, [string, string]>();
    for (const m of batch.messages) {
      for (const d of m.deliveries) {
        if (d.key !== undefined) keyed.set(`${d.destination}:${d.key}`, [d.destination, d.key]);
      }
    }
    const work = async (c: PoolClient): Promise<IngestOutcome> => {
      // Before anything gets a seq: ingests of one key commit one after the other, so their
      // seqs are in commit order and each sees the other's deliveries when it picks the head.
      if (keyed.size > 0) await this.#lockKeys(c, [...keyed.values()]);
      const key = batch.idempotencyKey;
      if (key !== undefined) {
        // A key older than retention is taken as new (the purger may not have run yet).
        const claimed = await c.query(
          `INSERT INTO ${s}.idempotency (key, answer, at) VALUES ($1, $2, $3)
           ON CONFLICT (key) DO UPDATE SET answer = EXCLUDED.answer, at = EXCLUDED.at
             WHERE ${s}.idempotency.at < $4
           RETURNING key`,
          [key, batch.answer ?? '', now, now - this.#retention],
        );
        if (claimed.rowCount === 0) {
          const { rows } = await c.query<{ answer: string }>(
            `SELECT answer FROM ${s}.idempotency WHERE key = $1`,
            [key],
          );
          return { replayed: rows[0]?.answer ?? '', stored: [], duplicates: [] };
        }
      }
      const outcome = await this.#store(c, batch.messages, events);
      if (keyed.size > 0) await this.#promote(c, [...keyed.values()]);
      return outcome;
    };
    // The common request (no idempotency key, no ordering key) is one statement, atomic by
    // itself: one round trip instead of five.
    if (batch.idempotencyKey === undefined && keyed.size === 0) {
      const pool = this.#poolOrThrow('ingest');
      try {
        const outcome = await this.#store(pool, batch.messages, events);
        this.#healthy = true;
        return outcome;
      } catch (error) {
        throw this.#error('ingest', error);
      }
    }
    return this.#tx('ingest', work);
  }

  /**
   * Inserts messages (new ids only; the first of a repeated id), their deliveries (head
   * false; #promote follows for keys) and the notifications, in one statement.
   */
  async #store(
    c: Pool | PoolClient,
    messages: readonly NewMessage[],
    events: readonly string[],
  ): Promise<IngestOutcome> {
    if (messages.length === 0) return { stored: [], duplicates: [] };
    const s = this.#s;
    const destinations: string[] = [];
    const of: number[] = [];
    const keys: (string | null)[] = [];
    messages.forEach((m, i) => {
      for (const d of m.deliveries) {
        destinations.push(d.destination);
        of.push(i + 1);
        keys.push(d.key ?? null);
      }
    });
    // The notify CTE runs only when the final SELECT reads it, which it does for any row.
    const inserted = await c.query<{ seq: number; id: string }>(
      `WITH u AS (
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::json[], $9::text[])
           WITH ORDINALITY AS u(id, received_at, source, event, traceparent, n)
       ), ins AS (
         INSERT INTO ${s}.messages (id, received_at, source, event, traceparent)
         SELECT id, received_at, source, event, traceparent FROM u ORDER BY n
         ON CONFLICT (id) DO NOTHING
         RETURNING seq, id
       ), first AS (
         SELECT ins.seq, min(u.n) AS n FROM ins JOIN u ON u.id = ins.id GROUP BY ins.seq
       ), dl AS (
         INSERT INTO ${s}.deliveries (destination, seq, key)
         SELECT x.destination, first.seq, x.key
         FROM unnest($5::text[], $6::bigint[], $7::text[]) AS x(destination, n, key)
         JOIN first ON first.n = x.n
         ON CONFLICT DO NOTHING
         RETURNING destination
       ), nt AS (
         SELECT pg_notify($8, destination) FROM (SELECT DISTINCT destination FROM dl) d
       )
       SELECT seq, id, (SELECT count(*) FROM nt) AS notified FROM ins`,
      [
        messages.map((m) => m.id),
        messages.map((m) => m.receivedAt),
        messages.map((m) => m.source),
        events,
        destinations,
        of,
        keys,
        this.#channel,
        messages.map((m) => m.traceparent ?? null),
      ],
    );
    const seqOf = new Map(inserted.rows.map((r) => [r.id, r.seq]));
    const stored: StoredMessage[] = [];
    const duplicates: string[] = [];
    for (const m of messages) {
      const seq = seqOf.get(m.id);
      if (seq === undefined) {
        duplicates.push(m.id);
        continue;
      }
      // A second message with the same id in one request is a duplicate of the first.
      seqOf.delete(m.id);
      stored.push({ id: m.id, seq, receivedAt: m.receivedAt, source: m.source });
    }
    return { stored, duplicates };
  }

  // Per-key order rests on one invariant: each key with pending deliveries has exactly one
  // `head`, its lowest pending seq (or, after a resend of an older one, the one that was head
  // already, until it leaves). Only heads of keyed deliveries are claimable. Every change of a
  // key's pending set runs under that key's transaction lock and ends with #promote.
  async #lockKeys(c: PoolClient, keys: readonly (readonly [string, string])[]): Promise<void> {
    // In hash order, so two transactions locking overlapping keys cannot deadlock.
    await c.query(
      `SELECT pg_advisory_xact_lock(hashtext($3), hashtext(k))
       FROM (SELECT DISTINCT d || ':' || k AS k FROM unnest($1::text[], $2::text[]) AS u(d, k)) x
       ORDER BY hashtext(k)`,
      [keys.map(([d]) => d), keys.map(([, k]) => k), `eventsinks.key:${this.#schema}`],
    );
  }

  /** Locks the keys of the given deliveries that have one; returns them. */
  async #lockKeysOf(c: PoolClient, where: string, values: unknown[]): Promise<[string, string][]> {
    const { rows } = await c.query<{ destination: string; key: string }>(
      `SELECT destination, key, pg_advisory_xact_lock(hashtext($${values.length + 1}),
         hashtext(destination || ':' || key))
       FROM (SELECT DISTINCT d.destination, d.key FROM ${where} AND d.key IS NOT NULL) x
       ORDER BY hashtext(destination || ':' || key)`,
      [...values, `eventsinks.key:${this.#schema}`],
    );
    return rows.map((r) => [r.destination, r.key]);
  }

  /** Gives each of `keys` without a head its lowest pending delivery as head. */
  async #promote(c: PoolClient, keys: readonly (readonly [string, string])[]): Promise<void> {
    if (keys.length === 0) return;
    const s = this.#s;
    await c.query(
      `UPDATE ${s}.deliveries d SET head = true
       FROM (
         SELECT k.destination, (
             SELECT e.seq FROM ${s}.deliveries e
             WHERE e.destination = k.destination AND e.key = k.key AND e.status = 'pending'
             ORDER BY e.seq LIMIT 1) AS seq
         FROM unnest($1::text[], $2::text[]) AS k(destination, key)
         WHERE NOT EXISTS (
           SELECT 1 FROM ${s}.deliveries h
           WHERE h.destination = k.destination AND h.key = k.key AND h.status = 'pending'
             AND h.head)
       ) m
       WHERE d.destination = m.destination AND d.seq = m.seq`,
      [keys.map(([d]) => d), keys.map(([, k]) => k)],
    );
  }

  async #notify(c: PoolClient, destinations: readonly string[]): Promise<void> {
    await c.query('SELECT pg_notify($1, d) FROM unnest($2::text[]) AS d', [
      this.#channel,
      [...new Set(destinations)],
    ]);
  }

  /** Pending deliveries after `afterSeq`, unleased view; see {@link Store.pending}. */
  async pending(destination: string, afterSeq: number, limit: number): Promise<PendingDelivery[]> {
    const rows = await this.#query<PendingRow>(
      'pending',
      `SELECT ${PENDING_COLUMNS}
       FROM ${this.#s}.deliveries d JOIN ${this.#s}.messages m ON m.seq = d.seq
       WHERE d.destination = $1 AND d.status = 'pending' AND d.seq > $2
       ORDER BY d.seq LIMIT $3`,
      [destination, afterSeq, limit],
    );
    return rows.map(toPending);
  }

  /** Leases due deliveries to this owner; see {@link Store.claim}. */
  async claim(destination: string, limit: number): Promise<PendingDelivery[]> {
    this.#claimed.add(destination);
    const s = this.#s;
    const now = this.#now();
    const rows = await this.#query<PendingRow>(
      'claim',
      `WITH c AS (
         SELECT d.seq FROM ${s}.deliveries d
         WHERE d.destination = $1 AND d.status = 'pending' AND d.next_at <= $2
           AND (d.lease_until IS NULL OR d.lease_until <= $2)
           AND (d.key IS NULL OR d.head)
         ORDER BY d.seq
         LIMIT $3
         FOR UPDATE OF d SKIP LOCKED
       )
       UPDATE ${s}.deliveries d SET lease_owner = $4, lease_until = $5
       FROM c, ${s}.messages m
       WHERE d.destination = $1 AND d.seq = c.seq AND m.seq = d.seq
       RETURNING ${PENDING_COLUMNS}`,
      [destination, now, limit, this.#owner, now + this.#leaseTimeout],
    );
    return rows.map(toPending).sort(bySeq);
  }

  /** Extends this owner's leases; see {@link Store.renew}. */
  async renew(destination: string, seqs: readonly number[]): Promise<number[]> {
    if (seqs.length === 0) return [];
    const rows = await this.#query<{ seq: number }>(
      'renew',
      `UPDATE ${this.#s}.deliveries SET lease_until = $4
       WHERE destination = $1 AND seq = ANY($2::bigint[]) AND lease_owner = $3
         AND status = 'pending'
       RETURNING seq`,
      [destination, seqs, this.#owner, this.#now() + this.#leaseTimeout],
    );
    return rows.map((r) => r.seq).sort((a, b) => a - b);
  }

  /** Fixes a batch's members; see {@link Store.seal}. */
  async seal(destination: string, batchId: string, seqs: readonly number[]): Promise<void> {
    await this.#query(
      'seal',
      `UPDATE ${this.#s}.deliveries SET batch_id = $2
       WHERE destination = $1 AND seq = ANY($3::bigint[])`,
      [destination, batchId, seqs],
    );
  }

  /**
   * Logs attempts and moves their deliveries on, releasing leases; see {@link Store.record}.
   * One round trip: the statements go as one simple query, which PostgreSQL runs as one
   * transaction, each statement with a fresh snapshot (so the head moves after the key locks).
   */
  async record(attempts: readonly AttemptRecord[]): Promise<void> {
    if (attempts.length === 0) return;
    const s = this.#s;
    const now = this.#now();
    const rows: Record<string, unknown>[] = [];
    const moves: unknown[][] = [];
    let settles = false;
    let delivers = false;
    for (const a of attempts) {
      const duration = Math.max(0, Math.round(a.durationMs));
      for (const seq of a.seqs) {
        rows.push({
          destination: a.destination,
          seq,
          at: Math.round(a.at),
          duration_ms: duration,
          status: a.status ?? null,
          error: a.error === undefined ? null : pgText(a.error),
          response: a.response === undefined ? null : pgText(a.response),
          next_at: a.outcome === 'pending' ? Math.round(a.nextAt ?? 0) : null,
          outcome: a.outcome,
          ended: Math.round(a.at) + duration,
          n: rows.length + 1,
        });
        moves.push([a.destination, seq, a.outcome]);
        if (a.outcome !== 'pending') settles = true;
        if (a.outcome === 'delivered') delivers = true;
      }
    }
    if (rows.length === 0) return;
    const pg = this.#pg;
    if (pg === undefined)
      throw new PostgresStoreError('PostgreSQL store: record: open() was not called');
    // The values go inline (no parameters in a multi-statement query): one JSON literal each,
    // escaped by the driver, read back with json_to_recordset.
    const lit = (value: unknown): string => `${pg.escapeLiteral(JSON.stringify(value))}::json`;
    const all = `(SELECT * FROM json_to_recordset(${lit(rows)}) AS u(destination text, seq bigint,
      at bigint, duration_ms integer, status integer, error text, response text, next_at bigint,
      outcome text, ended bigint, n integer))`;
    const moved = `(SELECT x->>0 AS destination, (x->>1)::bigint AS seq, x->>2 AS outcome
      FROM json_array_elements(${lit(moves)}) AS x)`;
    // The keys whose head may leave pending: locked first (in hash order, as everywhere), and
    // given their next head last, under those locks.
    const leavingKeys = `SELECT DISTINCT d.destination, d.key FROM ${s}.deliveries d
      JOIN ${moved} m ON d.destination = m.destination AND d.seq = m.seq
      WHERE m.outcome <> 'pending' AND d.key IS NOT NULL`;
    const keyLock = pg.escapeLiteral(`eventsinks.key:${this.#schema}`);
    const statements: string[] = [];
    if (settles) {
      statements.push(
        `SELECT pg_advisory_xact_lock(hashtext(${keyLock}), hashtext(destination || ':' || key))
         FROM (${leavingKeys}) x ORDER BY hashtext(destination || ':' || key)`,
      );
    }
    // The UPDATE in the CTE and the INSERT both see the deliveries as they were, so an attempt
    // is logged for every delivery that was pending (one deleted or settled meanwhile is left
    // alone, no error), even a stale owner's that may not move it.
    statements.push(
      `WITH u AS ${all}, moved AS (
         UPDATE ${s}.deliveries d SET
           status = u.outcome,
           attempts = d.attempts + 1,
           next_at = COALESCE(u.next_at, 0),
           batch_id = CASE WHEN u.outcome = 'pending' THEN d.batch_id ELSE NULL END,
           dead_at = CASE WHEN u.outcome = 'dead' THEN u.ended ELSE NULL END,
           head = CASE WHEN u.outcome = 'pending' THEN d.head ELSE false END,
           lease_owner = NULL,
           lease_until = NULL
         FROM u
         WHERE d.destination = u.destination AND d.seq = u.seq AND d.status = 'pending'
           AND (u.outcome = 'delivered' OR d.lease_owner IS NULL
             OR d.lease_owner = ${pg.escapeLiteral(this.#owner)} OR d.lease_until <= ${now})
         RETURNING d.seq
       )
       INSERT INTO ${s}.attempts
         (destination, seq, at, duration_ms, status, error, response, next_at, outcome)
       SELECT u.destination, u.seq, u.at, u.duration_ms, u.status, u.error, u.response,
         u.next_at, u.outcome
       FROM u JOIN ${s}.deliveries d ON d.destination = u.destination AND d.seq = u.seq
         AND d.status = 'pending'
       ORDER BY u.n`,
    );
    if (settles) {
      // No notification: the recording relay claims the new head itself right after (a
      // NOTIFY here had every relay claim on every record, tripling claims, for no gain).
      statements.push(
        `WITH k AS (${leavingKeys})
         UPDATE ${s}.deliveries d SET head = true
         FROM (
           SELECT k.destination, (
               SELECT e.seq FROM ${s}.deliveries e
               WHERE e.destination = k.destination AND e.key = k.key AND e.status = 'pending'
               ORDER BY e.seq LIMIT 1) AS seq
           FROM k
           WHERE NOT EXISTS (
             SELECT 1 FROM ${s}.deliveries h
             WHERE h.destination = k.destination AND h.key = k.key AND h.status = 'pending'
               AND h.head)
         ) m
         WHERE d.destination = m.destination AND d.seq = m.seq`,
      );
    }
    if (this.#retention === 0 && delivers) {
      statements.push(
        `DELETE FROM ${s}.deliveries d USING ${moved} m
         WHERE d.destination = m.destination AND d.seq = m.seq AND d.status = 'delivered'`,
        `DELETE FROM ${s}.messages x WHERE x.seq IN (SELECT m.seq FROM ${moved} m)
         AND NOT EXISTS (SELECT 1 FROM ${s}.deliveries d WHERE d.seq = x.seq)`,
      );
    }
    const pool = this.#poolOrThrow('record');
    try {
      await pool.query(statements.join(';\n'));
      this.#healthy = true;
    } catch (error) {
      throw this.#error('record', error);
    }
  }

  /** Sets one delivery back to pending; see {@link Store.resend}. */
  async resend(id: string, destination: string): Promise<PendingDelivery | undefined> {
    const s = this.#s;
    return this.#tx('resend', async (c) => {
      const keys = await this.#lockKeysOf(
        c,
        `${s}.deliveries d JOIN ${s}.messages m ON m.seq = d.seq
         WHERE m.id = $1 AND d.destination = $2`,
        [id, destination],
      );
      // Already pending: it keeps its place (head or not) and, when in flight, its lease.
      const { rows } = await c.query<PendingRow>(
        `INSERT INTO ${s}.deliveries AS x (destination, seq)
         SELECT $2, m.seq FROM ${s}.messages m WHERE m.id = $1
         ON CONFLICT (destination, seq) DO UPDATE SET
           status = 'pending', next_at = 0, batch_id = NULL, dead_at = NULL,
           attempts_before_resend = x.attempts,
           head = x.status = 'pending' AND x.head,
           lease_owner = CASE WHEN x.status = 'pending' THEN x.lease_owner END,
           lease_until = CASE WHEN x.status = 'pending' THEN x.lease_until END
         RETURNING seq`,
        [id, destination],
      );
      const seq = rows[0]?.seq;
      if (seq === undefined) return undefined;
      await this.#promote(c, keys);
      const pending = await c.query<PendingRow>(
        `SELECT ${PENDING_COLUMNS}
         FROM ${s}.deliveries d JOIN ${s}.messages m ON m.seq = d.seq
         WHERE d.destination = $1 AND d.seq = $2`,
        [destination, seq],
      );
      await this.#notify(c, [destination]);
      const row = pending.rows[0];
      return row === undefined ? undefined : toPending(row);
    });
  }

  /** Sets dead deliveries back to pending; see {@link Store.replayDead}. */
  async replayDead(destination: string, since: number, limit: number): Promise<PendingDelivery[]> {
    const s = this.#s;
    return this.#tx('replayDead', async (c) => {
      const keys = await this.#lockKeysOf(
        c,
        `(SELECT destination, key FROM ${s}.deliveries
          WHERE destination = $1 AND status = 'dead' AND dead_at >= $2
          ORDER BY seq LIMIT $3) d WHERE true`,
        [destination, since, limit],
      );
      const { rows } = await c.query<PendingRow>(
        `WITH r AS (
           SELECT seq FROM ${s}.deliveries
           WHERE destination = $1 AND status = 'dead' AND dead_at >= $2
           ORDER BY seq LIMIT $3
           FOR UPDATE SKIP LOCKED
         )
         UPDATE ${s}.deliveries d SET status = 'pending', next_at = 0, batch_id = NULL,
           dead_at = NULL, attempts_before_resend = d.attempts, head = false, lease_owner = NULL,
           lease_until = NULL
         FROM r, ${s}.messages m
         WHERE d.destination = $1 AND d.seq = r.seq AND m.seq = d.seq
         RETURNING ${PENDING_COLUMNS}`,
        [destination, since, limit],
      );
      await this.#promote(c, keys);
      if (rows.length > 0) await this.#notify(c, [destination]);
      return rows.map(toPending).sort(bySeq);
    });
  }

  /** Dead-letters the oldest pending deliveries; see {@link Store.overflow}. */
  async overflow(
    destination: string,
    count: number,
    busy: ReadonlySet<number>,
    reason: string,
  ): Promise<number[]> {
    if (count <= 0) return [];
    const s = this.#s;
    const now = this.#now();
    // A live lease, any owner's, counts as busy too: another relay may be sending it, and
    // this one holds a lease from its claim until the attempt is recorded (an attempt that
    // ended but whose record is still on its way is in no `busy` set).
    const candidates = `SELECT seq, key FROM ${s}.deliveries
      WHERE destination = $1 AND status = 'pending' AND NOT (seq = ANY($2::bigint[]))
        AND (lease_owner IS NULL OR lease_until <= $4)
      ORDER BY seq LIMIT $3`;
    const values = [destination, [...busy], count, now];
    return this.#tx('overflow', async (c) => {
      const keys = await this.#lockKeysOf(
        c,
        `(SELECT $1::text AS destination, key FROM (${candidates}) o) d WHERE true`,
        values,
      );
      const { rows } = await c.query<{ seq: number }>(
        `WITH o AS (${candidates} FOR UPDATE SKIP LOCKED)
         UPDATE ${s}.deliveries d SET status = 'dead', next_at = 0, batch_id = NULL,
           dead_at = $4, head = false, lease_owner = NULL, lease_until = NULL
         FROM o WHERE d.destination = $1 AND d.seq = o.seq
         RETURNING d.seq`,
        values,
      );
      await this.#promote(c, keys);
      const seqs = rows.map((r) => r.seq).sort((a, b) => a - b);
      if (seqs.length > 0) {
        await c.query(
          `INSERT INTO ${s}.attempts (destination, seq, at, duration_ms, error, outcome)
           SELECT $1, seq, $3, 0, $4, 'dead' FROM unnest($2::bigint[]) AS seq`,
          [destination, seqs, now, reason],
        );
      }
      return seqs;
    });
  }

  /** A page of messages, newest first; see {@link Store.listMessages}. */
  async listMessages(
    query: MessageQuery,
  ): Promise<{ items: MessageSummary[]; next: string | null }> {
    const s = this.#s;
    const limit = query.limit;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new RangeError(`Expected \`limit\` to be an integer from 1 to 1000, got ${limit}`);
    }
    if (query.status !== undefined && !STATUSES.includes(query.status)) {
      throw new RangeError(
        `Expected \`status\` to be one of ${STATUSES.join(', ')}, got ${JSON.stringify(query.status)}`,
      );
    }
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (value: unknown): string => {
      values.push(value);
      return `$${values.length}`;
    };
    if (query.cursor !== undefined) {
      const before = decodeCursor(query.cursor);
      where.push(`m.seq < ${param(before)}`);
    }
    if (query.since !== undefined) where.push(`m.received_at >= ${param(query.since)}`);
    if (query.destination !== undefined || query.status !== undefined) {
      const cond: string[] = ['d.seq = m.seq'];
      if (query.destination !== undefined) cond.push(`d.destination = ${param(query.destination)}`);
      if (query.status !== undefined) cond.push(`d.status = ${param(query.status)}`);
      where.push(`EXISTS (SELECT 1 FROM ${s}.deliveries d WHERE ${cond.join(' AND ')})`);
    }
    const rows = await this.#query<{
      seq: number;
      id: string;
      received_at: number;
      source: string;
      deliveries: { destination: string; status: DeliveryStatus; attempts: number }[] | null;
    }>(
      'listMessages',
      `SELECT m.seq, m.id, m.received_at, m.source,
         (SELECT json_agg(json_build_object('destination', d.destination, 'status', d.status,
            'attempts', d.attempts) ORDER BY d.destination)
          FROM ${s}.deliveries d WHERE d.seq = m.seq) AS deliveries
       FROM ${s}.messages m
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY m.seq DESC LIMIT ${param(limit + 1)}`,
      values,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({
        id: r.id,
        receivedAt: r.received_at,
        source: r.source,
        deliveries: r.deliveries ?? [],
      })),
      next: rows.length > limit && last !== undefined ? encodeCursor(last.seq) : null,
    };
  }

  /** One message with every attempt; see {@link Store.getMessage}. */
  async getMessage(id: string): Promise<MessageDetail | undefined> {
    const s = this.#s;
    const rows = await this.#query<{
      id: string;
      received_at: number;
      source: string;
      event: Record<string, unknown>;
      traceparent: string | null;
      deliveries: {
        destination: string;
        status: DeliveryStatus;
        attempts:
          | {
              at: number;
              durationMs: number;
              status: number | null;
              error: string | null;
              response: string | null;
              nextAt: number | null;
            }[]
          | null;
      }[];
    }>(
      'getMessage',
      `SELECT m.id, m.received_at, m.source, m.event, m.traceparent,
         COALESCE((SELECT json_agg(json_build_object('destination', d.destination,
             'status', d.status,
             'attempts', (SELECT json_agg(json_build_object('at', a.at,
                 'durationMs', a.duration_ms, 'status', a.status, 'error', a.error,
                 'response', a.response, 'nextAt', a.next_at) ORDER BY a.id)
               FROM ${s}.attempts a WHERE a.destination = d.destination AND a.seq = d.seq))
             ORDER BY d.destination)
           FROM ${s}.deliveries d WHERE d.seq = m.seq), '[]'::json) AS deliveries
       FROM ${s}.messages m WHERE m.id = $1`,
      [id],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      id: row.id,
      receivedAt: row.received_at,
      source: row.source,
      event: row.event,
      ...(row.traceparent !== null ? { traceparent: row.traceparent } : {}),
      deliveries: row.deliveries.map((d) => ({
        destination: d.destination,
        status: d.status,
        attempts: (d.attempts ?? []).map((a) => ({
          at: a.at,
          durationMs: a.durationMs,
          ...(a.status === null ? {} : { status: a.status }),
          ...(a.error === null ? {} : { error: a.error }),
          ...(a.response === null ? {} : { response: a.response }),
          ...(a.nextAt === null ? {} : { nextAt: a.nextAt }),
        })),
      })),
    };
  }

  /** Pending, delivered and dead counts of a destination. */
  async counts(destination: string): Promise<DeliveryCounts> {
    const rows = await this.#query<{ status: DeliveryStatus; n: number }>(
      'counts',
      `SELECT status, count(*)::bigint AS n FROM ${this.#s}.deliveries
       WHERE destination = $1 GROUP BY status`,
      [destination],
    );
    const counts: DeliveryCounts = { pending: 0, delivered: 0, dead: 0 };
    for (const r of rows) counts[r.status] = r.n;
    return counts;
  }

  /** A destination's runtime state (empty when never set). */
  async destination(name: string): Promise<DestinationRecord> {
    const rows = await this.#query<{
      state: 'enabled' | 'disabled' | null;
      reason: string | null;
      failing_since: number | null;
      last_success_at: number | null;
      last_error: string | null;
    }>('destination', `SELECT * FROM ${this.#s}.destinations WHERE name = $1`, [name]);
    const r = rows[0];
    if (r === undefined) return {};
    return {
      ...(r.state === null ? {} : { state: r.state }),
      ...(r.reason === null ? {} : { reason: r.reason }),
      ...(r.failing_since === null ? {} : { failingSince: r.failing_since }),
      ...(r.last_success_at === null ? {} : { lastSuccessAt: r.last_success_at }),
      ...(r.last_error === null ? {} : { lastError: r.last_error }),
    };
  }

  /**
   * Changes the fields present in `change`; a field present with the value `undefined` is
   * cleared.
   */
  async updateDestination(name: string, change: Partial<DestinationRecord>): Promise<void> {
    const columns: [keyof DestinationRecord, string][] = [
      ['state', 'state'],
      ['reason', 'reason'],
      ['failingSince', 'failing_since'],
      ['lastSuccessAt', 'last_success_at'],
      ['lastError', 'last_error'],
    ];
    const present = columns.filter(([field]) => field in change);
    if (present.length === 0) return;
    const values: unknown[] = [name, ...present.map(([field]) => change[field] ?? null)];
    const names = present.map(([, column]) => column);
    await this.#query(
      'updateDestination',
      `INSERT INTO ${this.#s}.destinations (name, ${names.join(', ')})
       VALUES ($1, ${names.map((_, i) => `$${i + 2}`).join(', ')})
       ON CONFLICT (name) DO UPDATE SET
         ${names.map((n) => `${n} = EXCLUDED.${n}`).join(', ')}`,
      values,
    );
  }

  /** Deletes delivered messages received before `before`; see {@link Store.purge}. */
  async purge(before: number, limit: number): Promise<number> {
    const s = this.#s;
    return this.#tx('purge', async (c) => {
      // SKIP LOCKED: two relays purging at once share the work instead of waiting.
      const deleted = await c.query(
        `DELETE FROM ${s}.messages WHERE seq IN (
           SELECT m.seq FROM ${s}.messages m
           WHERE m.received_at < $1 AND NOT EXISTS (
             SELECT 1 FROM ${s}.deliveries d WHERE d.seq = m.seq AND d.status <> 'delivered')
           ORDER BY m.seq LIMIT $2
           FOR UPDATE SKIP LOCKED)`,
        [before, limit],
      );
      await c.query(`DELETE FROM ${s}.idempotency WHERE at < $1`, [before]);
      return deleted.rowCount ?? 0;
    });
  }

  /** Wakes `listener` on new due deliveries from any relay; see {@link Store.subscribe}. */
  subscribe(listener: (destination: string) => void): () => void {
    this.#listeners.add(listener);
    if (this.#listenClient === undefined && this.#listenRetry === undefined) this.#listen();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #listen(): void {
    this.#listenRetry = undefined;
    if (this.#closed || this.#pg === undefined) return;
    const client = new this.#pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: this.#connectTimeout,
      keepAlive: true,
    });
    let lost = false;
    const onLost = (error: unknown): void => {
      if (lost) return;
      lost = true;
      if (this.#listenClient === client) this.#listenClient = undefined;
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#onError(error, 'LISTEN connection lost; reconnecting');
      this.#unreachable(error);
      // Back off to at most 5 s between attempts while the server is away.
      const delay = Math.min(5_000, 100 * 2 ** Math.min(this.#listenFailures++, 6));
      this.#listenRetry = setTimeout(() => this.#listen(), delay);
      this.#listenRetry.unref();
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the LISTEN connection ended')));
    client.on('notification', (n) => {
      if (n.channel === this.#channel && n.payload !== undefined) this.#wake(n.payload);
      else if (n.channel === this.#specChannel) this.#specsChanged();
    });
    this.#listenClient = client;
    client
      .connect()
      .then(() => client.query(`LISTEN "${this.#channel}"; LISTEN "${this.#specChannel}"`))
      .then(() => {
        this.#listenFailures = 0;
        if (this.#listenedBefore) {
          for (const d of this.#claimed) this.#wake(d);
          // Changes made while not listening were not heard.
          this.#specsChanged();
        }
        this.#listenedBefore = true;
      })
      .catch(onLost);
  }

  // Many notifications in one turn of the event loop reach each listener once per destination.
  #wake(destination: string): void {
    this.#wakeups.add(destination);
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      const wakeups = this.#wakeups;
      this.#wakeups = new Set();
      for (const d of wakeups) {
        for (const listener of this.#listeners) {
          try {
            listener(d);
          } catch (error) {
            // The other listeners still hear of it.
            this.#onError(error, 'subscriber threw');
          }
        }
      }
    });
  }
}
