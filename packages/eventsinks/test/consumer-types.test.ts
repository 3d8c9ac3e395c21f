// The shipped declarations must compile in the projects people actually have, with
// `skipLibCheck: false`: a browser project (lib ES2022 + DOM, no Node types), newer libs, and
// `bundler` and `nodenext` resolution. Each case writes a tiny consumer project into a temp dir,
// installs the built package there (package.json plus dist/**/*.d.ts, copied, so that nothing in
// this repository's node_modules, @types/node in particular, is reachable from it) and runs this
// repository's tsc on it. Runs against dist/, so `npm run build` first (`npm test` does).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The library's package folder; its dependencies are hoisted to the workspace root.
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(repo, '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

// Entry points with no Node dependency: a browser or edge bundle may import these.
const portable = `
import { Broadcaster, Queue, RetryingSink, ExponentialBackoff, isSinkClosedError } from 'eventsinks';
import type { Sink, CloseOptions } from 'eventsinks';
import { HttpSink, verifyWebhook } from 'eventsinks/http';

const log: Sink<string> = { write(event) { console.log(event); }, close() {} };

export async function main(signal: AbortSignal): Promise<void> {
  // \`await using\` is what Symbol.asyncDispose is for; it must type-check on lib ES2022.
  await using queue = new Queue(new RetryingSink(log, new ExponentialBackoff()));
  await using hook = new HttpSink<string>('https://example.invalid/hook');
  const all = new Broadcaster<string>([queue, hook]);
  await all.write('hello');
  const options: CloseOptions = { signal };
  await all.close(options);
  const dispose: () => PromiseLike<void> = () => queue[Symbol.asyncDispose]();
  await dispose();
}
export { isSinkClosedError, verifyWebhook };
`;

// Every entry point, for a Node project (with @types/node and the peers installed).
const everything = `${portable}
import { DurableQueue } from 'eventsinks/sqlite';
import { RedisStreamSink } from 'eventsinks/redis';
import { JetStreamSink } from 'eventsinks/nats';
import { AmqpSink } from 'eventsinks/amqp';
export type Adapters = [DurableQueue<string>, RedisStreamSink<string>, JetStreamSink<string>, AmqpSink<string>];
`;

// The Web Streams interop against the global stream types (a DOM lib, Deno, Bun).
const domStreams = `
import { pipeFrom, toWritableStream } from 'eventsinks';
export async function globalStreams(readable: ReadableStream<string>, sink: Sink<string>): Promise<void> {
  const writable: WritableStream<string> = toWritableStream(sink, { highWaterMark: 4 });
  await readable.pipeTo(writable);
  await pipeFrom(readable, sink, { preventClose: true });
}
`;

// The same against Node's own stream types, with no DOM lib.
const nodeStreams = `
import { pipeFrom as nodePipeFrom, toWritableStream as nodeToWritable } from 'eventsinks';
import { ReadableStream as NodeReadable, type WritableStream as NodeWritable } from 'node:stream/web';
export async function nodeStreams(sink: Sink<string>): Promise<void> {
  const readable = new NodeReadable<string>();
  const writable: NodeWritable<string> = nodeToWritable(sink);
  await readable.pipeTo(writable);
  await nodePipeFrom(readable, sink);
}
`;

// The optional peers (and @types) a Node project using every adapter would have installed.
const peers = [
  '@types/node',
  '@types/better-sqlite3',
  '@types/amqplib',
  'better-sqlite3',
  'redis',
  '@nats-io/transport-node',
  '@nats-io/jetstream',
  'amqplib',
];

interface Consumer {
  name: string;
  compilerOptions: Record<string, unknown>;
  source: string;
  /** Link these from this repository's node_modules into the consumer's. */
  links?: string[];
  /**
   * Count only errors in eventsinks' declarations and the consumer's own file: with
   * `skipLibCheck: false` the peers' declarations are checked too, and some do not compile in
   * every configuration (the pinned @types/node 20.9 predates TS 5.7's generic `Uint8Array`;
   * @nats-io/nats-core needs DOM's `WebSocket`). Those are theirs to fix, not ours.
   */
  ownErrorsOnly?: boolean;
  /** A known gap: reported by the test runner, not failing the run. */
  todo?: string;
}

const browser = { target: 'ES2022', module: 'esnext', moduleResolution: 'bundler', types: [] };
const node = { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext' };

const consumers: Consumer[] = [
  {
    name: 'browser: lib ES2022 + DOM, bundler, no Node types',
    compilerOptions: { ...browser, lib: ['ES2022', 'DOM'] },
    source: portable + domStreams,
  },
  {
    name: 'browser: lib ES2023 + DOM, bundler, no Node types',
    compilerOptions: { ...browser, target: 'ES2023', lib: ['ES2023', 'DOM', 'DOM.Iterable'] },
    source: portable + domStreams,
  },
  {
    name: 'browser: lib ESNext + DOM, bundler (the lib already has disposables)',
    compilerOptions: { ...browser, target: 'ESNext', lib: ['ESNext', 'DOM'] },
    source: portable + domStreams,
  },
  {
    name: 'nodenext ESM: lib ES2022 + DOM, no Node types',
    compilerOptions: { ...node, lib: ['ES2022', 'DOM'], types: [] },
    source: portable + domStreams,
  },
  {
    name: 'nodenext ESM: lib ES2023 + DOM + @types/node, every entry point',
    compilerOptions: { ...node, target: 'ES2023', lib: ['ES2023', 'DOM'], types: ['node'] },
    source: everything + domStreams + nodeStreams,
    links: peers,
    ownErrorsOnly: true,
  },
  {
    name: 'nodenext ESM: lib ES2022 + @types/node, no DOM, every entry point',
    compilerOptions: { ...node, lib: ['ES2022'], types: ['node'] },
    source: everything + nodeStreams,
    links: peers,
    ownErrorsOnly: true,
  },
];

describe('consumer types (skipLibCheck: false)', () => {
  let work = '';

  before(() => {
    assert.ok(
      existsSync(join(repo, 'dist', 'index.d.ts')),
      'dist/index.d.ts is missing: run `npm run build` first',
    );
    work = mkdtempSync(join(tmpdir(), 'eventsinks-consumer-'));
  });
  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  let n = 0;
  for (const consumer of consumers) {
    const options = consumer.todo === undefined ? {} : { todo: consumer.todo };
    it(`compiles with zero errors: ${consumer.name}`, options, () => {
      const dir = join(work, String(n++));
      const pkg = join(dir, 'node_modules', 'eventsinks');
      mkdirSync(pkg, { recursive: true });
      cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
      cpSync(join(repo, 'dist'), join(pkg, 'dist'), {
        recursive: true,
        filter: (src) => !src.endsWith('.js') && !src.endsWith('.map'),
      });
      for (const name of consumer.links ?? []) {
        const to = join(dir, 'node_modules', name);
        mkdirSync(dirname(to), { recursive: true });
        symlinkSync(join(root, 'node_modules', name), to, 'dir');
      }
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
      );
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            ...consumer.compilerOptions,
            strict: true,
            noEmit: true,
            skipLibCheck: false,
          },
          files: ['index.ts'],
        }),
      );
      writeFileSync(join(dir, 'index.ts'), consumer.source);

      const run = spawnSync(process.execPath, [tsc, '-p', '.', '--pretty', 'false'], {
        cwd: dir,
        encoding: 'utf8',
      });
      const output = `${run.stdout}${run.stderr}`.trim();
      if (consumer.ownErrorsOnly === true) {
        // tsc prints paths relative to cwd; peers are symlinks, printed by their real path.
        const ours = output
          .split('\n')
          .filter((line) => /^(node_modules\/eventsinks\/|index\.ts\()/.test(line));
        assert.ok(run.status === 0 || output !== '', 'tsc failed without a diagnostic');
        assert.deepEqual(ours, [], `tsc reported errors in eventsinks' declarations:\n${output}`);
      } else {
        assert.equal(run.status, 0, `tsc reported errors:\n${output}`);
        assert.equal(output, '');
      }
    });
  }
});
