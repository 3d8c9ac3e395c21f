// Moves the data of the release that kept one DurableQueue file per destination
// (`<name>.queue.db`, `<name>.dead.db`) into the store, once, keeping ids and receive times.
import Database from 'better-sqlite3';
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { QueueFile } from 'eventsinks/sqlite';
import type { Logger } from 'pino';
import type { DeadRecord, Envelope } from '../envelope.js';
import type { ImportedMessage, SqliteStore } from './SqliteStore.js';

const QUEUE = '.queue.db';
const DEAD = '.dead.db';
// Messages per store transaction: an interrupted migration keeps what it committed, and the
// relay's database is never locked for long.
const CHUNK = 1000;
const PAGE = 1000;

/** Options of {@link migrateQueueFiles}. */
export interface MigrateOptions {
  /** The ordering key of an event for a destination (its `orderingKey` field), if it has one. */
  keyOf?: (destination: string, event: Record<string, unknown>) => string | undefined;
}

type Imported = ImportedMessage['deliveries'][number];

/**
 * Moves every envelope of the old per-destination queue files in `dataDir` into `store`: each
 * queued one as a pending delivery, each dead letter as a dead delivery with an attempt giving
 * its error and status. Ids and `receivedAt` are kept; an event queued for several destinations
 * becomes one message with one delivery each; sealed batches keep their batch id. Then each old
 * file is renamed to `<file>.migrated` (kept, never read again). Re-running after an
 * interruption adds only what is missing. Files of a destination not in `destinations` are left
 * in place with a warning.
 *
 * @returns how many pending (`migrated`) and dead (`dead`) deliveries were added.
 * @throws the QueueFile error (naming the file) when an old file cannot be opened or decoded;
 *   nothing is renamed then.
 */
export async function migrateQueueFiles(
  store: SqliteStore,
  dataDir: string,
  destinations: readonly string[],
  log: Logger,
  options: MigrateOptions = {},
): Promise<{ migrated: number; dead: number }> {
  const names = oldDestinations(dataDir);
  if (names.size === 0) return { migrated: 0, dead: 0 };
  const configured = new Set(destinations);
  for (const name of names) {
    if (!configured.has(name)) {
      log.warn(
        { destination: name, dataDir },
        `queue files of destination ${JSON.stringify(name)} left in place: it is no longer in the configuration (add it back to migrate them)`,
      );
    }
  }
  const messages = new Merged();
  const files: string[] = [];
  for (const name of destinations) {
    if (!names.has(name)) continue;
    const queuePath = join(dataDir, `${name}${QUEUE}`);
    const deadPath = join(dataDir, `${name}${DEAD}`);
    if (existsSync(queuePath)) {
      const seals = readSeals(queuePath);
      const entries = readAll<Envelope>(queuePath);
      messages.add(
        entries.map(({ id: row, event: envelope }) => {
          const delivery: Imported = { destination: name, status: 'pending', attempts: 0 };
          const batchId = seals.find((seal) => row >= seal.first && row <= seal.last)?.key;
          if (batchId !== undefined) delivery.batchId = batchId;
          const key = options.keyOf?.(name, envelope.event);
          if (key !== undefined) delivery.key = key;
          return { envelope, delivery };
        }),
      );
      files.push(queuePath);
    }
    if (existsSync(deadPath)) {
      messages.add(
        readAll<DeadRecord>(deadPath).map(({ event: record }) => {
          const delivery: Imported = {
            destination: name,
            status: 'dead',
            attempts: record.attempts,
            deadAt: record.deadAt,
            error: record.reason === 'overflow' ? `overflow: ${record.error}` : record.error,
          };
          if (record.status !== undefined) delivery.httpStatus = record.status;
          const key = options.keyOf?.(name, record.envelope.event);
          if (key !== undefined) delivery.key = key;
          return { envelope: record.envelope, delivery };
        }),
      );
      files.push(deadPath);
    }
  }
  const ordered = messages.ordered();
  let migrated = 0;
  let dead = 0;
  for (let i = 0; i < ordered.length; i += CHUNK) {
    const added = await store.importMessages(ordered.slice(i, i + CHUNK));
    migrated += added.pending;
    dead += added.dead;
  }
  // Only once everything is in the store: an interruption before this re-runs the import.
  for (const file of files) {
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(file + suffix)) renameSync(file + suffix, `${file}.migrated${suffix}`);
    }
  }
  log.info(
    { migrated, dead, files: files.length, messages: ordered.length },
    `migrated ${files.length} queue files into the store: ${migrated} pending and ${dead} dead deliveries`,
  );
  return { migrated, dead };
}

/** The destinations that have old queue files in `dataDir` (not yet migrated). */
function oldDestinations(dataDir: string): Set<string> {
  const names = new Set<string>();
  let entries: string[];
  try {
    entries = readdirSync(dataDir);
  } catch {
    return names;
  }
  for (const file of entries) {
    for (const suffix of [QUEUE, DEAD]) {
      if (file.endsWith(suffix)) names.add(file.slice(0, -suffix.length));
    }
  }
  return names;
}

function readAll<E>(path: string): { id: number; event: E }[] {
  const file = new QueueFile<E>({ path });
  try {
    const all: { id: number; event: E }[] = [];
    for (let after = 0; ;) {
      const page = file.list({ after, limit: PAGE });
      all.push(...page);
      if (page.length < PAGE) return all;
      after = page.at(-1)!.id;
    }
  } finally {
    file.close();
  }
}

/**
 * The sealed batches of a queue file. QueueFile does not expose them, so they are read from its
 * `eventsinks_seal` table directly (after QueueFile has checked the file and let it go).
 */
function readSeals(path: string): { first: number; last: number; key: string }[] {
  // Opening through QueueFile first: it refuses a file locked by a running relay, or not a queue.
  new QueueFile({ path }).close();
  const db = new Database(path, { timeout: 0, fileMustExist: true });
  try {
    // Exclusive, as the queue itself: no -shm file is created beside it.
    db.pragma('locking_mode = EXCLUSIVE');
    const table = db
      .prepare<[], string>(`SELECT name FROM sqlite_master WHERE name = 'eventsinks_seal'`)
      .pluck()
      .get();
    if (table === undefined) return [];
    return db
      .prepare<[], { first: number; last: number; key: string }>(
        'SELECT first, last, key FROM eventsinks_seal ORDER BY first',
      )
      .all();
  } finally {
    db.close();
  }
}

/**
 * Envelopes of several files merged into messages, in ingest order: each file lists its
 * envelopes in the order they were received, so a new one is placed after the one before it in
 * its file, and the whole is then ordered by `receivedAt` (stable).
 */
class Merged {
  readonly #byId = new Map<string, ImportedMessage>();
  readonly #next = new Map<string, string | undefined>();
  #head: string | undefined;
  #tail: string | undefined;

  add(items: readonly { envelope: Envelope; delivery: Imported }[]): void {
    let previous: string | undefined;
    for (const { envelope, delivery } of items) {
      const known = this.#byId.get(envelope.id);
      if (known) {
        // The same event in another destination's file: one message, one more delivery.
        if (!known.deliveries.some((d) => d.destination === delivery.destination)) {
          known.deliveries.push(delivery);
        }
        previous = envelope.id;
        continue;
      }
      const message: ImportedMessage = {
        id: envelope.id,
        receivedAt: envelope.receivedAt,
        source: envelope.source,
        event: envelope.event,
        deliveries: [delivery],
      };
      this.#byId.set(envelope.id, message);
      this.#insertAfter(previous, envelope.id);
      previous = envelope.id;
    }
  }

  ordered(): ImportedMessage[] {
    const list: ImportedMessage[] = [];
    for (let id = this.#head; id !== undefined; id = this.#next.get(id)) {
      list.push(this.#byId.get(id)!);
    }
    return list.sort((a, b) => a.receivedAt - b.receivedAt);
  }

  #insertAfter(previous: string | undefined, id: string): void {
    if (previous === undefined) {
      // Nothing before it in its file is known: after everything merged so far.
      if (this.#tail === undefined) this.#head = id;
      else this.#next.set(this.#tail, id);
      this.#next.set(id, undefined);
      this.#tail = id;
      return;
    }
    this.#next.set(id, this.#next.get(previous));
    this.#next.set(previous, id);
    if (this.#tail === previous) this.#tail = id;
  }
}
