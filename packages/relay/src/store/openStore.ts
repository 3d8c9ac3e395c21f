// Opening the store outside a running relay: what `eventsinks messages` and `dlq` do when no
// relay answers. One function, so the commands depend only on the Store interface.
import { join } from 'node:path';
import type { RelayAdminConfig } from '../schema.js';
import { PostgresStore } from './PostgresStore.js';
import { SqliteStore } from './SqliteStore.js';
import type { Store } from './Store.js';

/** The parts of the configuration that say where the store is and how it keeps data. */
export type StoreConfig = Pick<RelayAdminConfig, 'dataDir' | 'durability' | 'store' | 'retention'>;

/**
 * The SQLite store's file: `store.path`, else `<dataDir>/relay.db`; undefined for a store that
 * is not a file (PostgreSQL).
 */
export function storePath(config: StoreConfig): string | undefined {
  if (config.store.type !== 'sqlite') return undefined;
  return config.store.path ?? join(config.dataDir, 'relay.db');
}

/**
 * A new store as configured (not opened yet). The PostgreSQL store is `owner`-less here: each
 * instance leases under an id of its own process.
 */
export function createStore(config: StoreConfig): Store {
  const { store } = config;
  if (store.type === 'postgres') {
    return new PostgresStore({
      url: store.url,
      schema: store.schema,
      leaseTimeout: store.leaseTimeout,
      retention: config.retention,
    });
  }
  return new SqliteStore({
    path: store.path ?? join(config.dataDir, 'relay.db'),
    durability: config.durability,
    retention: config.retention,
  });
}

/**
 * Opens the configured store (open() done); the caller closes it. Rejects when the database
 * cannot be opened, e.g. while a relay holds it.
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  const store = createStore(config);
  await store.open();
  return store;
}
