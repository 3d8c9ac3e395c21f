// What `npm pack` puts in each package of the workspace, and that the packed tarballs work on
// their own: a project that installs them (and nothing from this repository) runs the
// `eventsinks` command. Needs a build first (`npm test` builds before it tests).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Packed {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

async function pack(workspace: string, destination?: string): Promise<Packed> {
  const args = ['pack', '--json', '--workspace', workspace, '--ignore-scripts'];
  if (destination === undefined) args.push('--dry-run');
  else args.push('--pack-destination', destination);
  const { stdout } = await run(NPM, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  const [result] = JSON.parse(stdout) as Packed[];
  return result!;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as T;
}

const isTest = (path: string): boolean => /(\.test\.|test-utils|(^|\/)test\/)/.test(path);

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('eventsinks holds dist/, package.json, README.md and LICENSE: no tests, no relay', async () => {
    const packed = await pack('packages/eventsinks');
    assert.equal(packed.name, 'eventsinks');
    const files = packed.files.map((f) => f.path).sort();
    const extra = files.filter(
      (f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE'].includes(f),
    );
    assert.deepEqual(extra, [], 'only dist/, package.json, README.md and LICENSE');
    for (const f of ['package.json', 'README.md', 'LICENSE']) assert.ok(files.includes(f), f);
    assert.deepEqual(files.filter(isTest), [], 'no test files');
    assert.deepEqual(
      files.filter((f) => /relay|cli\./.test(f)),
      [],
      'nothing of the relay',
    );
    assert.deepEqual(
      files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
      [],
      'no TypeScript sources',
    );
    // Every target of the exports map is in the tarball.
    const pkg = readJson<{ exports: Record<string, string | Record<string, string>> }>(
      'packages/eventsinks/package.json',
    );
    for (const target of Object.values(pkg.exports).flatMap((t) =>
      typeof t === 'string' ? [t] : Object.values(t),
    )) {
      assert.ok(files.includes(target.replace(/^\.\//, '')), `${target} is packed`);
    }
  });

  it('eventsinks-relay holds dist/, relay.schema.json, openapi.json, package.json, README.md and LICENSE', async () => {
    const packed = await pack('packages/relay');
    assert.equal(packed.name, 'eventsinks-relay');
    const files = packed.files.map((f) => f.path).sort();
    const top = ['package.json', 'README.md', 'LICENSE', 'relay.schema.json', 'openapi.json'];
    const extra = files.filter((f) => !f.startsWith('dist/') && !top.includes(f));
    assert.deepEqual(extra, [], 'only dist/ and the five top-level files');
    for (const f of top) assert.ok(files.includes(f), f);
    assert.deepEqual(files.filter(isTest), [], 'no test files');
    assert.deepEqual(
      files.filter((f) => f.endsWith('.ts')),
      [],
      'no TypeScript sources or declarations',
    );
    const pkg = readJson<{ bin: Record<string, string> }>('packages/relay/package.json');
    assert.equal(pkg.bin.eventsinks, './dist/cli.js');
    assert.ok(files.includes('dist/cli.js'), 'the bin is packed');
  });

  it('each package ships the repository LICENSE unchanged', () => {
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    for (const dir of ['packages/eventsinks', 'packages/relay']) {
      assert.equal(readFileSync(join(ROOT, dir, 'LICENSE'), 'utf8'), license, dir);
    }
  });
});

describe('the packed tarballs, installed into a new project', () => {
  it('npx eventsinks --version, validate and relay work with nothing from this repository', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-pack-'));
    dirs.push(dir);
    const library = await pack('packages/eventsinks', dir);
    const relay = await pack('packages/relay', dir);
    const project = join(dir, 'project');
    cpSync(join(ROOT, 'test', 'fixtures', 'pack-project'), project, { recursive: true });
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'pack-test', private: true, type: 'module' }),
    );
    // One install of both tarballs. The registry dependencies come from npm's cache, which the
    // workspace's own install filled (--prefer-offline asks the registry only for what is not
    // there). Install scripts are skipped: better-sqlite3 would compile SQLite for minutes;
    // its native binding is copied from the workspace's install below instead.
    const started = Date.now();
    await run(
      NPM,
      [
        'install',
        '--prefer-offline',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        join(dir, library.filename),
        join(dir, relay.filename),
      ],
      { cwd: project, maxBuffer: 64 * 1024 * 1024 },
    );
    const installMs = Date.now() - started;
    console.log(`# install of both tarballs: ${installMs} ms`);
    const modules = join(project, 'node_modules');
    // Real dependencies: the relay's libraries came with it.
    for (const dep of ['yaml', 'zod', 'prom-client', 'pino', 'pino-pretty', 'better-sqlite3']) {
      assert.ok(existsSync(join(modules, dep, 'package.json')), `${dep} is installed`);
    }
    // The library is the packed one, not a link into the workspace.
    assert.ok(existsSync(join(modules, 'eventsinks', 'dist', 'index.js')));
    assert.ok(!existsSync(join(modules, 'eventsinks', 'src')), 'the packed library has no src/');
    cpSync(
      join(ROOT, 'node_modules', 'better-sqlite3', 'build'),
      join(modules, 'better-sqlite3', 'build'),
      { recursive: true },
    );

    const version = await run(NPM, ['exec', '--offline', '--no', '--', 'eventsinks', '--version'], {
      cwd: project,
    });
    assert.equal(version.stdout, `${relay.version}\n`);

    const validate = await run(
      NPM,
      ['exec', '--offline', '--no', '--', 'eventsinks', 'validate', '--config', 'relay.yaml'],
      { cwd: project },
    );
    assert.match(validate.stdout + validate.stderr, /ok|valid/i);

    // `eventsinks relay` starts, answers /healthz and stops on SIGTERM. The bin itself is run
    // (npm exec would sit between the test and the relay's signals).
    const child = spawn(
      process.execPath,
      [join(modules, '.bin', 'eventsinks'), 'relay', '--config', 'relay.yaml'],
      { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const relayFile = join(project, 'data', 'relay.json');
      const deadline = Date.now() + 30_000;
      while (!existsSync(relayFile) && child.exitCode === null) {
        assert.ok(Date.now() < deadline, `the relay did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(existsSync(relayFile), `the relay exited:\n${output}`);
      const { url } = JSON.parse(readFileSync(relayFile, 'utf8')) as { url: string };
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
