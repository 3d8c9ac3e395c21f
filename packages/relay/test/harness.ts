// Shared pieces of the relay's end-to-end tests: the relay as a child process on a temp dir
// and a free port, and local webhook receivers that count what they get.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  options: { cwd?: string; env?: Record<string, string>; stdin?: boolean } = {},
): Promise<RelayProcess> {
  const child = spawn(process.execPath, ['--import', TSX, CLI, 'relay', '--config', configFile], {
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
    const timer = setTimeout(() => reject(new Error(`relay did not start:\n${stderr}`)), 30_000);
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

/** A webhook receiver on 127.0.0.1 that records every request it accepts. */
export class Receiver {
  readonly received: Received[] = [];
  /** Set to answer every request with this status instead of 200. */
  status = 200;
  /** Added delay per request, in ms. */
  delay = 0;
  requests = 0;
  #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    let text = '';
    for await (const chunk of req) text += (chunk as Buffer).toString();
    if (this.delay > 0) await new Promise((r) => setTimeout(r, this.delay));
    const status = this.status;
    if (status >= 200 && status < 300) {
      const body: unknown = JSON.parse(text);
      const id = req.headers['webhook-id'];
      for (const event of Array.isArray(body) ? body : [body]) {
        this.received.push({ id: typeof id === 'string' ? id : undefined, body: event });
      }
    }
    res.writeHead(status).end();
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
