// A real node:http receiver on 127.0.0.1 for the HTTP adapter's tests (not part of the package:
// test-utils.ts is excluded from the build, and only tests may import node: modules here).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the receiver saw it. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** Decides the response; the request body has been read in full into `received.body`. */
export type Handler = (
  received: Received,
  res: ServerResponse,
  req: IncomingMessage,
) => void | Promise<void>;

export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** Every request that reached the handler, in arrival order. */
  received: Received[];
  /** TCP connections accepted so far. */
  connections: number;
  handler: Handler;
  close(): Promise<void>;
}

/** Starts a receiver on an ephemeral port. With `raw`, the handler gets the request unread. */
export async function startServer(
  handler: Handler,
  options: { raw?: boolean } = {},
): Promise<TestServer> {
  const state: TestServer = {
    origin: '',
    received: [],
    connections: 0,
    handler,
    close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    res.on('error', () => {});
    req.on('error', () => {});
    const received: Received = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: Buffer.alloc(0),
    };
    if (options.raw) {
      state.received.push(received);
      void state.handler(received, res, req);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      // The cast bridges @types/node 20's Buffer and TypeScript 5.9's generic Uint8Array.
      received.body = Buffer.concat(chunks as unknown as Uint8Array[]);
      state.received.push(received);
      void Promise.resolve(state.handler(received, res, req)).catch((error: unknown) => {
        console.error('test handler failed', error);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  });
  server.on('connection', (socket) => {
    state.connections++;
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.origin = `http://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** Answers `status` with an optional body and headers. */
export function reply(
  res: ServerResponse,
  status: number,
  body = '',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, headers).end(body);
}

export { sleep } from '../test-utils.js';
