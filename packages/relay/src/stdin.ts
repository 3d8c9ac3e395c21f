// The stdin source: NDJSON, one event per line. A malformed line is logged with its number and
// skipped (a stream has no request to refuse); lines are ingested in groups, and reading pauses
// while a group is being stored, so a fast producer meets the disk's pace.
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { parseNdjson } from './ingest.js';
import type { RunningSource } from './brokers.js';

const GROUP = 1000;

export function startStdin(
  input: NodeJS.ReadableStream,
  ingest: (events: Record<string, unknown>[]) => Promise<unknown>,
  logger: Logger,
): RunningSource & { ended: Promise<void> } {
  const log = logger.child({ source: 'stdin' });
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  let lineNumber = 0;
  let group: Record<string, unknown>[] = [];
  let flushing: Promise<void> | undefined;

  const flush = async (): Promise<void> => {
    while (group.length > 0) {
      const events = group;
      group = [];
      try {
        await ingest(events);
      } catch (error) {
        log.error({ err: error, events: events.length }, 'could not store events from stdin');
      }
    }
    flushing = undefined;
    lines.resume();
  };

  lines.on('line', (line) => {
    lineNumber++;
    if (line.trim() === '') return;
    const parsed = parseNdjson(line);
    if (!parsed.ok) {
      log.warn(
        { line: lineNumber },
        `stdin line ${lineNumber}: ${parsed.error.replace(/^line 1: /, '')}`,
      );
      return;
    }
    group.push(...parsed.events);
    if (group.length >= GROUP) lines.pause();
    // Gather what arrived in this tick, then store it in one go.
    flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(flush);
  });
  const ended = new Promise<void>((resolve) => lines.once('close', resolve)).then(async () => {
    await flushing;
  });
  return {
    ended,
    async close() {
      lines.close();
      await ended;
    },
  };
}
