// eventsinks/sqlite: a durable queue on embedded SQLite (better-sqlite3, an optional peer).
export { DurableQueue } from './DurableQueue.js';
export type { DurableQueueOptions } from './DurableQueue.js';
export { durableId } from './durableId.js';
export { QueueFile } from './QueueFile.js';
export type { QueueFileOptions, QueueEntry } from './QueueFile.js';
export type { Codec } from './codec.js';
export type { Durability } from './Store.js';
export {
  QueueOpenError,
  isQueueOpenError,
  QueueLockedError,
  isQueueLockedError,
  EncodeError,
  isEncodeError,
  DecodeError,
  isDecodeError,
} from './errors.js';
