// Shared pieces of the relay's end-to-end tests: the relay as a child process on a temp dir
// and a free port, and local webhook receivers that count what they get.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestinationStatus } from '../src/adminSchemas.js';

/** The repository root (the workspace): the relay runs here unless a test says otherwise. */
export const ROOT = new URL('../../../', import.meta.url);
/** packages/relay/: the relay's own package.json, schema file and sources. */
export const PACKAGE = new URL('../', import.meta.url);
const CLI = new URL('src/cli.ts', PACKAGE).pathname;
// Resolved here: the relay runs with its temp dir as cwd, where `--import tsx` would not resolve.
const TSX = import.meta.resolve('tsx');

/** Everything a test opened, closed by closeAll() in an after() hook even when a test fails. */
const open = new Set<{ close(): unknown }>();

export async function closeAll(): Promise<void> {
  for (const item of open) await item.close();
  open.clear();
}

export function tempDir(prefix = 'eventsinks-relay-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface RelayProcess {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `eventsinks <args>` to completion. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `eventsinks relay --config <file>` and waits until it listens. */
export async function startRelay(
  configFile: string,
  options: {
    cwd?: string;
    env?: Record<string, string>;
    stdin?: boolean;
    /** How long to wait for `listening on`, ms (default 30 000). */
    startTimeout?: number;
    /** More options for node, before the CLI (e.g. another `--import`). */
    nodeArgs?: string[];
  } = {},
): Promise<RelayProcess> {
  const args = [...(options.nodeArgs ?? []), CLI, 'relay', '--config', configFile];
  const child = spawn(process.execPath, ['--import', TSX, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const handle = {
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  open.add(handle);
  void exited.then(() => open.delete(handle));
  const url = await new Promise<string>((resolve, reject) => {
    const ms = options.startTimeout ?? 30_000;
    const timer = setTimeout(
      () => reject(new Error(`relay did not start within ${ms} ms:\n${stderr}`)),
      ms,
    );
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const match = /listening on (http:\/\/[^\s]+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code} before listening:\n${stderr}`));
    });
  });
  return { child, url, stdout: () => stdout, stderr: () => stderr, exited };
}

export function writeConfig(dir: string, yaml: string): string {
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, yaml);
  return file;
}

export interface Received {
  id: string | undefined;
  body: unknown;
}

/** One request as a {@link Receiver} saw it, whatever it answered. */
export interface RequestRecord {
  /** When it arrived (Date.now()), before its body was read. */
  at: number;
  /** When the answer was sent; undefined while in flight. */
  end?: number;
  /** Its `webhook-id` header. */
  id: string | undefined;
  /** The parsed JSON body (the text when it is not JSON). */
  body: unknown;
  /** The status answered. */
  status?: number;
  /** The request's headers. */
  headers: IncomingMessage['headers'];
}

/** What a {@link Receiver}'s script answers to one request; unset fields fall back to its defaults. */
export interface ScriptedReply {
  status?: number;
  /** Delay before answering, ms. */
  delay?: number;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * A webhook receiver on 127.0.0.1 that records every request it accepts (`received`: 2xx
 * only) and every request at all (`log`), counts the requests in flight and the most reached,
 * and can answer each request as a script says (status, latency, headers, body).
 */
export class Receiver {
  readonly received: Received[] = [];
  /** Every request, in arrival order. */
  readonly log: RequestRecord[] = [];
  /** Set to answer every request with this status instead of 200. */
  status = 200;
  /** Added delay per request, in ms. */
  delay = 0;
  /** Per request answer; `request.n` counts from 0 in arrival order. Overrides status/delay. */
  script: ((request: RequestRecord & { n: number }) => ScriptedReply | undefined) | undefined;
  requests = 0;
  /** Requests being answered now, and the most there were at once. */
  inFlight = 0;
  maxInFlight = 0;
  #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 60_000;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = this.requests++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const header = req.headers['webhook-id'];
    const record: RequestRecord = {
      at: Date.now(),
      id: typeof header === 'string' ? header : undefined,
      body: undefined,
      headers: req.headers,
    };
    this.log.push(record);
    try {
      let text = '';
      for await (const chunk of req) text += (chunk as Buffer).toString();
      try {
        record.body = JSON.parse(text);
      } catch {
        record.body = text;
      }
      const reply = this.script?.({ ...record, n }) ?? {};
      const delay = reply.delay ?? this.delay;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const status = reply.status ?? this.status;
      record.status = status;
      if (status >= 200 && status < 300) {
        const body = record.body;
        for (const event of Array.isArray(body) ? body : [body]) {
          this.received.push({ id: record.id, body: event });
        }
      }
      record.end = Date.now();
      res.writeHead(status, reply.headers ?? {}).end(reply.body ?? '');
    } finally {
      this.inFlight--;
    }
  }

  async start(): Promise<this> {
    open.add(this);
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** The `seq` field of every event received, in arrival order. */
  seqs(): number[] {
    return this.received.map((r) => (r.body as { seq: number }).seq);
  }

  async close(): Promise<void> {
    open.delete(this);
    if (!this.#server.listening) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Polls `check` until it returns true, or fails after `ms`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

/** Small backoffs so retries happen within a test's time. */
export const FAST_RETRY = `
    retry:
      maxAttempts: 1000
      backoff: { base: 20ms, factor: 20ms, max: 300ms }`;

/** A port that was free a moment ago (for configurations that must name one). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One delivery as a stopped relay left it in its store: the event and what became of it. */
export interface StoredDelivery {
  id: string;
  event: Record<string, unknown>;
  status: 'pending' | 'delivered' | 'dead';
  attempts: { status?: number; error?: string }[];
}

/**
 * The deliveries to `destination` with `status` in the store of a STOPPED relay whose dataDir is
 * `dataDir` (the relay holds the database while it runs), oldest first.
 */
export async function storedDeliveries(
  dataDir: string,
  destination: string,
  status: 'pending' | 'delivered' | 'dead',
): Promise<StoredDelivery[]> {
  const { openSqliteStore } = await import('../src/store/SqliteStore.js');
  const store = await openSqliteStore({
    path: join(dataDir, 'relay.db'),
    durability: 'process',
    retention: 86_400_000,
  });
  try {
    const out: StoredDelivery[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await store.listMessages({
        destination,
        status,
        limit: 1000,
        ...(cursor !== undefined ? { cursor } : {}),
      });
      for (const item of page.items) {
        const detail = await store.getMessage(item.id);
        const delivery = detail?.deliveries.find((d) => d.destination === destination);
        if (detail && delivery)
          out.push({ id: detail.id, event: detail.event, status, attempts: delivery.attempts });
      }
      if (page.next === null) break;
      cursor = page.next;
    }
    // listMessages is newest first.
    return out.reverse();
  } finally {
    await store.close();
  }
}

/** Calls the relay's admin API (loopback, no token); the body parsed as JSON when it is. */
export async function admin(
  url: string,
  path: string,
  method: 'GET' | 'POST' = 'GET',
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${url}${path}`, { method, headers });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

/** `GET /admin/destinations`: one destination's line (adminSchemas.ts, the API's own type). */
export type { DestinationStatus, MessageDetailJson } from '../src/adminSchemas.js';
/** `GET /admin/messages`. */
export type { MessagePageJson as MessageListJson } from '../src/adminSchemas.js';

/** One destination's line of `GET /admin/destinations`; fails when it is missing. */
export async function destinationStatus(url: string, name: string): Promise<DestinationStatus> {
  const { status, json } = await admin(url, '/admin/destinations');
  if (status !== 200)
    throw new Error(`GET /admin/destinations answered ${status}: ${JSON.stringify(json)}`);
  const item = (json as { items: DestinationStatus[] }).items.find((d) => d.name === name);
  if (!item) throw new Error(`no destination ${name} in ${JSON.stringify(json)}`);
  return item;
}

/** SIGTERM, and the exit code. */
export async function stop(relay: RelayProcess): Promise<number | null> {
  relay.child.kill('SIGTERM');
  return (await relay.exited).code;
}

/** SIGKILL, and wait until it is gone. */
export async function kill(relay: RelayProcess): Promise<void> {
  relay.child.kill('SIGKILL');
  await relay.exited;
}

/** The relay's JSON log lines (pino), parsed; lines that are not JSON are left out. */
export function logLines(relay: RelayProcess): Record<string, unknown>[] {
  return relay
    .stderr()
    .split('\n')
    .flatMap((line): Record<string, unknown>[] => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === 'object' && value !== null
          ? [value as Record<string, unknown>]
          : [];
      } catch {
        return [];
      }
    });
}

/** Writes `yaml` as relay.yaml in `dir` (a new temp dir by default) and starts the relay there. */
export async function relayIn(
  yaml: string,
  dir = tempDir(),
): Promise<{ relay: RelayProcess; dir: string; file: string }> {
  const file = writeConfig(dir, yaml);
  return { relay: await startRelay(file, { cwd: dir }), dir, file };
}

/** The ids of a 202's body (`{ accepted, ids }`). */
export function idsOf(response: { status: number; json: unknown }): string[] {
  if (response.status !== 202) {
    throw new Error(`ingest answered ${response.status}: ${JSON.stringify(response.json)}`);
  }
  return (response.json as { ids: string[] }).ids;
}
