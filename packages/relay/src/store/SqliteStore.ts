// The embedded store: one SQLite database (`<dataDir>/relay.db`) in WAL mode, held with an
// exclusive lock from open to close, so one relay owns it (the way a QueueFile has one owner).
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { QueueLockedError } from 'eventsinks/sqlite';
import { LocalLeases } from './LocalLeases.js';
import { DestinationSpecConflictError } from './Store.js';
import type {
  Attempt,
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
  PendingDelivery,
  Store,
  StoreOptions,
  StoredMessage,
} from './Store.js';

/** @internal A message as migrate.ts hands it to {@link SqliteStore.importMessages}. */
export interface ImportedMessage {
  id: string;
  receivedAt: number;
  source: string;
  event: Record<string, unknown>;
  deliveries: {
    destination: string;
    status: 'pending' | 'dead';
    attempts: number;
    key?: string;
    batchId?: string;
    /** Dead letters: when it was given up on, the error and HTTP status of the last attempt. */
    deadAt?: number;
    error?: string;
    httpStatus?: number;
  }[];
}

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions extends StoreOptions {
  /** The database file; created if missing. Its directory must exist. */
  path: string;
  /**
   * What a commit survives: `process` (WAL, `synchronous = NORMAL`: a killed process loses
   * nothing) or `power` (WAL, `synchronous = FULL`: an fsync per commit, survives a power cut).
   */
  durability: 'process' | 'power';
}

// 'evsr': marks the file as a relay store, so we never write into someone else's database.
const APPLICATION_ID = 0x65767372;
const STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'dead'];

// Forward-only: migration i takes the schema from user_version i to i + 1.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    received_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    event TEXT NOT NULL
  );
  CREATE INDEX messages_received_at ON messages (received_at);
  CREATE TABLE deliveries (
    destination TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL DEFAULT 0,
    key TEXT,
    batch_id TEXT,
    dead_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (destination, seq)
  ) WITHOUT ROWID;
  -- A message's deliveries (getMessage, purge, delete-on-delivery).
  CREATE INDEX deliveries_seq ON deliveries (seq);
  -- What the dispatcher pages through, and the destination/status filters of listMessages:
  -- partial, so they hold only the few rows not yet delivered.
  CREATE INDEX deliveries_pending ON deliveries (destination, seq) WHERE status = 'pending';
  CREATE INDEX deliveries_dead ON deliveries (destination, seq) WHERE status = 'dead';
  CREATE INDEX deliveries_open ON deliveries (seq) WHERE status != 'delivered';
  CREATE TABLE attempts (
    destination TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    response TEXT,
    next_at INTEGER
  );
  CREATE INDEX attempts_delivery ON attempts (seq, destination);
  CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX idempotency_created_at ON idempotency (created_at);
  -- Deliveries per destination and status, kept with every change: counting a million
  -- delivered rows on each call would take most of a second.
  CREATE TABLE delivery_counts (
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (destination, status)
  ) WITHOUT ROWID;
  CREATE TABLE destinations (
    name TEXT PRIMARY KEY,
    state TEXT,
    reason TEXT,
    failing_since INTEGER,
    last_success_at INTEGER,
    last_error TEXT
  );
  `,
  // 2: destinations created over the admin API (the file's are not stored), and each
  // message's W3C traceparent.
  `
  CREATE TABLE destination_specs (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  ALTER TABLE messages ADD COLUMN traceparent TEXT;
  `,
  // 3: the attempts made before a delivery's last resend or replay, so that it gets the whole
  // retry budget again from any relay and after a restart (attempts keeps the total).
  `
  ALTER TABLE deliveries ADD COLUMN attempts_before_resend INTEGER NOT NULL DEFAULT 0;
  `,
];

/** The schema version this code writes (`PRAGMA user_version`). */
export const SQLITE_STORE_SCHEMA = MIGRATIONS.length;

interface PendingRow {
  seq: number;
  id: string;
  received_at: number;
  source: string;
  event: string;
  key: string | null;
  attempts: number;
  next_at: number;
  batch_id: string | null;
  traceparent: string | null;
}

interface SpecRow {
  name: string;
  config: string;
  version: number;
  created_at: number;
  updated_at: number;
}

function toSpec(row: SpecRow): DestinationSpec {
  return {
    name: row.name,
    config: JSON.parse(row.config) as Record<string, unknown>,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

interface SummaryRow {
  seq: number;
  id: string;
  received_at: number;
  source: string;
}

interface DestinationRow {
  state: string | null;
  reason: string | null;
  failing_since: number | null;
  last_success_at: number | null;
  last_error: string | null;
}

const PENDING_COLUMNS = `m.seq AS seq, m.id AS id, m.received_at AS received_at, m.source AS source,
  m.event AS event, d.key AS key, d.attempts - d.attempts_before_resend AS attempts,
  d.next_at AS next_at, d.batch_id AS batch_id,
  m.traceparent AS traceparent`;

type Statements = ReturnType<typeof prepare>;

// Multi-row INSERTs of 1, 4, 16 and 64 rows: one statement call per 64 rows instead of one per
// row roughly halves the cost of a large ingest (as QueueFile does for its appends).
const CHUNKS = [64, 16, 4, 1] as const;

type Values = (string | number | null)[];

function chunked(
  db: Database.Database,
  head: string,
  row: string,
  tail: string,
): Map<number, Database.Statement<Values>> {
  return new Map(
    CHUNKS.map((n) => [
      n,
      db.prepare<Values>(`${head} ${new Array<string>(n).fill(row).join(', ')} ${tail}`),
    ]),
  );
}

/** Runs `rows` (each `width` values, flattened in `values`) through the chunked statements. */
function runChunked(
  statements: Map<number, Database.Statement<Values>>,
  values: Values,
  width: number,
  each?: (result: unknown[]) => void,
): void {
  const rows = values.length / width;
  let done = 0;
  for (const n of CHUNKS) {
    const statement = statements.get(n)!;
    for (; rows - done >= n; done += n) {
      const slice = values.slice(done * width, (done + n) * width);
      if (each) each(statement.all(...slice));
      else statement.run(...slice);
    }
  }
}

function prepare(db: Database.Database) {
  return {
    specs: db.prepare<[], SpecRow>('SELECT * FROM destination_specs ORDER BY name'),
    spec: db.prepare<[string], SpecRow>('SELECT * FROM destination_specs WHERE name = ?'),
    putSpec: db.prepare<[string, string, number, number, number]>(
      `INSERT INTO destination_specs (name, config, version, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET config = excluded.config,
       version = excluded.version, updated_at = excluded.updated_at`,
    ),
    deleteSpec: db.prepare<[string]>('DELETE FROM destination_specs WHERE name = ?'),
    idempotencyGet: db
      .prepare<[string], string>('SELECT answer FROM idempotency WHERE key = ?')
      .pluck(),
    idempotencyPut: db.prepare<[string, string, number]>(
      'INSERT INTO idempotency (key, answer, created_at) VALUES (?, ?, ?)',
    ),
    // RETURNING lists the rows inserted: an id stored before (or earlier in the batch) is not.
    insertMessages: chunked(
      db,
      'INSERT INTO messages (id, received_at, source, event, traceparent) VALUES',
      '(?, ?, ?, ?, ?)',
      'ON CONFLICT (id) DO NOTHING RETURNING seq, id',
    ),
    insertDeliveries: chunked(
      db,
      'INSERT INTO deliveries (destination, seq, status, key, updated_at) VALUES',
      "(?, ?, 'pending', ?, ?)",
      '',
    ),
    pending: db.prepare<[string, number, number], PendingRow>(
      // INDEXED BY: without statistics the planner may walk the primary key instead, through
      // every delivered row of the destination (a second with a million of them).
      `SELECT ${PENDING_COLUMNS} FROM deliveries d INDEXED BY deliveries_pending
       JOIN messages m ON m.seq = d.seq
       WHERE d.destination = ? AND d.status = 'pending' AND d.seq > ? ORDER BY d.seq LIMIT ?`,
    ),
    pendingOne: db.prepare<[string, number], PendingRow>(
      `SELECT ${PENDING_COLUMNS} FROM deliveries d JOIN messages m ON m.seq = d.seq
       WHERE d.destination = ? AND d.seq = ?`,
    ),
    seal: db.prepare<[string, string, number]>(
      "UPDATE deliveries SET batch_id = ? WHERE destination = ? AND seq = ? AND status = 'pending'",
    ),
    insertAttempt: db.prepare<
      [string, number, number, number, number | null, string | null, string | null, number | null]
    >(
      `INSERT INTO attempts (destination, seq, at, duration_ms, status, error, response, next_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    toDelivered: db.prepare<[number, string, number]>(
      `UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, next_at = 0,
       batch_id = NULL, dead_at = NULL, updated_at = ?
       WHERE destination = ? AND seq = ? AND status = 'pending'`,
    ),
    toPending: db.prepare<[number, number, string, number]>(
      `UPDATE deliveries SET status = 'pending', attempts = attempts + 1, next_at = ?,
       updated_at = ? WHERE destination = ? AND seq = ? AND status = 'pending'`,
    ),
    toDead: db.prepare<[number, number, string, number]>(
      `UPDATE deliveries SET status = 'dead', attempts = attempts + 1, next_at = 0,
       batch_id = NULL, dead_at = ?, updated_at = ?
       WHERE destination = ? AND seq = ? AND status = 'pending'`,
    ),
    // overflow: moved without an attempt at the destination, so the count stays.
    overflowDead: db.prepare<[number, number, string, number]>(
      `UPDATE deliveries SET status = 'dead', next_at = 0, batch_id = NULL, dead_at = ?,
       updated_at = ? WHERE destination = ? AND seq = ? AND status = 'pending'`,
    ),
    deleteDelivery: db.prepare<[string, number]>(
      "DELETE FROM deliveries WHERE destination = ? AND seq = ? AND status = 'pending'",
    ),
    deleteDeliveryAttempts: db.prepare<[number, string]>(
      'DELETE FROM attempts WHERE seq = ? AND destination = ?',
    ),
    deleteOrphan: db.prepare<[number, number]>(
      'DELETE FROM messages WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE seq = ?)',
    ),
    messageSeq: db.prepare<[string], number>('SELECT seq FROM messages WHERE id = ?').pluck(),
    resend: db.prepare<[string, number, number]>(
      `INSERT INTO deliveries (destination, seq, status, updated_at) VALUES (?, ?, 'pending', ?)
       ON CONFLICT (destination, seq) DO UPDATE SET status = 'pending', next_at = 0,
       batch_id = NULL, dead_at = NULL, attempts_before_resend = attempts,
       updated_at = excluded.updated_at`,
    ),
    deadSince: db
      .prepare<[string, number, number], number>(
        `SELECT seq FROM deliveries INDEXED BY deliveries_dead
         WHERE destination = ? AND status = 'dead' AND dead_at >= ?
         ORDER BY seq LIMIT ?`,
      )
      .pluck(),
    replay: db.prepare<[number, string, number]>(
      `UPDATE deliveries SET status = 'pending', next_at = 0, batch_id = NULL, dead_at = NULL,
       attempts_before_resend = attempts, updated_at = ?
       WHERE destination = ? AND seq = ? AND status = 'dead'`,
    ),
    oldestPending: db
      .prepare<[string, number], number>(
        `SELECT seq FROM deliveries INDEXED BY deliveries_pending
         WHERE destination = ? AND status = 'pending' ORDER BY seq LIMIT ?`,
      )
      .pluck(),
    message: db.prepare<[string], SummaryRow & { event: string; traceparent: string | null }>(
      'SELECT seq, id, received_at, source, event, traceparent FROM messages WHERE id = ?',
    ),
    messageDeliveries: db.prepare<
      [number],
      { destination: string; status: DeliveryStatus; attempts: number }
    >('SELECT destination, status, attempts FROM deliveries WHERE seq = ? ORDER BY destination'),
    messageAttempts: db.prepare<
      [number],
      {
        destination: string;
        at: number;
        duration_ms: number;
        status: number | null;
        error: string | null;
        response: string | null;
        next_at: number | null;
      }
    >(
      `SELECT destination, at, duration_ms, status, error, response, next_at FROM attempts
       WHERE seq = ? ORDER BY destination, at, rowid`,
    ),
    count: db
      .prepare<[string, string], number>(
        'SELECT n FROM delivery_counts WHERE destination = ? AND status = ?',
      )
      .pluck(),
    tally: db.prepare<[string, string, number]>(
      `INSERT INTO delivery_counts (destination, status, n) VALUES (?, ?, ?)
       ON CONFLICT (destination, status) DO UPDATE SET n = n + excluded.n`,
    ),
    deliveryStatus: db
      .prepare<[string, number], DeliveryStatus>(
        'SELECT status FROM deliveries WHERE destination = ? AND seq = ?',
      )
      .pluck(),
    destination: db.prepare<[string], DestinationRow>(
      'SELECT state, reason, failing_since, last_success_at, last_error FROM destinations WHERE name = ?',
    ),
    putDestination: db.prepare<
      [string, string | null, string | null, number | null, number | null, string | null]
    >(
      `INSERT INTO destinations (name, state, reason, failing_since, last_success_at, last_error)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state,
       reason = excluded.reason, failing_since = excluded.failing_since,
       last_success_at = excluded.last_success_at, last_error = excluded.last_error`,
    ),
    purgeable: db
      .prepare<[number, number], number>(
        `SELECT seq FROM messages m WHERE received_at < ? AND NOT EXISTS
         (SELECT 1 FROM deliveries d WHERE d.seq = m.seq AND d.status != 'delivered')
         ORDER BY received_at LIMIT ?`,
      )
      .pluck(),
    purgeAttempts: db.prepare<[number]>('DELETE FROM attempts WHERE seq = ?'),
    purgeDeliveries: db.prepare<[number], { destination: string; status: DeliveryStatus }>(
      'DELETE FROM deliveries WHERE seq = ? RETURNING destination, status',
    ),
    purgeMessage: db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
    purgeKeys: db.prepare<[number, number]>(
      `DELETE FROM idempotency WHERE key IN
       (SELECT key FROM idempotency WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
    ),
  };
}

/** The SQL of one {@link SqliteStore.listMessages} page (one row more than `limit`). */
function pageQuery(query: MessageQuery): { sql: string; params: (string | number)[] } {
  const { destination, status, since, limit, cursor } = query;
  const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
  const params: (string | number)[] = [];
  let sql: string;
  // Each shape walks one index backwards from the cursor and stops after `limit` rows.
  if (destination !== undefined) {
    sql = `SELECT m.seq, m.id, m.received_at, m.source FROM deliveries d
             JOIN messages m ON m.seq = d.seq WHERE d.destination = ? AND d.seq < ?`;
    params.push(destination, before);
    if (status !== undefined) {
      sql += ' AND d.status = ?';
      params.push(status);
    }
    if (since !== undefined) {
      sql += ' AND m.received_at >= ?';
      params.push(since);
    }
    sql += ' ORDER BY d.seq DESC LIMIT ?';
  } else if (status === 'pending' || status === 'dead') {
    // The deliveries_open index condition is spelled out, so the planner may use it.
    sql = `SELECT m.seq, m.id, m.received_at, m.source FROM deliveries d
             JOIN messages m ON m.seq = d.seq
             WHERE d.status != 'delivered' AND d.status = ? AND d.seq < ?`;
    params.push(status, before);
    if (since !== undefined) {
      sql += ' AND m.received_at >= ?';
      params.push(since);
    }
    sql += ' GROUP BY d.seq ORDER BY d.seq DESC LIMIT ?';
  } else {
    sql = 'SELECT m.seq, m.id, m.received_at, m.source FROM messages m WHERE m.seq < ?';
    params.push(before);
    if (status !== undefined) {
      sql += ` AND EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = m.seq AND d.status = ?)`;
      params.push(status);
    }
    if (since !== undefined) {
      sql += ' AND m.received_at >= ?';
      params.push(since);
    }
    sql += ' ORDER BY m.seq DESC LIMIT ?';
  }
  // One more than asked: whether there is a next page, without an empty last page.
  // One more than asked: whether there is a next page, without an empty last page.
  params.push(limit + 1);
  return { sql, params };
}

/** Changes to delivery_counts within one transaction, written once at its end. */
class Tally {
  readonly #deltas = new Map<string, Map<DeliveryStatus, number>>();

  add(destination: string, status: DeliveryStatus, delta: number): void {
    let byStatus = this.#deltas.get(destination);
    if (!byStatus) this.#deltas.set(destination, (byStatus = new Map<DeliveryStatus, number>()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + delta);
  }

  move(destination: string, from: DeliveryStatus, to: DeliveryStatus): void {
    this.add(destination, from, -1);
    this.add(destination, to, 1);
  }

  flush(s: Statements): void {
    for (const [destination, byStatus] of this.#deltas) {
      for (const [status, delta] of byStatus)
        if (delta !== 0) s.tally.run(destination, status, delta);
    }
  }
}

function toPending(row: PendingRow): PendingDelivery {
  return {
    seq: row.seq,
    id: row.id,
    receivedAt: row.received_at,
    source: row.source,
    event: JSON.parse(row.event) as Record<string, unknown>,
    key: row.key ?? undefined,
    attempts: row.attempts,
    nextAt: row.next_at,
    batchId: row.batch_id ?? undefined,
    ...(row.traceparent !== null ? { traceparent: row.traceparent } : {}),
  };
}

function expectLimit(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`Expected \`${name}\` to be an integer from 1 to ${max}, got ${value}`);
  }
}

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

/**
 * The relay's default {@link Store}: one SQLite database (better-sqlite3) in WAL mode, locked
 * exclusively from `open()` to `close()` so one relay owns it. A second owner (another relay, or
 * the CLI while a relay runs) is refused at `open()` with the library's `QueueLockedError`
 * (code `ERR_QUEUE_LOCKED`, its `path` the database's). Every method runs in one transaction.
 *
 * @example
 * ```ts
 * const store = new SqliteStore({ path: join(dataDir, 'relay.db'), durability: 'process', retention: 86_400_000 });
 * await store.open();
 * const { stored } = await store.ingest({ messages: [{ id, receivedAt: Date.now(), source: 'http', event, deliveries: [{ destination: 'hooks' }] }] });
 * ```
 */
export class SqliteStore implements Store {
  /** The database file, as given. */
  readonly path: string;
  readonly #options: SqliteStoreOptions;
  #db: Database.Database | undefined;
  #s: Statements | undefined;
  readonly #pages = new Map<string, Database.Statement<(string | number)[], SummaryRow>>();
  #closed = false;
  // One owner per file: leases and wake-ups need not leave the process.
  readonly #specListeners = new Set<() => void>();
  readonly #leases = new LocalLeases((d, after, limit) => this.pending(d, after, limit));

  /** @throws TypeError naming a bad option. Nothing is opened before {@link SqliteStore.open}. */
  constructor(options: SqliteStoreOptions) {
    const { path, durability, retention } = options;
    if (typeof path !== 'string' || path === '' || path === ':memory:' || path.includes('\0')) {
      throw new TypeError(`Expected \`path\` to be a file path, got ${JSON.stringify(path)}`);
    }
    if (durability !== 'process' && durability !== 'power') {
      throw new TypeError(
        `Expected \`durability\` to be 'process' or 'power', got ${JSON.stringify(durability)}`,
      );
    }
    if (!Number.isInteger(retention) || retention < 0) {
      throw new TypeError(`Expected \`retention\` to be ms ≥ 0, got ${String(retention)}`);
    }
    this.path = path;
    this.#options = { ...options };
  }

  /**
   * Opens (creating or migrating) the database and takes its lock.
   * @throws QueueLockedError (`ERR_QUEUE_LOCKED`) when another process or store holds it; an
   *   Error naming the path when it cannot be opened or was written by a newer relay.
   */
  open(): Promise<void> {
    return this.#run(() => {
      if (this.#closed) throw new Error(`the store ${JSON.stringify(this.path)} is closed`);
      if (this.#db) return;
      this.#db = openDatabase(this.path, this.#options.durability);
      this.#s = prepare(this.#db);
    });
  }

  /** Closes the database and releases its lock. Later calls (but `close`) reject. */
  close(): Promise<void> {
    this.#closed = true;
    if (this.#db?.open) this.#db.close();
    this.#db = undefined;
    this.#s = undefined;
    this.#pages.clear();
    return Promise.resolve();
  }

  /** @internal The pragmas that make up `durability`, for tests. */
  pragmas(): { journalMode: unknown; synchronous: unknown; lockingMode: unknown } {
    const db = this.#database();
    return {
      journalMode: db.pragma('journal_mode', { simple: true }),
      synchronous: db.pragma('synchronous', { simple: true }),
      lockingMode: db.pragma('locking_mode', { simple: true }),
    };
  }

  ingest(batch: IngestBatch): Promise<IngestOutcome> {
    return this.#run(() => {
      const s = this.#statements();
      return this.#database().transaction((): IngestOutcome => {
        const { idempotencyKey } = batch;
        if (idempotencyKey !== undefined) {
          const answer = s.idempotencyGet.get(idempotencyKey);
          if (answer !== undefined) return { replayed: answer, stored: [], duplicates: [] };
          s.idempotencyPut.run(idempotencyKey, batch.answer ?? '', Date.now());
        }
        const { messages } = batch;
        const values = new Array<string | number | null>(messages.length * 5);
        for (let i = 0; i < messages.length; i++) {
          const { id, receivedAt, source, event, traceparent } = messages[i]!;
          let json: string | undefined;
          try {
            json = JSON.stringify(event);
          } catch (error) {
            throw new TypeError(`cannot store message ${JSON.stringify(id)}: ${String(error)}`, {
              cause: error,
            });
          }
          if (typeof json !== 'string') {
            throw new TypeError(`cannot store message ${JSON.stringify(id)}: it is not JSON`);
          }
          values[i * 5] = id;
          values[i * 5 + 1] = receivedAt;
          values[i * 5 + 2] = source;
          values[i * 5 + 3] = json;
          values[i * 5 + 4] = traceparent ?? null;
        }
        const inserted = new Map<string, number>();
        runChunked(s.insertMessages, values, 5, (rows) => {
          for (const row of rows as { seq: number; id: string }[]) inserted.set(row.id, row.seq);
        });
        const stored: StoredMessage[] = [];
        const duplicates: string[] = [];
        const deliveries: Values = [];
        const tally = new Tally();
        for (const { id, receivedAt, source, deliveries: targets } of messages) {
          const seq = inserted.get(id);
          if (seq === undefined) {
            duplicates.push(id);
            continue;
          }
          // The first message with this id took it; a repeat later in the batch is a duplicate.
          inserted.delete(id);
          for (let i = 0; i < targets.length; i++) {
            const delivery = targets[i]!;
            // A destination listed twice gets one delivery (the first), not a constraint error.
            if (i > 0 && targets.findIndex((t) => t.destination === delivery.destination) < i) {
              continue;
            }
            deliveries.push(delivery.destination, seq, delivery.key ?? null, receivedAt);
            tally.add(delivery.destination, 'pending', 1);
          }
          stored.push({ id, seq, receivedAt, source });
        }
        runChunked(s.insertDeliveries, deliveries, 4);
        tally.flush(s);
        return { stored, duplicates };
      })();
    }).then((outcome) => {
      if (outcome.stored.length > 0) {
        this.#leases.wake(batch.messages.flatMap((m) => m.deliveries.map((d) => d.destination)));
      }
      return outcome;
    });
  }

  pending(destination: string, afterSeq: number, limit: number): Promise<PendingDelivery[]> {
    return this.#run(() => {
      expectLimit('limit', limit, Number.MAX_SAFE_INTEGER);
      return this.#statements().pending.all(destination, afterSeq, limit).map(toPending);
    });
  }

  seal(destination: string, batchId: string, seqs: readonly number[]): Promise<void> {
    return this.#run(() => {
      const s = this.#statements();
      this.#database().transaction(() => {
        for (const seq of seqs) s.seal.run(batchId, destination, seq);
      })();
    });
  }

  record(attempts: readonly AttemptRecord[]): Promise<void> {
    return this.#run(() => {
      const s = this.#statements();
      const keep = this.#options.retention > 0;
      this.#database().transaction(() => {
        const tally = new Tally();
        for (const attempt of attempts) {
          const { destination, at, durationMs, outcome } = attempt;
          const end = at + durationMs;
          for (const seq of attempt.seqs) {
            // Only pending deliveries move: one resent, replayed or moved by overflow meanwhile
            // keeps what the operator did.
            if (outcome === 'delivered' && !keep) {
              if (s.deleteDelivery.run(destination, seq).changes === 0) continue;
              tally.add(destination, 'pending', -1);
              s.deleteDeliveryAttempts.run(seq, destination);
              s.deleteOrphan.run(seq, seq);
              continue;
            }
            const changed =
              outcome === 'delivered'
                ? s.toDelivered.run(end, destination, seq)
                : outcome === 'dead'
                  ? s.toDead.run(end, end, destination, seq)
                  : s.toPending.run(attempt.nextAt ?? 0, end, destination, seq);
            if (changed.changes === 0) continue;
            if (outcome !== 'pending') tally.move(destination, 'pending', outcome);
            s.insertAttempt.run(
              destination,
              seq,
              at,
              durationMs,
              attempt.status ?? null,
              attempt.error ?? null,
              attempt.response ?? null,
              outcome === 'pending' ? (attempt.nextAt ?? 0) : null,
            );
          }
        }
        tally.flush(s);
      })();
    }).then(() => {
      for (const a of attempts) this.#leases.release(a.destination, a.seqs);
    });
  }

  resend(id: string, destination: string): Promise<PendingDelivery | undefined> {
    return this.#run(() => {
      const s = this.#statements();
      return this.#database().transaction(() => {
        const seq = s.messageSeq.get(id);
        if (seq === undefined) return undefined;
        const was = s.deliveryStatus.get(destination, seq);
        s.resend.run(destination, seq, Date.now());
        const tally = new Tally();
        if (was === undefined) tally.add(destination, 'pending', 1);
        else if (was !== 'pending') tally.move(destination, was, 'pending');
        tally.flush(s);
        const row = s.pendingOne.get(destination, seq);
        return row && toPending(row);
      })();
    }).then((resent) => {
      if (resent) this.#leases.wake([destination]);
      return resent;
    });
  }

  replayDead(destination: string, since: number, limit: number): Promise<PendingDelivery[]> {
    return this.#run(() => {
      expectLimit('limit', limit, Number.MAX_SAFE_INTEGER);
      const s = this.#statements();
      return this.#database().transaction(() => {
        const now = Date.now();
        const replayed: PendingDelivery[] = [];
        const tally = new Tally();
        for (const seq of s.deadSince.all(destination, since, limit)) {
          if (s.replay.run(now, destination, seq).changes > 0) {
            tally.move(destination, 'dead', 'pending');
          }
          const row = s.pendingOne.get(destination, seq);
          if (row) replayed.push(toPending(row));
        }
        tally.flush(s);
        return replayed;
      })();
    }).then((replayed) => {
      if (replayed.length > 0) this.#leases.wake([destination]);
      return replayed;
    });
  }

  overflow(
    destination: string,
    count: number,
    busy: ReadonlySet<number>,
    reason: string,
  ): Promise<number[]> {
    return this.#run(() => {
      const s = this.#statements();
      if (count <= 0) return [];
      return this.#database().transaction(() => {
        const now = Date.now();
        const moved: number[] = [];
        // At most busy.size of the oldest are skipped, so this many rows always suffice.
        for (const seq of s.oldestPending.all(destination, count + busy.size)) {
          if (moved.length === count) break;
          if (busy.has(seq)) continue;
          s.overflowDead.run(now, now, destination, seq);
          s.insertAttempt.run(destination, seq, now, 0, null, reason, null, null);
          moved.push(seq);
        }
        const tally = new Tally();
        for (let i = 0; i < moved.length; i++) tally.move(destination, 'pending', 'dead');
        tally.flush(s);
        return moved;
      })();
    });
  }

  listMessages(query: MessageQuery): Promise<{ items: MessageSummary[]; next: string | null }> {
    return this.#run(() => {
      const { status, limit } = query;
      expectLimit('limit', limit, 1000);
      if (status !== undefined && !STATUSES.includes(status)) {
        throw new RangeError(
          `Expected \`status\` to be one of ${STATUSES.join(', ')}, got ${JSON.stringify(status)}`,
        );
      }
      const db = this.#database();
      const { sql, params } = pageQuery(query);
      const s = this.#statements();
      return db.transaction(() => {
        let statement = this.#pages.get(sql);
        if (!statement) {
          // A dozen shapes at most (which filters are set): each prepared once.
          statement = db.prepare<(string | number)[], SummaryRow>(sql);
          this.#pages.set(sql, statement);
        }
        const rows = statement.all(...params);
        const page = rows.slice(0, limit);
        const items = page.map((row) => ({
          id: row.id,
          receivedAt: row.received_at,
          source: row.source,
          deliveries: s.messageDeliveries.all(row.seq),
        }));
        const last = page.at(-1);
        return { items, next: rows.length > limit && last ? encodeCursor(last.seq) : null };
      })();
    });
  }

  /**
   * @internal For migrate.ts: stores messages with deliveries already pending or dead, keeping
   * their ids, in one transaction. A message already stored is reused (only its missing
   * deliveries are added), a delivery already there is skipped: re-running adds nothing.
   * Returns how many pending and dead deliveries were added.
   */
  importMessages(messages: readonly ImportedMessage[]): Promise<{ pending: number; dead: number }> {
    return this.#run(() => {
      const db = this.#database();
      const s = this.#statements();
      const insertMessage = db.prepare<[string, number, string, string]>(
        'INSERT INTO messages (id, received_at, source, event) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
      );
      const insertDelivery = db.prepare<
        [string, number, string, number, string | null, string | null, number | null, number]
      >(
        `INSERT INTO deliveries (destination, seq, status, attempts, key, batch_id, dead_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination, seq) DO NOTHING`,
      );
      return db.transaction(() => {
        let pending = 0;
        let dead = 0;
        const tally = new Tally();
        for (const m of messages) {
          insertMessage.run(m.id, m.receivedAt, m.source, JSON.stringify(m.event));
          const seq = s.messageSeq.get(m.id)!;
          for (const d of m.deliveries) {
            const deadAt = d.status === 'dead' ? (d.deadAt ?? m.receivedAt) : null;
            const added = insertDelivery.run(
              d.destination,
              seq,
              d.status,
              d.attempts,
              d.key ?? null,
              d.batchId ?? null,
              deadAt,
              deadAt ?? m.receivedAt,
            );
            if (added.changes === 0) continue;
            tally.add(d.destination, d.status, 1);
            if (d.status === 'pending') {
              pending++;
              continue;
            }
            dead++;
            s.insertAttempt.run(
              d.destination,
              seq,
              deadAt!,
              0,
              d.httpStatus ?? null,
              d.error ?? null,
              null,
              null,
            );
          }
        }
        tally.flush(s);
        return { pending, dead };
      })();
    });
  }

  /** @internal The query plan of a {@link SqliteStore.listMessages} page, for measurements. */
  explainListMessages(query: MessageQuery): string[] {
    const { sql, params } = pageQuery(query);
    return this.#database()
      .prepare<(string | number)[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...params)
      .map((row) => row.detail);
  }

  getMessage(id: string): Promise<MessageDetail | undefined> {
    return this.#run(() => {
      const s = this.#statements();
      return this.#database().transaction(() => {
        const row = s.message.get(id);
        if (!row) return undefined;
        const attempts = new Map<string, Attempt[]>();
        for (const a of s.messageAttempts.all(row.seq)) {
          const attempt: Attempt = { at: a.at, durationMs: a.duration_ms };
          if (a.status !== null) attempt.status = a.status;
          if (a.error !== null) attempt.error = a.error;
          if (a.response !== null) attempt.response = a.response;
          if (a.next_at !== null) attempt.nextAt = a.next_at;
          const list = attempts.get(a.destination) ?? [];
          list.push(attempt);
          attempts.set(a.destination, list);
        }
        return {
          id: row.id,
          receivedAt: row.received_at,
          source: row.source,
          event: JSON.parse(row.event) as Record<string, unknown>,
          ...(row.traceparent !== null ? { traceparent: row.traceparent } : {}),
          deliveries: s.messageDeliveries.all(row.seq).map((d) => ({
            destination: d.destination,
            status: d.status,
            attempts: attempts.get(d.destination) ?? [],
          })),
        };
      })();
    });
  }

  counts(destination: string): Promise<DeliveryCounts> {
    return this.#run(() => {
      const s = this.#statements();
      return this.#database().transaction(() => ({
        pending: s.count.get(destination, 'pending') ?? 0,
        delivered: s.count.get(destination, 'delivered') ?? 0,
        dead: s.count.get(destination, 'dead') ?? 0,
      }))();
    });
  }

  destination(name: string): Promise<DestinationRecord> {
    return this.#run(() => {
      const row = this.#statements().destination.get(name);
      const record: DestinationRecord = {};
      if (!row) return record;
      if (row.state === 'enabled' || row.state === 'disabled') record.state = row.state;
      if (row.reason !== null) record.reason = row.reason;
      if (row.failing_since !== null) record.failingSince = row.failing_since;
      if (row.last_success_at !== null) record.lastSuccessAt = row.last_success_at;
      if (row.last_error !== null) record.lastError = row.last_error;
      return record;
    });
  }

  /** Sets the fields present in `change` (a field present as undefined is cleared). */
  updateDestination(name: string, change: Partial<DestinationRecord>): Promise<void> {
    return this.#run(() => {
      const s = this.#statements();
      this.#database().transaction(() => {
        const row: DestinationRow = s.destination.get(name) ?? {
          state: null,
          reason: null,
          failing_since: null,
          last_success_at: null,
          last_error: null,
        };
        if ('state' in change) row.state = change.state ?? null;
        if ('reason' in change) row.reason = change.reason ?? null;
        if ('failingSince' in change) row.failing_since = change.failingSince ?? null;
        if ('lastSuccessAt' in change) row.last_success_at = change.lastSuccessAt ?? null;
        if ('lastError' in change) row.last_error = change.lastError ?? null;
        s.putDestination.run(
          name,
          row.state,
          row.reason,
          row.failing_since,
          row.last_success_at,
          row.last_error,
        );
      })();
    });
  }

  purge(before: number, limit: number): Promise<number> {
    return this.#run(() => {
      expectLimit('limit', limit, Number.MAX_SAFE_INTEGER);
      const s = this.#statements();
      // One short transaction of at most `limit` messages: ingest waits for it, not for a purge.
      return this.#database().transaction(() => {
        const seqs = s.purgeable.all(before, limit);
        const tally = new Tally();
        for (const seq of seqs) {
          s.purgeAttempts.run(seq);
          for (const d of s.purgeDeliveries.all(seq)) tally.add(d.destination, d.status, -1);
          s.purgeMessage.run(seq);
        }
        tally.flush(s);
        s.purgeKeys.run(before, limit);
        return seqs.length;
      })();
    });
  }

  /** Leases in memory (this process owns the file); see {@link Store.claim}. */
  claim(destination: string, limit: number): Promise<PendingDelivery[]> {
    return this.#leases.claim(destination, limit);
  }

  /** See {@link Store.renew}: a lease here lasts until its attempt is recorded. */
  renew(destination: string, seqs: readonly number[]): Promise<number[]> {
    return Promise.resolve(this.#leases.renew(destination, seqs));
  }

  /** Wake-ups on ingest, resend and replay, within this process; see {@link Store.subscribe}. */
  subscribe(listener: (destination: string) => void): () => void {
    return this.#leases.subscribe(listener);
  }

  /** True while open: the file is local. */
  /** Every stored destination spec, by name; see {@link Store.listDestinationSpecs}. */
  listDestinationSpecs(): Promise<DestinationSpec[]> {
    return this.#run(() => this.#statements().specs.all().map(toSpec));
  }

  /** Creates or replaces a spec, checking `expectedVersion`; see {@link Store.putDestinationSpec}. */
  putDestinationSpec(
    name: string,
    config: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<DestinationSpec> {
    return this.#run(() => {
      const s = this.#statements();
      const spec = this.#database().transaction(() => {
        const row = s.spec.get(name);
        const actual = row?.version ?? 0;
        if (expectedVersion !== undefined && expectedVersion !== actual) {
          throw new DestinationSpecConflictError(name, expectedVersion, actual);
        }
        const now = Date.now();
        const next: SpecRow = {
          name,
          config: JSON.stringify(config),
          version: actual + 1,
          created_at: row?.created_at ?? now,
          updated_at: now,
        };
        s.putSpec.run(next.name, next.config, next.version, next.created_at, next.updated_at);
        return toSpec(next);
      })();
      this.#notifySpecs();
      return spec;
    });
  }

  /** Deletes a spec; see {@link Store.deleteDestinationSpec}. */
  deleteDestinationSpec(name: string): Promise<boolean> {
    return this.#run(() => {
      const deleted = this.#statements().deleteSpec.run(name).changes > 0;
      if (deleted) this.#notifySpecs();
      return deleted;
    });
  }

  /** Spec changes within this process (one relay per file); see {@link Store.subscribeSpecs}. */
  subscribeSpecs(listener: () => void): () => void {
    this.#specListeners.add(listener);
    return () => {
      this.#specListeners.delete(listener);
    };
  }

  // After the change is committed, on a later turn: a listener reads the specs back.
  #notifySpecs(): void {
    if (this.#specListeners.size === 0) return;
    setImmediate(() => {
      for (const listener of this.#specListeners) {
        try {
          listener();
        } catch (error) {
          process.emitWarning(`a store spec subscriber threw: ${String(error)}`);
        }
      }
    });
  }

  /** Frees the in-memory leases on `seqs` and wakes the subscribers; see {@link Store.release}. */
  release(destination: string, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    this.#leases.release(destination, seqs);
    this.#leases.wake([destination]);
    return Promise.resolve();
  }

  healthy(): boolean {
    return this.#db?.open === true;
  }

  #database(): Database.Database {
    if (this.#db?.open !== true) {
      throw new Error(
        `the store ${JSON.stringify(this.path)} is ${this.#closed ? 'closed' : 'not open (call open() first)'}`,
      );
    }
    return this.#db;
  }

  #statements(): Statements {
    this.#database();
    return this.#s!;
  }

  // Synchronous work as a promise: a throw becomes a rejection, never an exception at the call.
  #run<T>(work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/**
 * Opens the store at `path` for a tool (the CLI) while no relay runs: the same lock as the
 * relay's, so it is refused with `QueueLockedError` (`ERR_QUEUE_LOCKED`) while one holds it.
 * Close it when done.
 *
 * @example
 * ```ts
 * const store = await openSqliteStore({ path: join(dataDir, 'relay.db'), durability: 'process', retention: 0 });
 * try { console.log(await store.counts('hooks')); } finally { await store.close(); }
 * ```
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const store = new SqliteStore(options);
  try {
    await store.open();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

function openDatabase(path: string, durability: 'process' | 'power'): Database.Database {
  const directory = dirname(resolve(path));
  if (statSync(directory, { throwIfNoEntry: false })?.isDirectory() !== true) {
    throw new Error(
      `cannot open the store ${JSON.stringify(path)}: its directory ${JSON.stringify(directory)} does not exist`,
    );
  }
  let db: Database.Database;
  try {
    // timeout 0: a database locked by another owner fails at once instead of waiting 5 s.
    db = new Database(path, { timeout: 0 });
  } catch (error) {
    throw translate(path, error);
  }
  try {
    // As QueueFile does: exclusive before WAL, so the lock is held from the first read to
    // close() and the WAL index lives in this process's memory (no -shm another could map).
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      throw new Error(
        `cannot open the store ${JSON.stringify(path)}: it cannot be switched to WAL mode (journal_mode is ${String(mode)})`,
      );
    }
    db.pragma(`synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
    db.pragma('wal_autocheckpoint = 4096');
    db.pragma(`journal_size_limit = ${16 * 1024 * 1024}`);
    // A write transaction takes the exclusive lock now: a second owner fails here, with a clear
    // error, never later in the middle of a delivery.
    db.exec('BEGIN IMMEDIATE');
    try {
      migrate(db, path);
      db.exec('COMMIT');
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
    return db;
  } catch (error) {
    db.close();
    throw translate(path, error);
  }
}

function migrate(db: Database.Database, path: string): void {
  const applicationId = db.pragma('application_id', { simple: true });
  if (applicationId === 0) {
    const other = db
      .prepare<[], string>(`SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' LIMIT 1`)
      .pluck()
      .get();
    if (other !== undefined) {
      throw new Error(
        `cannot open the store ${JSON.stringify(path)}: it is a SQLite database but not a relay store (it has ${JSON.stringify(other)})`,
      );
    }
    db.pragma(`application_id = ${APPLICATION_ID}`);
  } else if (applicationId !== APPLICATION_ID) {
    throw new Error(
      `cannot open the store ${JSON.stringify(path)}: it is the SQLite database of another application (application_id ${String(applicationId)})`,
    );
  }
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version > MIGRATIONS.length) {
    throw new Error(
      `cannot open the store ${JSON.stringify(path)}: it was written by a newer relay (store schema ${version}; this one reads ${MIGRATIONS.length})`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${v + 1}`);
  }
}

function translate(path: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new QueueLockedError(path, { cause: error });
  }
  if (error instanceof Error && error.message.startsWith('cannot open the store')) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`cannot open the store ${JSON.stringify(path)}: ${message}`, { cause: error });
}
