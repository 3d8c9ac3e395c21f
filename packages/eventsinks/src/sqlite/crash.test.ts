// The crash test of issue 6: a child process writes numbered events to a DurableQueue and
// prints each id once its write has resolved; we SIGKILL it at a random moment and start it
// again on the same file, many times. Then every acknowledged id must have been delivered, in
// increasing order within each run, and an id delivered twice must have been in flight (delivered
// but not yet removed from the file) when its run was killed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const RUNS = process.env.EVENTSINKS_LONG === '1' ? 100 : 20;
// Each run writes ids from its own range, so an id names the run that wrote it.
const SPAN = 10_000_000;

// Acks ('A id') are logged after the write resolved; deliveries ('D id') inside dst.write,
// before the queue may remove the event. The log is a file written with writeSync: once the
// call returns the line is in the kernel and survives SIGKILL (stdout to a pipe may be buffered
// in the process when the reader lags, and a buffered 'D' line lost at the kill would look
// like a lost event). The destination is sometimes asynchronous so that
// deliveries lag behind writes and a backlog is on disk when the kill comes. Every other run
// the destination is slow (timers), so a backlog builds up; in the others it is fast, so the
// run replays that backlog and then delivers its own events from memory. Half the runs allow
// 8 deliveries outstanding (maxInFlight), settling out of order.
const program = `
import { openSync, writeSync } from 'node:fs';
import { DurableQueue } from './src/sqlite/index.ts';
const { CRASH_PATH: path, CRASH_LOG, CRASH_START, CRASH_MODE, CRASH_SLOW, CRASH_INFLIGHT } = process.env;
const SLOW = CRASH_SLOW === '1';
const log = openSync(CRASH_LOG, 'a');
const out = (line) => writeSync(log, line + '\\n');
const dst = {
  write(event) {
    out('D ' + event.id);
    if (SLOW) {
      if (Math.random() < 0.3) return new Promise((resolve) => setTimeout(resolve, Math.random() < 0.9 ? 0 : 3));
    } else if (Math.random() < 0.1) {
      return new Promise((resolve) => setImmediate(resolve));
    }
  },
  close() {},
};
const queue = new DurableQueue(dst, { path, maxInFlight: Number(CRASH_INFLIGHT) });
process.stdout.write('R\\n');
if (CRASH_MODE === 'drain') {
  await queue.close();
  out('X');
} else {
  let next = Number(CRASH_START);
  const writer = async () => {
    for (;;) {
      const id = next++;
      await queue.write({ id, payload: 'x'.repeat(id % 200) });
      out('A ' + id);
      await new Promise((resolve) => (Math.random() < 0.5 ? setImmediate : setTimeout)(resolve));
    }
  };
  for (let i = 0; i < 8; i++) void writer();
}
`;

interface Run {
  acked: number[];
  delivered: number[];
  exit: { code: number | null; signal: NodeJS.Signals | null };
  stderr: string;
}

let logs = 0;

function runChild(
  path: string,
  start: number,
  mode: 'write' | 'drain',
  slow = false,
  maxInFlight = 1,
): Promise<Run> {
  const logPath = `${path}.${++logs}.log`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
    cwd: new URL('../..', import.meta.url),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CRASH_PATH: path,
      CRASH_LOG: logPath,
      CRASH_START: String(start),
      CRASH_MODE: mode,
      CRASH_SLOW: slow ? '1' : '0',
      CRASH_INFLIGHT: String(maxInFlight),
    },
  });
  const run: Run = { acked: [], delivered: [], exit: { code: null, signal: null }, stderr: '' };
  let killer: ReturnType<typeof setTimeout> | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    // Ready: the file is open and leftovers are being delivered. Kill at a random moment.
    if (mode === 'write' && killer === undefined && chunk.toString().includes('R')) {
      killer = setTimeout(() => child.kill('SIGKILL'), 20 + Math.random() * 400);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (run.stderr += chunk.toString()));
  // A child that hangs (it never should) is killed too, and then fails the checks below.
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      clearTimeout(watchdog);
      run.exit = { code, signal };
      let text = '';
      try {
        text = readFileSync(logPath, 'utf8');
      } catch {
        // No log: the child died before opening it; the checks below say so.
      }
      for (const line of text.split('\n')) {
        if (line.startsWith('A ')) run.acked.push(Number(line.slice(2)));
        else if (line.startsWith('D ')) run.delivered.push(Number(line.slice(2)));
      }
      resolve(run);
    });
  });
}

describe('DurableQueue crash test', () => {
  const root = mkdtempSync(join(tmpdir(), 'eventsinks-crash-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it(
    `SIGKILLed ${RUNS} times: every acknowledged event is delivered, in order`,
    {
      timeout: 1_800_000,
    },
    async () => {
      const path = join(root, 'crash.db');
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i++) {
        // Slow or fast destination, one delivery at a time or 8 outstanding: every combination.
        const run = await runChild(path, (i + 1) * SPAN, 'write', i % 2 === 0, i % 4 < 2 ? 1 : 8);
        assert.equal(run.exit.signal, 'SIGKILL', `run ${i} ended on its own: ${run.stderr}`);
        runs.push(run);
      }
      const drain = await runChild(path, 0, 'drain');
      assert.equal(drain.exit.code, 0, `the final drain failed: ${drain.stderr}`);
      runs.push(drain);

      const acked = new Set(runs.flatMap((run) => run.acked));
      const times = new Map<number, number>();
      for (const run of runs)
        for (const id of run.delivered) times.set(id, (times.get(id) ?? 0) + 1);

      runs.forEach((run, i) => {
        // In increasing order within each run: leftovers of earlier runs first, then its own.
        for (let j = 1; j < run.delivered.length; j++) {
          assert.ok(
            run.delivered[j]! > run.delivered[j - 1]!,
            `run ${i} delivered ${run.delivered[j]} after ${run.delivered[j - 1]}`,
          );
        }
        // Nothing is delivered that no run up to this one wrote.
        for (const id of run.delivered) assert.ok(Math.floor(id / SPAN) <= i + 1, `bogus id ${id}`);
        // An id delivered again later was in flight at the kill: delivered but not yet removed.
        // Removal is in order, so those ids are a suffix of what this run delivered.
        const later = new Set(runs.slice(i + 1).flatMap((r) => r.delivered));
        const again = run.delivered.map((id) => later.has(id));
        const first = again.indexOf(true);
        if (first !== -1) {
          assert.ok(
            again.slice(first).every(Boolean),
            `run ${i}: an id delivered again is not among the last ones in flight at its kill`,
          );
        }
      });

      const lost = [...acked].filter((id) => !times.has(id));
      const duplicates = [...times.values()].filter((n) => n > 1).length;
      const delivered = times.size;
      // Delivered by a later run than the one that wrote them: the backlog each kill left behind.
      const leftovers = runs.reduce(
        (n, run, r) => n + run.delivered.filter((id) => Math.floor(id / SPAN) !== r + 1).length,
        0,
      );
      const lostDetail = lost
        .slice(0, 10)
        .map((id) => `${id} (acked in run ${runs.findIndex((r) => r.acked.includes(id))})`)
        .join(', ');
      const message = `crash test: runs=${RUNS} acknowledged=${acked.size} delivered=${delivered} lost=${lost.length} duplicates=${duplicates} delivered-after-restart=${leftovers}`;
      console.log(message);
      assert.deepEqual(lost, [], `${message}; lost: ${lostDetail}`);
      assert.ok(acked.size > RUNS, `too few acknowledged writes to mean anything: ${message}`);
    },
  );
});
