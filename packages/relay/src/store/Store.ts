// The relay's store: every accepted event (a message) with its deliveries (one per matching
// destination) and every delivery attempt. One interface, two implementations: the embedded
// SQLite default (one database under dataDir, WAL) and PostgreSQL (shared by many relays). Both
// pass the same suite (store/conformance.ts).
//
// Ordering: every message gets a store-wide `seq` when it is stored, increasing in ingest order
// (within a request, in request order). A destination delivers a key's events in `seq` order.

/** Where one delivery stands. */
export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

/** A message as ingest hands it to the store. */
export interface NewMessage {
  /** The relay id: generated, or the event's `idField` value. Unique in the store. */
  id: string;
  /** When the relay accepted it, ms since the epoch. */
  receivedAt: number;
  /** The source that received it (`http`, `stdin`, `redis`, …). */
  source: string;
  /** The event as received: a JSON object. */
  event: Record<string, unknown>;
  /** The W3C `traceparent` it arrived with (header or event field), sent on every attempt. */
  traceparent?: string;
  /** Its deliveries: one per destination whose match/ignore filter takes it. */
  deliveries: readonly NewDelivery[];
}

/** One destination that is to receive a new message. */
export interface NewDelivery {
  destination: string;
  /** The value of the destination's `orderingKey` field in the event, as text; absent: no key. */
  key?: string;
}

/** One request's worth of messages, stored all or nothing. */
export interface IngestBatch {
  messages: readonly NewMessage[];
  /**
   * The http source's `Idempotency-Key` header: when a request with this key was stored within
   * `retention`, nothing is stored and its answer is returned instead.
   */
  idempotencyKey?: string;
  /** The answer to keep for `idempotencyKey` (the 202's JSON body). */
  answer?: string;
}

/** What {@link Store.ingest} did. */
export interface IngestOutcome {
  /**
   * Set when `idempotencyKey` was seen before: the first request's answer; nothing was stored.
   */
  replayed?: string;
  /** Messages stored now (new ids), in request order. */
  stored: readonly StoredMessage[];
  /** Ids already in the store (an `idField` value accepted before): acknowledged, not stored. */
  duplicates: readonly string[];
}

/** A message as stored: with its `seq`. */
export interface StoredMessage {
  id: string;
  seq: number;
  receivedAt: number;
  source: string;
}

/** A delivery waiting for its destination, as the dispatcher loads it. */
export interface PendingDelivery {
  seq: number;
  id: string;
  receivedAt: number;
  source: string;
  event: Record<string, unknown>;
  key: string | undefined;
  /**
   * Attempts of its current retry budget: made since its last resend or replay (0 for a new
   * delivery and right after a resend). The attempt log keeps them all.
   */
  attempts: number;
  /** Not before this time (ms since the epoch); 0 = at once. */
  nextAt: number;
  /** The batch it was sealed into before its first attempt, if any (kept across restarts). */
  batchId: string | undefined;
  /** The W3C `traceparent` the message arrived with, if any. */
  traceparent?: string | undefined;
}

/** One attempt at delivering one or more messages (a batch) to a destination. */
export interface AttemptRecord {
  destination: string;
  /** The messages the attempt carried (their seq). */
  seqs: readonly number[];
  /** When it started, ms since the epoch. */
  at: number;
  durationMs: number;
  /** The HTTP status, when there was a response. */
  status?: number;
  /** Why it failed, as text (never set on success). */
  error?: string;
  /** The first 1 KiB of the response body. */
  response?: string;
  /**
   * What becomes of the deliveries: `delivered`, `dead` (given up), or `pending` with the time
   * of the next attempt in `nextAt`.
   */
  outcome: DeliveryStatus;
  nextAt?: number;
}

/** An attempt as the admin API shows it. */
export interface Attempt {
  at: number;
  durationMs: number;
  status?: number;
  error?: string;
  response?: string;
  nextAt?: number;
}

/** One line of {@link Store.listMessages}. */
export interface MessageSummary {
  id: string;
  receivedAt: number;
  source: string;
  deliveries: { destination: string; status: DeliveryStatus; attempts: number }[];
}

/** {@link Store.getMessage}: the message with its event and every attempt. */
export interface MessageDetail {
  id: string;
  receivedAt: number;
  source: string;
  event: Record<string, unknown>;
  /** The W3C `traceparent` the message arrived with, if any. */
  traceparent?: string;
  deliveries: { destination: string; status: DeliveryStatus; attempts: Attempt[] }[];
}

/** The filter and page of {@link Store.listMessages}. Newest first. */
export interface MessageQuery {
  /** Only messages with a delivery to this destination (and `status` applies to it). */
  destination?: string;
  /** Only messages with a delivery in this status (to `destination` when given). */
  status?: DeliveryStatus;
  /** Only messages received at or after this time, ms since the epoch. */
  since?: number;
  /** At most this many (1–1000). */
  limit: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

/** Per destination counts kept by the store. */
export interface DeliveryCounts {
  pending: number;
  delivered: number;
  dead: number;
}

/** What the store keeps about a destination beyond its deliveries (runtime state). */
export interface DestinationRecord {
  /** `disabled` by an operator or by `disableAfter`; undefined: as configured. */
  state?: 'enabled' | 'disabled';
  /** Why it was disabled (`admin`, `disableAfter`). */
  reason?: string;
  /** Since when it fails without a success (ms since the epoch), for `disableAfter`. */
  failingSince?: number;
  lastSuccessAt?: number;
  lastError?: string;
}

/**
 * A destination created over the admin API, as the store keeps it (destinations of the config
 * file are not stored: the file is their truth). Every relay on the store runs it.
 */
export interface DestinationSpec {
  name: string;
  /** The destination's configuration in its input form (as the file would hold it), secrets included. */
  config: Record<string, unknown>;
  /** 1 when created, +1 with every change: the optimistic lock of {@link Store.putDestinationSpec}. */
  version: number;
  createdAt: number;
  updatedAt: number;
}

/** Thrown by {@link Store.putDestinationSpec} when `expectedVersion` does not match. */
export class DestinationSpecConflictError extends Error {
  override readonly name = 'DestinationSpecConflictError';
  readonly code = 'ERR_DESTINATION_SPEC_CONFLICT';
  constructor(
    readonly destination: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      actual === 0
        ? `destination "${destination}" does not exist`
        : expected === 0
          ? `destination "${destination}" exists already`
          : `destination "${destination}" changed meanwhile (version ${actual}, expected ${expected})`,
    );
  }
}

/** The relay's store. Every method may reject with the underlying database error as `cause`. */
export interface Store {
  /** Creates or migrates the schema. Called once before anything else. */
  open(): Promise<void>;
  /** Closes the database. Later calls reject. */
  close(): Promise<void>;

  /**
   * Stores a request's messages and their deliveries in one transaction: all or nothing. An
   * id already in the store is not stored again (listed in `duplicates`); a repeated
   * `idempotencyKey` stores nothing and returns the first answer.
   */
  ingest(batch: IngestBatch): Promise<IngestOutcome>;

  /**
   * The pending deliveries of `destination` with `seq > afterSeq`, in `seq` order, at most
   * `limit`. The dispatcher pages through them; nothing is leased (one relay per SQLite file).
   */
  pending(destination: string, afterSeq: number, limit: number): Promise<PendingDelivery[]>;

  /** Fixes a batch's members and id before its first attempt (see PendingDelivery.batchId). */
  seal(destination: string, batchId: string, seqs: readonly number[]): Promise<void>;

  /**
   * Records attempts and moves their deliveries to their outcome, in one transaction. With
   * `retention` 0 a delivered delivery is deleted at once (and its message once no delivery is
   * left), as the relay did before it kept a log.
   */
  record(attempts: readonly AttemptRecord[]): Promise<void>;

  /**
   * Sets the delivery of message `id` to `destination` back to pending (due at once), whatever
   * its status, with the whole retry budget again (its `attempts` start from 0, here and on
   * every later claim or load); keeps the id (so the same `webhook-id`) and the attempt log.
   * Creates the delivery when the message had none for that destination. Returns the pending
   * delivery, or undefined when there is no such message.
   */
  resend(id: string, destination: string): Promise<PendingDelivery | undefined>;

  /**
   * Sets up to `limit` dead deliveries of `destination` (dead at or after `since`) back to
   * pending, each with the whole retry budget again (as {@link Store.resend}); returns them (for
   * `dlq replay`).
   */
  replayDead(destination: string, since: number, limit: number): Promise<PendingDelivery[]>;

  /**
   * Moves up to `count` of the oldest pending deliveries of `destination` that are not in
   * `busy` (being sent) to dead, with the error `reason` (an attempt record says so); returns
   * the seq of each delivery moved.
   */
  overflow(
    destination: string,
    count: number,
    busy: ReadonlySet<number>,
    reason: string,
  ): Promise<number[]>;

  listMessages(query: MessageQuery): Promise<{ items: MessageSummary[]; next: string | null }>;
  /** Undefined when there is no such message (never stored, or purged). */
  getMessage(id: string): Promise<MessageDetail | undefined>;

  counts(destination: string): Promise<DeliveryCounts>;

  destination(name: string): Promise<DestinationRecord>;
  updateDestination(name: string, change: Partial<DestinationRecord>): Promise<void>;

  /**
   * Deletes up to `limit` messages received before `before` whose deliveries are all
   * delivered (or that have none), with their deliveries and attempts, and idempotency keys
   * older than `before`. Dead letters are kept until they are resent or replayed. Returns how
   * many messages were deleted; the purger calls it again while it returns `limit`.
   */
  purge(before: number, limit: number): Promise<number>;

  // Many relays on one store (PostgreSQL). A relay delivers what it has claimed: a claim is a
  // lease held by this store's owner (one per relay process) for the store's lease timeout;
  // `record` ends it. A relay that dies holds nothing once its leases expire. The SQLite store
  // (one relay per file) has no other owner to exclude, so its leases live in memory.

  /**
   * Leases up to `limit` deliveries of `destination` to this store's owner and returns them in
   * `seq` order: pending, due (`nextAt` at or before now), not leased by anyone (or their lease
   * expired), and, for a delivery with a key, only the lowest-`seq` pending delivery of that
   * key (so a key has at most one delivery in flight, across every relay). Recording an attempt
   * (`record`) releases the lease; until then, claim does not return the delivery again.
   */
  claim(destination: string, limit: number): Promise<PendingDelivery[]>;

  /**
   * Extends this owner's leases on `seqs` of `destination` by the lease timeout from now;
   * returns the seqs still held (one missing was taken over after its lease expired, or is no
   * longer pending: its attempt's outcome will be a duplicate at worst).
   */
  renew(destination: string, seqs: readonly number[]): Promise<number[]>;

  /**
   * Calls `listener` with a destination's name when it may have new due deliveries (ingest,
   * resend, replay, from any relay on the store); several changes may arrive as one call. A
   * hint, not a guarantee: the dispatcher also polls slowly. Returns the unsubscribe function.
   */
  subscribe(listener: (destination: string) => void): () => void;

  /**
   * False while the database is unreachable (the last query failed to reach it and no probe
   * has succeeded since): `/readyz` answers not ready. Turns true again by itself.
   */
  healthy(): boolean;

  // Destinations created over the admin API (see DestinationSpec).

  /** Every stored destination spec, by name. */
  listDestinationSpecs(): Promise<DestinationSpec[]>;

  /**
   * Creates or replaces the spec of `name`. With `expectedVersion`, only when the stored
   * version is that (0: only when there is none), else rejects with
   * {@link DestinationSpecConflictError}. Notifies the other relays on the store (see
   * {@link Store.subscribeSpecs}).
   */
  putDestinationSpec(
    name: string,
    config: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<DestinationSpec>;

  /** Deletes the spec of `name` (its deliveries are not touched); false when there was none. */
  deleteDestinationSpec(name: string): Promise<boolean>;

  /**
   * Calls `listener` when the destination specs may have changed (from any relay on the
   * store). A hint: relays also re-read the specs every few seconds. Returns the unsubscribe.
   */
  subscribeSpecs(listener: () => void): () => void;

  /**
   * Ends this owner's leases on `seqs` of `destination` without an attempt (a relay stopping
   * with claimed deliveries it did not send), so another relay takes them at once instead of
   * after the lease timeout. A no-op for a store without leases.
   */
  release(destination: string, seqs: readonly number[]): Promise<void>;
}

/** Options common to the store implementations. */
export interface StoreOptions {
  /** How long delivered messages are kept, ms; 0 deletes them on delivery. */
  retention: number;
}
