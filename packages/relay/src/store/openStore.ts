// Opening the store outside a running relay: what `eventsinks messages` and `dlq` do when no
// relay answers. One function, so the commands depend only on the Store interface.
import { join } from 'node:path';
import type { RelayAdminConfig } from '../schema.js';
import { SqliteStore } from './SqliteStore.js';
import type { Store } from './Store.js';

/** The parts of the configuration that say where the store is and how it keeps data. */
export type StoreConfig = Pick<RelayAdminConfig, 'dataDir' | 'durability' | 'store' | 'retention'>;

/** The SQLite store's file: `store.path`, else `<dataDir>/relay.db`. */
export function storePath(config: StoreConfig): string {
  return config.store.path ?? join(config.dataDir, 'relay.db');
}

/**
 * Opens the configured store (open() done); the caller closes it. Rejects when the database
 * cannot be opened, e.g. while a relay holds it.
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  const store = new SqliteStore({
    path: storePath(config),
    durability: config.durability,
    retention: config.retention,
  });
  await store.open();
  return store;
}
