// The `eventsinks` command: relay, validate, dlq list/replay, schema.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { QueueFile, isQueueLockedError } from '../sqlite/index.js';
import { ConfigError, formatProblem, loadConfig } from './config.js';
import { destinationFiles } from './destinations.js';
import type { DeadRecord, Envelope } from './envelope.js';
import { Relay, splitHostPort } from './Relay.js';
import { relayJsonSchema, type RelayConfig } from './schema.js';

const EX_USAGE = 64;
const EX_CONFIG = 78;

const USAGE = `Usage:
  eventsinks relay    [--config relay.yaml]   run the relay (embedded defaults without --config)
  eventsinks validate  --config relay.yaml    check a configuration; exit 78 if it is invalid
  eventsinks dlq list   <destination> [--config relay.yaml] [--limit N]
  eventsinks dlq replay <destination> [--config relay.yaml] [--since 2026-01-01T00:00:00Z|1h]
  eventsinks schema                           print the configuration's JSON Schema
`;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function adminBase(config: RelayConfig): string {
  const [host, port] = splitHostPort(config.server.listen);
  const target = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `http://${target.includes(':') ? `[${target}]` : target}:${port}`;
}

function adminHeaders(config: RelayConfig): Record<string, string> {
  const http = config.sources.find((s) => s.type === 'http');
  return http?.token ? { authorization: `Bearer ${http.token}` } : {};
}

/** Calls the running relay's admin endpoint; undefined when no relay answers. */
async function callAdmin(
  config: RelayConfig,
  path: string,
  method: 'GET' | 'POST',
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${adminBase(config)}${path}`, {
      method,
      headers: adminHeaders(config),
      signal: AbortSignal.timeout(60_000),
    });
  } catch {
    return undefined;
  }
  const body = (await response.json()) as unknown;
  if (!response.ok) {
    throw new Error(`relay answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}

function parseSince(value: string | undefined): number {
  if (value === undefined) return 0;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value);
  if (match) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms'];
    return Date.now() - Number(match[1]) * unit;
  }
  const date = Date.parse(value);
  if (Number.isNaN(date))
    throw new TypeError(`--since: expected a date or a duration such as 1h, got "${value}"`);
  return date;
}

async function dlq(
  config: RelayConfig,
  action: string | undefined,
  name: string | undefined,
  values: { since?: string | undefined; limit?: string | undefined },
  io: Io,
): Promise<number> {
  if ((action !== 'list' && action !== 'replay') || name === undefined) {
    io.err(USAGE);
    return EX_USAGE;
  }
  if (!config.destinations.some((d) => d.name === name)) {
    io.err(
      `no destination named "${name}" (have: ${config.destinations.map((d) => d.name).join(', ')})\n`,
    );
    return EX_USAGE;
  }
  const files = destinationFiles(config.dataDir, name);
  const openFile = <T>(path: string): QueueFile<T> => {
    try {
      return new QueueFile<T>({ path, durability: config.durability });
    } catch (error) {
      if (isQueueLockedError(error)) {
        throw new Error(
          `${path} is in use, most likely by a running relay, but no relay answered at ` +
            `${adminBase(config)}: run this against the relay's configuration`,
          { cause: error },
        );
      }
      throw error;
    }
  };
  if (action === 'list') {
    const limit = values.limit === undefined ? 1000 : Number(values.limit);
    const remote = await callAdmin(
      config,
      `/admin/dlq/${encodeURIComponent(name)}?limit=${limit}`,
      'GET',
    );
    const entries =
      (remote as unknown[] | undefined) ??
      (() => {
        const dead = openFile<DeadRecord>(files.dead);
        try {
          return dead.list({ limit }).map(({ id, event }) => ({ id, ...event }));
        } finally {
          dead.close();
        }
      })();
    for (const entry of entries) io.out(`${JSON.stringify(entry)}\n`);
    return 0;
  }
  const since = parseSince(values.since);
  const remote = (await callAdmin(
    config,
    `/admin/dlq/${encodeURIComponent(name)}/replay?since=${since}`,
    'POST',
  )) as { replayed: number } | undefined;
  if (remote) {
    io.out(`replayed ${remote.replayed} dead letters into ${name} (relay running)\n`);
    return 0;
  }
  // No relay running: move the entries between the files; the next start delivers them.
  const dead = openFile<DeadRecord>(files.dead);
  let queue: QueueFile<Envelope>;
  try {
    queue = openFile<Envelope>(files.queue);
  } catch (error) {
    dead.close();
    throw error;
  }
  let replayed = 0;
  try {
    let after = 0;
    for (;;) {
      const page = dead.list({ after, limit: 500 });
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      const chosen = page.filter((entry) => entry.event.deadAt >= since);
      for (const entry of chosen) queue.append(entry.event.envelope);
      dead.remove(chosen.map((entry) => entry.id));
      replayed += chosen.length;
    }
  } finally {
    queue.close();
    dead.close();
  }
  io.out(`replayed ${replayed} dead letters into ${name} (delivered when the relay starts)\n`);
  return 0;
}

async function runRelay(config: RelayConfig, io: Io): Promise<number> {
  const relay = new Relay(config);
  await relay.start();
  const address = relay.address;
  if (address) io.err(`eventsinks relay listening on http://${address.address}:${address.port}\n`);
  const statusTimer = process.stderr.isTTY
    ? setInterval(() => io.err(`${relay.status().join('\n')}\n`), 5000)
    : undefined;
  statusTimer?.unref();
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        io.err(`second ${signal}: exiting now; undelivered events stay on disk\n`);
        process.exit(1);
      }
      relay.logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  if (statusTimer) clearInterval(statusTimer);
  await relay.stop();
  // Everything is on disk now. A client that a destination left behind at the deadline (a
  // broker connection still being opened to a server that never answers) must not keep the
  // process alive past it; when nothing is left, the process exits before this fires.
  setTimeout(() => process.exit(0), 200).unref();
  return 0;
}

/** Runs the command line; resolves with the exit code. */
export async function main(args: readonly string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        since: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}`);
    return EX_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.version) {
    io.out(`${version()}\n`);
    return 0;
  }
  const [command = 'relay', ...rest] = positionals;
  if (command === 'schema') {
    io.out(`${JSON.stringify(relayJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (!['relay', 'validate', 'dlq'].includes(command)) {
    io.err(`unknown command "${command}"\n\n${USAGE}`);
    return EX_USAGE;
  }
  if (command === 'validate' && values.config === undefined) {
    io.err(`validate needs --config\n\n${USAGE}`);
    return EX_USAGE;
  }
  let config: RelayConfig;
  try {
    config = loadConfig(values.config);
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) io.err(`${formatProblem(problem, error.file)}\n`);
      io.err(`${error.problems.length} problem${error.problems.length === 1 ? '' : 's'} found\n`);
      return EX_CONFIG;
    }
    throw error;
  }
  switch (command) {
    case 'validate':
      io.out(
        `${values.config}: ok (${config.destinations.length} destinations, ${config.sources.length} sources)\n`,
      );
      return 0;
    case 'dlq':
      return dlq(config, rest[0], rest[1], values, io);
    default:
      return runRelay(config, io);
  }
}
