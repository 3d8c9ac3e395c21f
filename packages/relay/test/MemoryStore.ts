// An in-memory Store with the read and admin methods (list, get, resend, replay) for the admin
// API's and the CLI's unit tests; the delivery methods throw, so a test that reaches one fails.
import { DestinationSpecConflictError } from '../src/store/Store.js';
import type {
  Attempt,
  DeliveryStatus,
  DestinationSpec,
  MessageDetail,
  MessageQuery,
  MessageSummary,
  PendingDelivery,
  Store,
} from '../src/store/Store.js';

/** A message as a test writes it into {@link MemoryStore}. */
export interface MemoryMessage {
  id: string;
  receivedAt: number;
  source: string;
  event: Record<string, unknown>;
  deliveries: { destination: string; status: DeliveryStatus; attempts: Attempt[] }[];
}

const unused = (name: string) => (): never => {
  throw new Error(`MemoryStore.${name} is not implemented (not used by the admin API)`);
};

/** The fake store: `messages` in ingest order; cursors are offsets into the filtered list. */
export class MemoryStore implements Store {
  messages: MemoryMessage[] = [];
  /** Every call, for assertions: `[method, ...args]`. */
  calls: unknown[][] = [];
  closed = false;

  constructor(messages: MemoryMessage[] = []) {
    this.messages = messages;
  }

  open = async (): Promise<void> => undefined;
  close = async (): Promise<void> => {
    this.closed = true;
  };
  ingest = unused('ingest');
  pending = unused('pending');
  seal = unused('seal');
  record = unused('record');
  overflow = unused('overflow');
  counts = unused('counts');
  destination = unused('destination');
  updateDestination = unused('updateDestination');
  purge = unused('purge');
  claim = unused('claim');
  renew = unused('renew');
  subscribe = (): (() => void) => () => undefined;
  // Contract of issue 16/15 (see Store.ts).
  readonly specs = new Map<string, DestinationSpec>();

  listDestinationSpecs(): Promise<DestinationSpec[]> {
    return Promise.resolve([...this.specs.values()]);
  }

  putDestinationSpec(
    name: string,
    config: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<DestinationSpec> {
    const old = this.specs.get(name);
    if (expectedVersion !== undefined && (old?.version ?? 0) !== expectedVersion) {
      return Promise.reject(
        new DestinationSpecConflictError(name, expectedVersion, old?.version ?? 0),
      );
    }
    const now = Date.now();
    const spec = {
      name,
      config,
      version: (old?.version ?? 0) + 1,
      createdAt: old?.createdAt ?? now,
      updatedAt: now,
    };
    this.specs.set(name, spec);
    return Promise.resolve(spec);
  }

  deleteDestinationSpec(name: string): Promise<boolean> {
    return Promise.resolve(this.specs.delete(name));
  }

  subscribeSpecs(_listener: () => void): () => void {
    return () => undefined;
  }

  release(_destination: string, _seqs: readonly number[]): Promise<void> {
    return Promise.resolve();
  }

  healthy = (): boolean => !this.closed;

  async listMessages(
    query: MessageQuery,
  ): Promise<{ items: MessageSummary[]; next: string | null }> {
    this.calls.push(['listMessages', query]);
    const matching = [...this.messages]
      .reverse()
      .filter(
        (m) =>
          (query.since === undefined || m.receivedAt >= query.since) &&
          m.deliveries.some(
            (d) =>
              (query.destination === undefined || d.destination === query.destination) &&
              (query.status === undefined || d.status === query.status),
          ),
      );
    const start = query.cursor === undefined ? 0 : Number(query.cursor);
    const page = matching.slice(start, start + query.limit);
    const end = start + page.length;
    return {
      items: page.map((m) => ({
        id: m.id,
        receivedAt: m.receivedAt,
        source: m.source,
        deliveries: m.deliveries.map((d) => ({
          destination: d.destination,
          status: d.status,
          attempts: d.attempts.length,
        })),
      })),
      next: end < matching.length ? String(end) : null,
    };
  }

  async getMessage(id: string): Promise<MessageDetail | undefined> {
    this.calls.push(['getMessage', id]);
    const m = this.messages.find((message) => message.id === id);
    return m && structuredClone(m);
  }

  #pending(m: MemoryMessage): PendingDelivery {
    return {
      seq: this.messages.indexOf(m) + 1,
      id: m.id,
      receivedAt: m.receivedAt,
      source: m.source,
      event: m.event,
      key: undefined,
      attempts: 0,
      nextAt: 0,
      batchId: undefined,
    };
  }

  async resend(id: string, destination: string): Promise<PendingDelivery | undefined> {
    this.calls.push(['resend', id, destination]);
    const m = this.messages.find((message) => message.id === id);
    if (!m) return undefined;
    const delivery = m.deliveries.find((d) => d.destination === destination);
    if (delivery) delivery.status = 'pending';
    else m.deliveries.push({ destination, status: 'pending', attempts: [] });
    return this.#pending(m);
  }

  async replayDead(destination: string, since: number, limit: number): Promise<PendingDelivery[]> {
    this.calls.push(['replayDead', destination, since, limit]);
    const moved: PendingDelivery[] = [];
    for (const m of this.messages) {
      if (moved.length === limit) break;
      const d = m.deliveries.find((x) => x.destination === destination && x.status === 'dead');
      const last = d?.attempts[d.attempts.length - 1];
      if (!d || (last ? last.at + last.durationMs : m.receivedAt) < since) continue;
      d.status = 'pending';
      moved.push(this.#pending(m));
    }
    return moved;
  }
}
