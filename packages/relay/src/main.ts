// The `eventsinks` command: relay, validate, dlq list/replay, messages list/show/resend, schema,
// help.
//
// Exit codes (sysexits.h): 0 ok; 64 usage (a bad flag or value); 69 unavailable (the address is
// in use or not local, the data files are held by another relay, the running relay cannot be
// reached); 66 no such message (`messages show`, `messages resend`); 70 internal error (a bug: the stack is printed at --log-level debug); 77 permission
// denied; 78 configuration (invalid, unreadable, or an unset variable).
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  CONFIG_ENV,
  ConfigError,
  EMPTY_FILE_NOTE,
  findConfig,
  formatProblem,
  isEmptyConfig,
  loadAdminConfig,
  loadConfig,
  readConfigText,
  type ConfigSource,
} from './config.js';
import {
  DEFAULT_MESSAGES_LIMIT,
  MAX_LIMIT,
  detailJson,
  listDeadLetters,
  parseSinceParam,
  replayDeadLetters,
  summaryJson,
  type DeadLetter,
  type MessageDetailJson,
  type MessagePageJson,
} from './admin.js';
import {
  LOG_LEVELS,
  LOG_LEVEL_ENV,
  createLogger,
  describeError,
  isLogLevel,
  isVerbose,
  type LogLevel,
} from './logger.js';
import { ReloadInvalidError } from './registry.js';
import { Relay, splitHostPort } from './Relay.js';
import { relayJsonSchema, type RelayAdminConfig, type RelayConfig } from './schema.js';
import {
  openStore as openConfiguredStore,
  storePath,
  type StoreConfig,
} from './store/openStore.js';
import type { DeliveryStatus, MessageQuery, Store } from './store/Store.js';

export const EX_USAGE = 64;
export const EX_NOINPUT = 66;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

/** The file in `dataDir` where a running relay says where it listens (and its pid). */
export const RELAY_FILE = 'relay.json';

interface Io {
  out(text: string): void;
  err(text: string): void;
}

type Env = Readonly<Record<string, string | undefined>>;

const CONFIG_HELP = `  -c, --config <file>     the configuration (default: $${CONFIG_ENV}, else ./relay.yaml
                          if it exists, else the embedded defaults)`;
const LOG_HELP = `      --log-level <level> ${LOG_LEVELS.join(', ')} (default: $${LOG_LEVEL_ENV},
                          else log.level in the configuration, else info)`;
const HELP_HELP = `  -h, --help              this help`;

interface Command {
  usage: string;
  about: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  positionals: string[];
}

const common = {
  config: { type: 'string', short: 'c' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMANDS: Record<string, Command> = {
  relay: {
    usage: 'eventsinks relay [--config relay.yaml] [--log-level info]',
    about:
      'run the relay until SIGTERM or Ctrl-C (or the end of stdin, when it is the only source)',
    help: [CONFIG_HELP, LOG_HELP, HELP_HELP].join('\n'),
    options: common,
    positionals: [],
  },
  validate: {
    usage: 'eventsinks validate [--config relay.yaml]',
    about: 'check a configuration; every problem with its line, exit 78 if there is one',
    help: [CONFIG_HELP, LOG_HELP, HELP_HELP].join('\n'),
    options: common,
    positionals: [],
  },
  'dlq list': {
    usage: 'eventsinks dlq list <destination> [--config relay.yaml] [--limit 1000] [--json]',
    about: "print a destination's dead letters, oldest first",
    help: [
      CONFIG_HELP,
      `      --limit <n>         at most the n latest (a whole number from 1 to ${MAX_LIMIT}; default 1000)`,
      '      --json              one JSON object per line (times in ms since the epoch)',
      LOG_HELP,
      HELP_HELP,
    ].join('\n'),
    options: { ...common, limit: { type: 'string' }, json: { type: 'boolean' } },
    positionals: ['destination'],
  },
  'dlq replay': {
    usage: 'eventsinks dlq replay <destination> [--config relay.yaml] [--since 1h] [--json]',
    about: "put a destination's dead letters back in its queue, with their ids",
    help: [
      CONFIG_HELP,
      '      --since <when>      only those given up on since then: a duration back from now',
      '                          (500ms, 30s, 5m, 1h, 1d) or a date (2026-01-01T00:00:00Z)',
      '      --json              print {"replayed": n, "relay": "running"|"stopped"}',
      LOG_HELP,
      HELP_HELP,
    ].join('\n'),
    options: { ...common, since: { type: 'string' }, json: { type: 'boolean' } },
    positionals: ['destination'],
  },
  'messages list': {
    usage:
      'eventsinks messages list [--config relay.yaml] [--destination <name>] [--status pending|delivered|dead] [--since 1h] [--limit 100] [--cursor <c>] [--json]',
    about: 'list the message log, newest first: each message with its deliveries',
    help: [
      CONFIG_HELP,
      '      --destination <name> only messages for this destination (--status applies to it)',
      '      --status <status>   only messages with a delivery that is pending, delivered or dead',
      '      --since <when>      only messages received since then: a duration back from now',
      '                          (30s, 5m, 1h, 1d), a date (2026-01-01T00:00:00Z) or ms since',
      '                          the epoch',
      `      --limit <n>         at most n messages (a whole number from 1 to ${MAX_LIMIT}; default ${DEFAULT_MESSAGES_LIMIT})`,
      '      --cursor <c>        the next page: the cursor the previous page ended with',
      '      --json              print the admin API\'s answer: {"items": [...], "next": cursor|null}',
      LOG_HELP,
      HELP_HELP,
    ].join('\n'),
    options: {
      ...common,
      destination: { type: 'string' },
      status: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
    },
    positionals: [],
  },
  'messages show': {
    usage: 'eventsinks messages show <id> [--config relay.yaml] [--json]',
    about: 'print a message: its event, then per destination every attempt',
    help: [
      CONFIG_HELP,
      "      --json              print the admin API's answer (times as ISO 8601)",
      LOG_HELP,
      HELP_HELP,
    ].join('\n'),
    options: { ...common, json: { type: 'boolean' } },
    positionals: ['id'],
  },
  'messages resend': {
    usage: 'eventsinks messages resend <id> --destination <name> [--config relay.yaml] [--json]',
    about: 'deliver a message to a destination again, with the same id (webhook-id)',
    help: [
      CONFIG_HELP,
      '      --destination <name> the destination to deliver it to (required)',
      '      --json              print the admin API\'s answer: {"id": ..., "destination": ...}',
      LOG_HELP,
      HELP_HELP,
    ].join('\n'),
    options: { ...common, destination: { type: 'string' }, json: { type: 'boolean' } },
    positionals: ['id'],
  },
  schema: {
    usage: 'eventsinks schema',
    about: "print the configuration's JSON Schema (relay.schema.json)",
    help: HELP_HELP,
    options: { help: common.help },
    positionals: [],
  },
};

const USAGE = `Usage:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage}\n      ${c.about}`)
  .join('\n')}
  eventsinks help [command]    this help, or one command's options
  eventsinks --version

Exit codes: 0 ok, 64 usage, 66 no such message, 69 unavailable (address in use, files held
by another relay), 70 internal error, 77 permission denied, 78 configuration.
`;

const MESSAGES_USAGE = `Usage:
${['messages list', 'messages show', 'messages resend']
  .map((name) => `  ${COMMANDS[name]!.usage}\n      ${COMMANDS[name]!.about}`)
  .join('\n')}
See: eventsinks messages <list|show|resend> --help
`;

function commandHelp(command: Command): string {
  return `Usage: ${command.usage}\n\n${command.about[0]!.toUpperCase()}${command.about.slice(1)}.\n\nOptions:\n${command.help}\n`;
}

/** A bad command line: printed as one line, then the usage; exit 64. */
class UsageError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** A failure a person can act on: one line (what, where, what to do) and its exit code. */
class Failure extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Failure';
    this.exitCode = exitCode;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function parseLimit(value: string | undefined, command: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > MAX_LIMIT) {
    throw new UsageError(
      `--limit: expected a whole number from 1 to ${MAX_LIMIT}, got "${value}"`,
      command,
    );
  }
  return n;
}

/** `--since`: a duration back from now (the configuration's grammar), an ISO date, or ms. */
function parseSince(value: string | undefined, command: string, now = Date.now()): number {
  if (value === undefined) return 0;
  const since = parseSinceParam(value, now);
  if (since === undefined) {
    throw new UsageError(
      `--since: expected a duration such as 1h or 1d, or a date such as 2026-01-01T00:00:00Z, got "${value}"`,
      command,
    );
  }
  return since;
}

const STATUSES: readonly DeliveryStatus[] = ['pending', 'delivered', 'dead'];

function parseStatus(value: string | undefined, command: string): DeliveryStatus | undefined {
  if (value === undefined) return undefined;
  if (!(STATUSES as readonly string[]).includes(value)) {
    throw new UsageError(
      `--status: expected one of ${STATUSES.join(', ')}, got "${value}"`,
      command,
    );
  }
  return value as DeliveryStatus;
}

function connectable(host: string): string {
  const target = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return target.includes(':') ? `[${target}]` : target;
}

/** What a running relay wrote to `<dataDir>/relay.json`. */
interface RelayFile {
  pid: number;
  url: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === 'EPERM';
  }
}

/**
 * The admin URL of the relay that uses this `dataDir`: its relay.json when the process it names
 * is alive (`announced`), else `server.listen`.
 */
function adminBase(config: RelayAdminConfig): { base: string; announced?: string } {
  const path = join(config.dataDir, RELAY_FILE);
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as RelayFile;
    if (typeof file.url === 'string' && typeof file.pid === 'number' && alive(file.pid)) {
      return { base: file.url, announced: `pid ${file.pid}, from ${path}` };
    }
  } catch {
    // No relay.json (or a stale one): the configured address.
  }
  const [host, port] = splitHostPort(config.server.listen);
  return { base: `http://${connectable(host)}:${port}` };
}

/** The relay's admin auth order (server.ts): `admin.token`, else the http source's token. */
function adminHeaders(config: RelayAdminConfig): Record<string, string> {
  const token = config.admin.token ?? config.sources.find((s) => s.type === 'http')?.token;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A running relay's answer to an admin request. */
interface AdminAnswer {
  base: string;
  status: number;
  body: unknown;
}

/**
 * Calls the running relay's admin API; undefined when no relay answers. A 200, 202, 400 or 404
 * is returned; anything else is a {@link Failure}.
 */
async function requestAdmin(
  config: RelayAdminConfig,
  path: string,
  method: 'GET' | 'POST',
): Promise<AdminAnswer | undefined> {
  const { base, announced } = adminBase(config);
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: adminHeaders(config),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (error) {
    // A relay that announced itself is running on this store: reading or changing the store
    // behind its back would answer for a relay that is not there. Say so instead.
    if (announced !== undefined) {
      throw new Failure(
        `the relay at ${base} (${announced}) did not answer (${describeError(error)}): try again, or see its log; remove that file if no relay runs on this dataDir`,
        EX_UNAVAILABLE,
        { cause: error },
      );
    }
    return undefined;
  }
  const text = await response.text();
  if (response.status === 401 || response.status === 403) {
    throw new Failure(
      `the relay at ${base} refused the admin request (${response.status}): run this with the relay's configuration, which holds its admin token (admin.token, or the http source's token)`,
      EX_NOPERM,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (body === undefined || ![200, 202, 400, 404].includes(response.status)) {
    throw new Failure(
      `the relay at ${base} answered ${response.status} ${text.slice(0, 200)}: try again, or see its log`,
      EX_UNAVAILABLE,
    );
  }
  return { base, status: response.status, body };
}

/** The body of a 2xx answer; a 400 or 404 becomes a Failure with the relay's words. */
function answered(answer: AdminAnswer): unknown {
  if (answer.status < 300) return answer.body;
  const error = (answer.body as { error?: unknown } | null)?.error;
  const why = typeof error === 'string' ? error : JSON.stringify(answer.body).slice(0, 200);
  throw new Failure(
    `the relay at ${answer.base} answered ${answer.status}: ${why}`,
    answer.status === 404 ? EX_NOINPUT : EX_USAGE,
  );
}

/** Calls the running relay's admin API; the answer's body, or undefined when no relay answers. */
async function callAdmin(
  config: RelayAdminConfig,
  path: string,
  method: 'GET' | 'POST',
): Promise<unknown> {
  const answer = await requestAdmin(config, path, method);
  return answer === undefined ? undefined : answered(answer);
}

function where(source: ConfigSource): string {
  return source.path ?? 'the embedded defaults';
}

/** Test seams of {@link main}. */
export interface MainOptions {
  /** Opens the store when no relay runs (default: store/openStore.ts). */
  openStore?: (config: StoreConfig) => Promise<Store>;
}

/**
 * Runs `use` on the store of a relay that is not running, then closes it. Undefined, and
 * nothing created, when the store was never written (no relay ever ran on this dataDir).
 */
async function offline<T>(
  config: RelayAdminConfig,
  options: MainOptions,
  use: (store: Store) => Promise<T>,
): Promise<T | undefined> {
  const file = storePath(config);
  // A SQLite file that was never written: no relay ever ran here. PostgreSQL is always there.
  if (file !== undefined && !existsSync(file)) return undefined;
  const path =
    file ??
    `the PostgreSQL store (schema ${config.store.type === 'postgres' ? config.store.schema : ''})`;
  let store: Store;
  try {
    store = await (options.openStore ?? openConfiguredStore)(config);
  } catch (error) {
    throw new Failure(
      `cannot open ${path} (${describeError(error)}), and no relay answered at ` +
        `${adminBase(config).base}: if a relay runs on it, run this with that relay's configuration`,
      EX_UNAVAILABLE,
      { cause: error },
    );
  }
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

function checkDestination(
  config: RelayAdminConfig,
  source: ConfigSource,
  name: string,
  command: string,
): void {
  if (!config.destinations.some((d) => d.name === name)) {
    throw new UsageError(
      `no destination named "${name}" in ${where(source)} (have: ${config.destinations.map((d) => d.name).join(', ')})`,
      command,
    );
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

function printDead(name: string, entries: readonly DeadLetter[], json: boolean, io: Io): void {
  if (json) {
    for (const entry of entries) io.out(`${JSON.stringify(entry)}\n`);
    return;
  }
  if (entries.length === 0) {
    io.out(`${name}: no dead letters\n`);
    return;
  }
  io.out(
    `${name}: ${entries.length} dead letter${entries.length === 1 ? '' : 's'}, oldest first\n`,
  );
  for (const e of entries) {
    const status = e.status !== undefined ? `, status ${e.status}` : '';
    io.out(
      `\n${e.id}  given up ${iso(e.deadAt)} after ${e.attempts} attempt${e.attempts === 1 ? '' : 's'}${status} (first failed ${iso(e.firstFailedAt)})\n` +
        `  error: ${e.error}\n` +
        `  received ${iso(e.envelope.receivedAt)} from ${e.envelope.source}: ${JSON.stringify(e.envelope.event)}\n`,
    );
  }
}

async function dlq(
  action: 'list' | 'replay',
  name: string,
  values: { config?: string; since?: string; limit?: string; json?: boolean },
  env: Env,
  io: Io,
  options: MainOptions,
): Promise<number> {
  // Checked before the configuration is read: a bad value is a usage error whatever the file says.
  const command = `dlq ${action}`;
  const limit = action === 'list' ? parseLimit(values.limit, command, 1000) : 0;
  const since = action === 'replay' ? parseSince(values.since, command) : 0;
  const source = findConfig(values.config, env);
  const config = loadAdminConfig(source.path, env);
  checkDestination(config, source, name, command);
  const path = `/admin/dlq/${encodeURIComponent(name)}`;
  if (action === 'list') {
    const remote = (await callAdmin(config, `${path}?limit=${limit}`, 'GET')) as
      DeadLetter[] | undefined;
    // No relay running: the store, if a relay ever wrote one.
    const entries =
      remote ?? (await offline(config, options, (store) => listDeadLetters(store, name, limit)));
    printDead(name, entries ?? [], values.json === true, io);
    return 0;
  }
  const report = (replayed: number, running: boolean): number => {
    if (values.json) {
      io.out(`${JSON.stringify({ replayed, relay: running ? 'running' : 'stopped' })}\n`);
    } else if (replayed === 0) {
      io.out(`${name}: no dead letters to replay\n`);
    } else {
      io.out(
        `replayed ${replayed} dead letter${replayed === 1 ? '' : 's'} into ${name} ` +
          `(${running ? 'relay running' : 'delivered when the relay starts'})\n`,
      );
    }
    return 0;
  };
  const remote = (await callAdmin(config, `${path}/replay?since=${since}`, 'POST')) as
    { replayed: number } | undefined;
  if (remote) return report(remote.replayed, true);
  // No relay running: pending again in the store; the next start delivers them.
  const replayed = await offline(config, options, (store) => replayDeadLetters(store, name, since));
  return report(replayed ?? 0, false);
}

/** Shell-quotes a word for a command line a person may paste, when it needs it. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * `eventsinks messages list` for a person: one line per message (received, id, source, each
 * destination:status(attempts)), then how to get the next page when there is one.
 * @param nextCommand the command line that repeats this listing, to which `--cursor` is added.
 */
export function formatMessageList(
  page: MessagePageJson,
  nextCommand = 'eventsinks messages list',
): string {
  let text = page.items.length === 0 ? 'no messages\n' : '';
  for (const m of page.items) {
    const deliveries = m.deliveries.map((d) => `${d.destination}:${d.status}(${d.attempts})`);
    text += `${m.receivedAt}  ${m.id}  ${m.source}  ${deliveries.join(' ') || '(no destination)'}\n`;
  }
  if (page.next !== null) text += `more: ${nextCommand} --cursor ${shellWord(page.next)}\n`;
  return text;
}

/** Longest event JSON that `messages show` prints; `--json` has it whole. */
const EVENT_SHOWN = 2000;
/** Longest response body shown per attempt. */
const RESPONSE_SHOWN = 200;

/**
 * `eventsinks messages show` for a person: the message, then per destination its status and
 * attempts (time, duration, HTTP status and/or error, next attempt).
 */
export function formatMessage(message: MessageDetailJson): string {
  const event = JSON.stringify(message.event);
  const shown =
    event.length <= EVENT_SHOWN
      ? event
      : `${event.slice(0, EVENT_SHOWN)}… (${event.length} characters; --json prints it whole)`;
  let text = `message ${message.id}\n  received ${message.receivedAt} from ${message.source}\n  event ${shown}\n`;
  if (message.deliveries.length === 0) text += '\nno destination took it (match/ignore)\n';
  for (const d of message.deliveries) {
    const count = d.attempts.length + (d.attemptsOmitted ?? 0);
    text += `\n${d.destination}: ${d.status}, ${count} attempt${count === 1 ? '' : 's'}\n`;
    if (d.attemptsOmitted) text += `  (${d.attemptsOmitted} earlier attempts not shown)\n`;
    for (const a of d.attempts) {
      const parts = [a.at, `${a.durationMs}ms`];
      if (a.status !== undefined) parts.push(String(a.status));
      if (a.error !== undefined) parts.push(a.error);
      else if (a.status === undefined) parts.push('ok');
      if (a.nextAt !== undefined) parts.push(`next attempt ${a.nextAt}`);
      text += `  ${parts.join('  ')}\n`;
      if (a.response !== undefined && a.response !== '') {
        const response = JSON.stringify(a.response);
        text += `    response ${response.length <= RESPONSE_SHOWN ? response : `${response.slice(0, RESPONSE_SHOWN)}…`}\n`;
      }
    }
  }
  return text;
}

/** `eventsinks messages resend` for a person. */
export function formatResend(
  answer: { id: string; destination: string },
  running: boolean,
): string {
  return `message ${answer.id} will be delivered to ${answer.destination} again (${running ? 'relay running' : 'when the relay starts'})\n`;
}

function noMessage(id: string): Failure {
  return new Failure(
    `no message "${id}" (never stored, or purged after retention): see eventsinks messages list`,
    EX_NOINPUT,
  );
}

interface MessagesValues {
  config?: string;
  destination?: string;
  status?: string;
  since?: string;
  limit?: string;
  cursor?: string;
  json?: boolean;
}

async function messages(
  action: 'list' | 'show' | 'resend',
  id: string | undefined,
  values: MessagesValues,
  env: Env,
  io: Io,
  options: MainOptions,
): Promise<number> {
  const command = `messages ${action}`;
  const print = (json: unknown, human: string): number => {
    io.out(values.json ? `${JSON.stringify(json)}\n` : human);
    return 0;
  };
  if (action === 'list') {
    // Checked before the configuration is read, as for dlq.
    const query: MessageQuery = {
      limit: parseLimit(values.limit, command, DEFAULT_MESSAGES_LIMIT),
    };
    const status = parseStatus(values.status, command);
    if (status !== undefined) query.status = status;
    if (values.since !== undefined) query.since = parseSince(values.since, command);
    if (values.cursor !== undefined) {
      if (values.cursor === '') {
        throw new UsageError('--cursor: expected the cursor a page ended with, got ""', command);
      }
      query.cursor = values.cursor;
    }
    const source = findConfig(values.config, env);
    const config = loadAdminConfig(source.path, env);
    if (values.destination !== undefined) {
      checkDestination(config, source, values.destination, command);
      query.destination = values.destination;
    }
    const params = new URLSearchParams();
    if (query.destination !== undefined) params.set('destination', query.destination);
    if (query.status !== undefined) params.set('status', query.status);
    if (query.since !== undefined) params.set('since', String(query.since));
    params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const page =
      ((await callAdmin(config, `/admin/messages?${params}`, 'GET')) as
        MessagePageJson | undefined) ??
      (await offline(config, options, async (store) => {
        const found = await store.listMessages(query);
        return { items: found.items.map(summaryJson), next: found.next };
      })) ??
      ({ items: [], next: null } satisfies MessagePageJson);
    // The next page's command repeats the filters, with --since as the date it stood for.
    const again = ['eventsinks', 'messages', 'list'];
    if (values.config !== undefined) again.push('--config', values.config);
    if (query.destination !== undefined) again.push('--destination', query.destination);
    if (query.status !== undefined) again.push('--status', query.status);
    if (query.since !== undefined) again.push('--since', iso(query.since));
    if (values.limit !== undefined) again.push('--limit', String(query.limit));
    return print(page, formatMessageList(page, again.map(shellWord).join(' ')));
  }
  const messageId = id!;
  const destination = values.destination;
  if (action === 'resend' && (destination === undefined || destination === '')) {
    throw new UsageError(
      `--destination: required (the destination to deliver "${messageId}" to again)`,
      command,
    );
  }
  const source = findConfig(values.config, env);
  const config = loadAdminConfig(source.path, env);
  const path = `/admin/messages/${encodeURIComponent(messageId)}`;
  if (action === 'show') {
    const remote = await requestAdmin(config, path, 'GET');
    let detail: MessageDetailJson | undefined;
    if (remote) {
      if (remote.status === 404) throw noMessage(messageId);
      detail = answered(remote) as MessageDetailJson;
    } else {
      detail = await offline(config, options, async (store) => {
        const found = await store.getMessage(messageId);
        return found && detailJson(found);
      });
    }
    if (!detail) throw noMessage(messageId);
    return print(detail, formatMessage(detail));
  }
  checkDestination(config, source, destination!, command);
  const remote = await requestAdmin(
    config,
    `${path}/resend?destination=${encodeURIComponent(destination!)}`,
    'POST',
  );
  if (remote) {
    const answer = answered(remote) as { id: string; destination: string };
    return print(answer, formatResend(answer, true));
  }
  const resent = await offline(config, options, (store) => store.resend(messageId, destination!));
  if (!resent) throw noMessage(messageId);
  const answer = { id: messageId, destination: destination! };
  return print(answer, formatResend(answer, false));
}

/** Turns a failure to start listening into one line an operator can act on. */
function listenFailure(error: unknown, config: RelayConfig, source: ConfigSource): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const listen = config.server.listen;
  const fix = `set server.listen in ${source.path ?? 'a configuration file (--config)'}`;
  switch (code) {
    case 'EADDRINUSE':
      return new Failure(
        `cannot listen on ${listen}: the address is already in use (another relay or program listens there): stop it, or ${fix} to a free port`,
        EX_UNAVAILABLE,
        { cause: error },
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new Failure(
        `cannot listen on ${listen}: no such address on this machine: ${fix} to a local address, e.g. 127.0.0.1:8080`,
        EX_UNAVAILABLE,
        { cause: error },
      );
    case 'EACCES':
      return new Failure(
        `cannot listen on ${listen}: permission denied (ports below 1024 need privileges): ${fix} to a port above 1023`,
        EX_NOPERM,
        { cause: error },
      );
    case 'ERR_QUEUE_LOCKED':
      return new Failure(
        `${(error as { path?: string }).path ?? config.dataDir} is in use by another relay: stop it, or give this one another dataDir`,
        EX_UNAVAILABLE,
        { cause: error },
      );
    default:
      return error;
  }
}

async function runRelay(
  config: RelayConfig,
  source: ConfigSource,
  level: LogLevel,
  io: Io,
  env: Env,
  input: unknown,
): Promise<number> {
  const logger = createLogger({ level });
  if (source.path !== undefined && isEmptyConfig(readConfigText(source.path))) {
    logger.warn(`${source.path}: ${EMPTY_FILE_NOTE}`);
  }
  const relay = new Relay(config, {
    logger,
    input,
    // A reload reads the same file with the environment the relay started with.
    loadConfig: () => {
      const again: { input?: unknown } = {};
      const reloaded = loadConfig(source.path, env, again);
      return { config: reloaded, input: again.input };
    },
  });
  try {
    await relay.start();
  } catch (error) {
    await relay.stop(0).catch(() => undefined);
    throw listenFailure(error, config, source);
  }
  const onlyStdin = config.sources.length > 0 && config.sources.every((s) => s.type === 'stdin');
  // The signal handlers are in place before the announcement: a supervisor that sends SIGHUP
  // or SIGTERM as soon as it reads `listening on` must not meet the default action (exit).
  const shutdown = new Promise<void>((resolve) => {
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
    // SIGHUP re-reads the configuration file (as POST /admin/reload); the outcome is logged.
    process.on('SIGHUP', () => {
      relay.logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
      relay.reload().catch((error: unknown) => {
        // An invalid file was logged with its problems by reload itself.
        if (!(error instanceof ReloadInvalidError)) {
          relay.logger.error({ err: error }, 'reload failed');
        }
      });
    });
    // Under npm (`npx eventsinks relay`, `npm start`) a shell may sit between npm and the relay
    // and not pass npm's SIGTERM on: the shell dies and the relay would run on, orphaned. When
    // the parent goes away, stop as if signalled. (Only under npm: a relay started with nohup or
    // by a shell that exits is meant to keep running.)
    if (env.npm_command !== undefined || env.npm_lifecycle_event !== undefined) {
      const parent = process.ppid;
      const watch = setInterval(() => {
        if (process.ppid === parent) return;
        clearInterval(watch);
        relay.logger.info({ parent }, 'the parent process (npm) exited: shutting down');
        resolve();
      }, 250);
      watch.unref();
    }
    // With stdin as the only source, its end is the end of the work: drain and exit 0.
    if (onlyStdin) {
      process.stdin.once('end', () => {
        relay.logger.info('end of stdin: shutting down');
        resolve();
      });
    }
  });
  const address = relay.address;
  const relayFile = join(config.dataDir, RELAY_FILE);
  if (address) {
    const url = `http://${connectable(address.address)}:${address.port}`;
    // So that `eventsinks dlq` finds this relay even when it listens on port 0. Written before
    // the announcement, which is what scripts wait for, and renamed into place so that a reader
    // polling for the file never sees it half written.
    const partial = `${relayFile}.${process.pid}.tmp`;
    writeFileSync(partial, `${JSON.stringify({ pid: process.pid, url })}\n`);
    renameSync(partial, relayFile);
    io.err(`eventsinks relay listening on http://${address.address}:${address.port}\n`);
  }
  const statusTimer = process.stderr.isTTY
    ? setInterval(() => io.err(`${relay.status().join('\n')}\n`), 5000)
    : undefined;
  statusTimer?.unref();
  await shutdown;
  if (statusTimer) clearInterval(statusTimer);
  try {
    await relay.stop();
  } finally {
    removeRelayFile(relayFile);
  }
  // Everything is on disk now. A client that a destination left behind at the deadline (a
  // broker connection still being opened to a server that never answers) must not keep the
  // process alive past it; when nothing is left, the process exits before this fires.
  setTimeout(() => process.exit(0), 200).unref();
  return 0;
}

function removeRelayFile(path: string): void {
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as RelayFile;
    if (file.pid === process.pid) rmSync(path, { force: true });
  } catch {
    // Gone already, or not ours.
  }
}

function printConfigError(error: ConfigError, io: Io): number {
  for (const problem of error.problems) io.err(`${formatProblem(problem, error.file)}\n`);
  io.err(`${error.problems.length} problem${error.problems.length === 1 ? '' : 's'} found\n`);
  return EX_CONFIG;
}

/** The command's name and the arguments after it: `dlq list x` → ['dlq list', ['x']]. */
function split(args: readonly string[]): [string, string[]] {
  const first = args[0];
  if (first === undefined || first.startsWith('-')) return ['relay', [...args]];
  if (first === 'dlq') {
    const action = args[1];
    if (action === 'list' || action === 'replay') return [`dlq ${action}`, args.slice(2)];
    if (action === undefined || action === '--help' || action === '-h') {
      return ['dlq', args.slice(1)];
    }
    throw new UsageError(`dlq: unknown action "${action}" (expected list or replay)`, 'dlq');
  }
  if (first === 'messages') {
    const action = args[1];
    if (action === 'list' || action === 'show' || action === 'resend') {
      return [`messages ${action}`, args.slice(2)];
    }
    if (action === undefined || action.startsWith('-')) return ['messages', args.slice(1)];
    throw new UsageError(`unknown action "${action}" (expected list, show or resend)`, 'messages');
  }
  return [first, args.slice(1)];
}

function usageOf(command: string | undefined): string {
  const known = command === undefined ? undefined : COMMANDS[command];
  if (known) return `Usage: ${known.usage}\nSee: eventsinks ${command} --help\n`;
  if (command === 'dlq') {
    return `Usage:\n  ${COMMANDS['dlq list']!.usage}\n  ${COMMANDS['dlq replay']!.usage}\n`;
  }
  if (command === 'messages') return MESSAGES_USAGE;
  return USAGE;
}

/** Runs the command line; resolves with the exit code. */
export async function main(
  args: readonly string[],
  io: Io,
  env: Env = process.env,
  options: MainOptions = {},
): Promise<number> {
  // Before the configuration is known, the level (and so whether to print stacks) comes from
  // the flag or the environment.
  let verbose = isVerbose(env[LOG_LEVEL_ENV] ?? '');
  const flagIndex = args.indexOf('--log-level');
  if (flagIndex >= 0) verbose = isVerbose(args[flagIndex + 1] ?? '');
  else if (args.some((a) => /^--log-level=(debug|trace)$/.test(a))) verbose = true;
  try {
    return await run(args, io, env, options);
  } catch (error) {
    if (error instanceof UsageError) {
      const prefix = error.command ? `eventsinks ${error.command}: ` : 'eventsinks: ';
      io.err(`${prefix}${error.message}\n\n${usageOf(error.command)}`);
      return EX_USAGE;
    }
    if (error instanceof ConfigError) return printConfigError(error, io);
    if (error instanceof Failure) {
      io.err(`eventsinks: ${error.message}\n`);
      if (verbose && error.cause instanceof Error && error.cause.stack) {
        io.err(`${error.cause.stack}\n`);
      }
      return error.exitCode;
    }
    io.err(
      `eventsinks: internal error: ${describeError(error)}\n` +
        (verbose && error instanceof Error && error.stack
          ? `${error.stack}\n`
          : `(run with --log-level debug for the stack, and please report it)\n`),
    );
    return EX_SOFTWARE;
  }
}

async function run(
  args: readonly string[],
  io: Io,
  env: Env,
  options: MainOptions,
): Promise<number> {
  if (args[0] === '--version' || args[0] === '-v' || args[0] === 'version') {
    io.out(`${version()}\n`);
    return 0;
  }
  if (args[0] === 'help' || args[0] === '--help' || args[0] === '-h') {
    const topic = args.slice(1).join(' ');
    if (topic === '') io.out(USAGE);
    else if (COMMANDS[topic]) io.out(commandHelp(COMMANDS[topic]));
    else if (topic === 'dlq' || topic === 'messages') io.out(usageOf(topic));
    else throw new UsageError(`help: unknown command "${topic}"`);
    return 0;
  }
  const [name, rest] = split(args);
  if (name === 'dlq') {
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(usageOf('dlq'));
      return 0;
    }
    throw new UsageError('dlq needs an action: list or replay', 'dlq');
  }
  if (name === 'messages') {
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(usageOf('messages'));
      return 0;
    }
    throw new UsageError('messages needs an action: list, show or resend', 'messages');
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"`);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(describeError(error).replace(/\. To specify.*$/, ''), name);
  }
  const values = parsed.values as {
    config?: string;
    'log-level'?: string;
    help?: boolean;
    since?: string;
    limit?: string;
    json?: boolean;
    destination?: string;
    status?: string;
    cursor?: string;
  };
  if (values.help) {
    io.out(commandHelp(command));
    return 0;
  }
  const positionals = parsed.positionals;
  if (positionals.length < command.positionals.length) {
    throw new UsageError(`missing <${command.positionals[positionals.length]}>`, name);
  }
  if (positionals.length > command.positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[command.positionals.length]}"`, name);
  }
  const flagLevel = values['log-level'];
  if (flagLevel !== undefined && !isLogLevel(flagLevel)) {
    throw new UsageError(
      `--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${flagLevel}"`,
      name,
    );
  }
  const envLevel = env[LOG_LEVEL_ENV];
  if (flagLevel === undefined && envLevel !== undefined && envLevel !== '') {
    if (!isLogLevel(envLevel)) {
      throw new ConfigError(
        [
          {
            path: '',
            message: `$${LOG_LEVEL_ENV}: expected one of ${LOG_LEVELS.join(', ')}, got "${envLevel}"`,
          },
        ],
        undefined,
      );
    }
  }

  switch (name) {
    case 'schema':
      io.out(`${JSON.stringify(relayJsonSchema(), null, 2)}\n`);
      return 0;
    case 'dlq list':
    case 'dlq replay':
      return dlq(
        name === 'dlq list' ? 'list' : 'replay',
        positionals[0]!,
        values,
        env,
        io,
        options,
      );
    case 'messages list':
    case 'messages show':
    case 'messages resend':
      return messages(
        name.slice('messages '.length) as 'list' | 'show' | 'resend',
        positionals[0],
        values,
        env,
        io,
        options,
      );
  }
  const source = findConfig(values.config, env);
  const read: { input?: unknown } = {};
  const config = loadConfig(source.path, env, read);
  if (name === 'validate') {
    const summary = `${config.destinations.length} destination${config.destinations.length === 1 ? '' : 's'}, ${config.sources.length} source${config.sources.length === 1 ? '' : 's'}`;
    if (source.path === undefined) {
      io.out(
        `no configuration file (--config, $${CONFIG_ENV} and ./relay.yaml name none): the embedded defaults are ok (${summary})\n`,
      );
    } else if (isEmptyConfig(readConfigText(source.path))) {
      io.out(`${source.path}: ok: ${EMPTY_FILE_NOTE}\n`);
    } else {
      io.out(`${source.path}: ok (${summary})\n`);
    }
    return 0;
  }
  const level: LogLevel =
    flagLevel ?? (isLogLevel(envLevel) ? envLevel : undefined) ?? config.log.level;
  return runRelay(config, source, level, io, env, read.input);
}
