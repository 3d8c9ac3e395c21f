// Every guide example (examples/guide-*.ts) is executed here, in its own process, exactly as a
// reader would run it: an example that stops compiling, throws, exits non-zero or prints
// nothing fails the suite. And every code block in docs/ that is marked
// `<!-- example: examples/<file>.ts -->` must appear verbatim in that file, so the snippets the
// guides show cannot drift from the code that runs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
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

/** Markdown files under docs/ (recursively), skipping the generated API reference. */
function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (path !== 'docs/api') out.push(...markdownFiles(path));
    } else if (entry.name.endsWith('.md')) out.push(path);
  }
  return out;
}

// A marker line, blank lines, then a fenced block; the block's body is captured.
// Prettier formats code blocks in Markdown (dedenting and re-wrapping them), so blocks are
// compared with whitespace and trailing commas removed: layout may differ, content may not.
const SNIPPET = /<!-- example: (\S+) -->\s*\n```[a-z]*\n([\s\S]*?)\n```/g;

const normalize = (code: string): string => code.replace(/\s+/g, '').replace(/,([)\]}])/g, '$1');

describe('guide snippets', () => {
  const pages = markdownFiles('docs');
  const snippets = pages.flatMap((page) =>
    [...readFileSync(join(root, page), 'utf8').matchAll(SNIPPET)].map((match, index) => ({
      page,
      index,
      file: match[1]!,
      body: match[2]!,
    })),
  );

  it('the guides mark their snippets', () => {
    assert.ok(snippets.length > 0, 'no <!-- example: … --> snippets found under docs/');
  });

  for (const { page, index, file, body } of snippets) {
    it(`${page} snippet ${index + 1} appears verbatim in ${file}`, () => {
      const source = readFileSync(join(root, file), 'utf8');
      assert.ok(
        normalize(source).includes(normalize(body)),
        `this block from ${page} is not in ${file} (update one or the other):\n${body}`,
      );
    });
  }
});
