import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe } from '../internal/validate.js';
import { QueueLockedError, QueueOpenError } from './errors.js';

/**
 * What a queue file survives once a write has resolved.
 * - `'process'` (the default): WAL with `synchronous = NORMAL`. A commit reaches the operating
 *   system but is not flushed to the device: it survives the process being killed at any point,
 *   not a power loss or kernel crash (which may lose the last commits, never corrupt the file).
 * - `'power'`: WAL with `synchronous = FULL`. Every commit is flushed to the device (fsync)
 *   before the write resolves: it survives a power loss too, at the cost of one fsync per group
 *   commit.
 *
 * @example
 * ```ts
 * const durability: Durability = process.env.ON_BATTERY ? 'power' : 'process';
 * ```
 */
export type Durability = 'process' | 'power';

/** A sealed group of rows: ids `first` to `last`, known by `key`. @internal */
export interface Seal {
  first: number;
  last: number;
  key: string;
}

/** One stored event, still encoded. @internal */
export interface StoredRow {
  id: number;
  data: string | Uint8Array;
}

const TABLE = 'eventsinks_queue';
// Facts about the file itself (its random id). Created on first use, so files written by an
// earlier version gain it without a schema change; older versions ignore it.
const META = 'eventsinks_meta';
// Sealed groups of rows (a batch whose membership and key were fixed before its first attempt):
// the rows first..last, in delivery order. Added to files of schema 1 on open (an older reader
// ignores it), removed as the rows they cover are.
const SEALS = 'eventsinks_seal';
// 'evsk': marks a SQLite file as an eventsinks queue, so we never write into someone else's.
const APPLICATION_ID = 0x6576736b;
const SCHEMA_VERSION = 1;
const DURABILITIES: readonly Durability[] = ['process', 'power'];
const CHUNKS = [1, 4, 16, 64] as const;

/** @internal Validates `path`; in-memory databases are refused, they would not be durable. */
export function expectPath(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '' || value === ':memory:' || value.includes('\0')) {
    throw new TypeError(`Expected \`path\` to be a file path, got ${describe(value)}`);
  }
}

/** @internal */
export function expectDurability(value: unknown): asserts value is Durability {
  if (!DURABILITIES.includes(value as Durability)) {
    throw new TypeError(
      `Expected \`durability\` to be one of 'process', 'power', got ${describe(value)}`,
    );
  }
}

/**
 * A queue file: one SQLite database in WAL mode, held with an exclusive lock from open to close,
 * with one table of encoded events keyed by an ever-increasing id. Synchronous, like
 * better-sqlite3. @internal
 */
export class Store {
  readonly path: string;
  readonly #db: Database.Database;
  // INSERT statements for 1, 4, 16 and 64 rows at once: one call per 64 events instead of one
  // per event halves the cost of a group commit.
  readonly #inserts: Database.Statement<(string | Uint8Array)[]>[];
  readonly #deleteUpTo: Database.Statement<[number]>;
  readonly #deleteOne: Database.Statement<[number]>;
  readonly #page: Database.Statement<[number, number], StoredRow>;
  readonly #count: Database.Statement<[], number>;
  readonly #seal: Database.Statement<[number, number, string]>;
  readonly #seals: Database.Statement<[], Seal>;
  readonly #deleteSeals: Database.Statement<[number]>;
  readonly #append: (data: readonly (string | Uint8Array)[], deleteUpTo: number) => StoredRow[];
  readonly #durability: Durability;

  constructor(path: string, durability: Durability) {
    this.path = path;
    this.#durability = durability;
    this.#db = open(path, durability);
    const db = this.#db;
    this.#inserts = CHUNKS.map((n) =>
      db.prepare<(string | Uint8Array)[]>(
        `INSERT INTO ${TABLE} (data) VALUES ${new Array<string>(n).fill('(?)').join(', ')}`,
      ),
    );
    this.#deleteUpTo = db.prepare(`DELETE FROM ${TABLE} WHERE id <= ?`);
    this.#deleteOne = db.prepare(`DELETE FROM ${TABLE} WHERE id = ?`);
    this.#page = db.prepare<[number, number], StoredRow>(
      `SELECT id, data FROM ${TABLE} WHERE id > ? ORDER BY id LIMIT ?`,
    );
    this.#count = db.prepare<[], number>(`SELECT count(*) FROM ${TABLE}`).pluck();
    this.#seal = db.prepare(`INSERT OR REPLACE INTO ${SEALS} (first, last, key) VALUES (?, ?, ?)`);
    this.#seals = db.prepare<[], Seal>(`SELECT first, last, key FROM ${SEALS} ORDER BY first`);
    this.#deleteSeals = db.prepare(`DELETE FROM ${SEALS} WHERE last <= ?`);
    // One transaction per group: the deletes of what was delivered since the last commit ride
    // along for free, and the whole group pays for one commit (one fsync under 'power').
    this.#append = db.transaction((data: readonly (string | Uint8Array)[], deleteUpTo: number) => {
      if (deleteUpTo > 0) {
        this.#deleteUpTo.run(deleteUpTo);
        this.#deleteSeals.run(deleteUpTo);
      }
      const rows = new Array<StoredRow>(data.length);
      let done = 0;
      for (let c = CHUNKS.length - 1; c >= 0; c--) {
        const n = CHUNKS[c]!;
        const insert = this.#inserts[c]!;
        for (; data.length - done >= n; done += n) {
          const chunk = data.slice(done, done + n);
          // One statement, one writer, AUTOINCREMENT: the rows got consecutive ids ending here.
          const last = Number(insert.run(...chunk).lastInsertRowid);
          for (let i = 0; i < n; i++) rows[done + i] = { id: last - n + 1 + i, data: chunk[i]! };
        }
      }
      return rows;
    });
  }

  get open(): boolean {
    return this.#db.open;
  }

  /** Stores `data` in one transaction (after deleting every id ≤ `deleteUpTo`, if positive). */
  append(data: readonly (string | Uint8Array)[], deleteUpTo = 0): StoredRow[] {
    return this.#append(data, deleteUpTo);
  }

  /** Up to `limit` rows with an id greater than `after`, oldest first. */
  page(after: number, limit: number): StoredRow[] {
    return this.#page.all(after, limit);
  }

  count(): number {
    return this.#count.get() ?? 0;
  }

  /**
   * Deletes every row with an id ≤ `id`, in its own transaction, without waiting for the device:
   * a delete lost to a power cut only means a redelivery (at-least-once), so under `'power'` it
   * is not worth an fsync. The next synchronous commit flushes it along with its own pages.
   */
  deleteUpTo(id: number): void {
    const run = this.#db.transaction(() => {
      this.#deleteUpTo.run(id);
      this.#deleteSeals.run(id);
    });
    if (this.#durability !== 'power') {
      run();
      return;
    }
    this.#db.pragma('synchronous = NORMAL');
    try {
      run();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  /** Records that rows `first`..`last` form one sealed group, `key`; durable on return. */
  seal(first: number, last: number, key: string): void {
    this.#seal.run(first, last, key);
  }

  /** Every sealed group still in the file, by `first`. */
  seals(): Seal[] {
    return this.#seals.all();
  }

  /** Deletes the rows with these ids, in one transaction; returns how many existed. */
  delete(ids: readonly number[]): number {
    let deleted = 0;
    this.#db.transaction(() => {
      for (const id of ids) deleted += this.#deleteOne.run(id).changes;
    })();
    return deleted;
  }

  /**
   * A random id made once for this file and kept in it, so that with a row id it names one
   * event across files (row ids alone repeat from one file to the next). A copy of the file
   * shares it.
   */
  fileId(): string {
    const db = this.#db;
    return db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS ${META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      const select = db.prepare<[], string>(`SELECT value FROM ${META} WHERE key = 'file_id'`);
      const stored = select.pluck().get();
      if (typeof stored === 'string') return stored;
      const id = randomUUID().replaceAll('-', '');
      db.prepare(`INSERT INTO ${META} (key, value) VALUES ('file_id', ?)`).run(id);
      return id;
    })();
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

function open(path: string, durability: Durability): Database.Database {
  const absolute = resolve(path);
  const directory = dirname(absolute);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch (error) {
    throw new QueueOpenError(path, `its directory ${JSON.stringify(directory)} does not exist`, {
      cause: error,
    });
  }
  if (!isDirectory) {
    throw new QueueOpenError(path, `${JSON.stringify(directory)} is not a directory`);
  }
  if (statSync(absolute, { throwIfNoEntry: false })?.isDirectory()) {
    throw new QueueOpenError(path, 'it is a directory, not a file');
  }
  let db: Database.Database;
  try {
    // timeout 0: a file locked by another owner fails at once instead of waiting 5 s.
    db = new Database(path, { timeout: 0 });
  } catch (error) {
    throw translate(path, error);
  }
  try {
    // Exclusive before WAL: the lock is then held from the first read to close(), and the WAL
    // index lives in this process's memory (no -shm file another process could map).
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      throw new QueueOpenError(
        path,
        `it cannot be switched to WAL mode (journal_mode is ${String(mode)})`,
      );
    }
    db.pragma(`synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
    // Checkpoint every 16 MiB of WAL instead of SQLite's 4 MiB. A queue's table stays small
    // (rows are deleted as fast as they are delivered), so a checkpoint copies few distinct
    // pages and costs mostly its two fsyncs: doing it a quarter as often saves work, and the
    // stall it causes hits one group commit in ~500 instead of one in ~125. The size limit
    // truncates a WAL that one huge transaction grew beyond that, once it is checkpointed.
    db.pragma('wal_autocheckpoint = 4096');
    db.pragma(`journal_size_limit = ${16 * 1024 * 1024}`);
    // A write transaction now takes the exclusive lock now: a second owner fails at open, with a
    // clear error, never later in the middle of a delivery.
    db.exec('BEGIN IMMEDIATE');
    try {
      prepareSchema(db, path);
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

function prepareSchema(db: Database.Database, path: string): void {
  const applicationId = db.pragma('application_id', { simple: true });
  if (applicationId === APPLICATION_ID) {
    const version = db.pragma('user_version', { simple: true });
    if (typeof version === 'number' && version > SCHEMA_VERSION) {
      throw new QueueOpenError(
        path,
        `it was written by a newer eventsinks (queue schema ${version}; this one reads ${SCHEMA_VERSION})`,
      );
    }
    createSeals(db);
    return;
  }
  if (applicationId !== 0) {
    throw new QueueOpenError(
      path,
      `it is the SQLite database of another application (application_id ${String(applicationId)})`,
    );
  }
  const other = db
    .prepare<[], string>(`SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' LIMIT 1`)
    .pluck()
    .get();
  if (other !== undefined) {
    throw new QueueOpenError(
      path,
      `it is a SQLite database but not an eventsinks queue (it has ${JSON.stringify(other)})`,
    );
  }
  // AUTOINCREMENT: ids are never reused, so an id names one event for the life of the file
  // (a tool may list ids, then remove them) and delivery order is id order across runs.
  db.exec(`CREATE TABLE ${TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL)`);
  createSeals(db);
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

function createSeals(db: Database.Database): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${SEALS} (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, key TEXT NOT NULL)`,
  );
}

function translate(path: string, error: unknown): unknown {
  if (error instanceof QueueOpenError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return new QueueLockedError(path, { cause: error });
    case 'SQLITE_NOTADB':
      return new QueueOpenError(path, 'it is not a SQLite database', { cause: error });
    case 'SQLITE_READONLY':
      return new QueueOpenError(path, 'it is read-only', { cause: error });
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_PERM':
    case 'SQLITE_AUTH':
      return new QueueOpenError(path, `it cannot be read and written (${message})`, {
        cause: error,
      });
    default:
      return new QueueOpenError(path, message, { cause: error });
  }
}
