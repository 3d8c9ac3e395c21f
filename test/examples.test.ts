// Every guide example (examples/guide-*.ts) is executed here, in its own process, exactly as a
// reader would run it: an example that stops compiling, throws, exits non-zero or prints
// nothing fails the suite, so the guides in docs/guide/ cannot drift from the code.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const examples = readdirSync(new URL('../examples/', import.meta.url))
  .filter((name) => /^guide-.*\.ts$/.test(name))
  .sort();

// Examples are meant to run in well under 5 s; the limit is generous for a loaded CI machine
// (most of it is tsx starting up), and only there to turn a hang into a failure.
const LIMIT_MS = 60_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(file: string): Promise<Run> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('examples', () => {
  it('there are guide examples to run', () => {
    assert.ok(examples.length > 0, 'no examples/guide-*.ts found');
  });

  for (const name of examples) {
    it(`examples/${name} runs, exits 0 and prints its results`, async () => {
      const result = await run(`examples/${name}`);
      const output = `\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
      assert.equal(result.signal, null, `killed after ${result.ms} ms (hung?)${output}`);
      assert.equal(result.code, 0, `exit code ${String(result.code)}${output}`);
      assert.ok(result.stdout.trim().length > 0, `printed nothing${output}`);
    });
  }
});
