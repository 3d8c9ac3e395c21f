// The `eventsinks` command as a user meets it, each run as a child process: usage errors and
// runtime failures are one line and a distinct exit code (never a stack trace unless asked),
// `dlq` reads only what it uses and finds the relay, `validate` finds what start would trip on,
// and the small things (stdin EOF, npm start and signals, schema bytes, LICENSE, example paths).
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../src/config.js';
import {
  FAST_RETRY,
  PACKAGE,
  ROOT,
  Receiver,
  closeAll,
  freePort,
  post,
  runCli,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';

after(closeAll);

const STACK = /\n\s+at .+:\d+:\d+/;
const ROOT_PATH = new URL('.', ROOT).pathname;

function assertOneLineFailure(result: { code: number | null; stderr: string }, code: number): void {
  assert.equal(result.code, code, result.stderr);
  assert.doesNotMatch(result.stderr, STACK, `no stack trace:\n${result.stderr}`);
}

describe('eventsinks: usage errors exit 64 with one line and the usage', () => {
  const dir = tempDir();
  writeConfig(
    dir,
    `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\ndestinations: [{ name: x, type: stdout }]\n`,
  );
  const cases: [string, string[], RegExp][] = [
    ['--limit abc', ['dlq', 'list', 'x', '--limit', 'abc'], /--limit: .*"abc"/],
    ['--limit 0', ['dlq', 'list', 'x', '--limit', '0'], /--limit: .*"0"/],
    ['--since yesterday', ['dlq', 'replay', 'x', '--since', 'yesterday'], /--since: .*"yesterday"/],
    ['an unknown flag', ['dlq', 'list', 'x', '--colour'], /--colour/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['a missing destination', ['dlq', 'list'], /missing <destination>/],
    ['a bad --log-level', ['relay', '--log-level', 'loud'], /--log-level: .*"loud"/],
  ];
  for (const [name, args, expected] of cases) {
    it(name, async () => {
      const result = await runCli(args, { cwd: dir });
      assertOneLineFailure(result, 64);
      const [first] = result.stderr.split('\n');
      assert.match(first!, expected);
      assert.match(result.stderr, /Usage:/);
    });
  }
});

describe('eventsinks: help and version', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE), 'utf8')) as {
      version: string;
    };
    const result = await runCli(['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `${pkg.version}\n`);
  });

  it('help lists every command; each subcommand --help lists its own options', async () => {
    const help = await runCli(['help']);
    assert.equal(help.code, 0);
    for (const command of ['relay', 'validate', 'dlq list', 'dlq replay', 'schema']) {
      assert.match(help.stdout, new RegExp(`eventsinks ${command}`));
    }
    const list = await runCli(['dlq', 'list', '--help']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /--limit/);
    assert.match(list.stdout, /--json/);
    assert.doesNotMatch(list.stdout, /--since/);
    const replay = await runCli(['dlq', 'replay', '--help']);
    assert.match(replay.stdout, /--since/);
    const relay = await runCli(['relay', '--help']);
    assert.equal(relay.code, 0);
    assert.match(relay.stdout, /--log-level/);
    assert.match(relay.stdout, /--config/);
    assert.equal((await runCli(['help', 'validate'])).code, 0);
  });
});

describe('eventsinks relay: runtime failures are one line and a distinct exit code', () => {
  it('an address in use exits 69 naming it; the stack only at --log-level debug', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const dir = tempDir();
      writeConfig(dir, `server: { listen: 127.0.0.1:${port} }\ndataDir: ./data\n`);
      const result = await runCli(['relay', '--config', 'relay.yaml'], { cwd: dir });
      assertOneLineFailure(result, 69);
      assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*already in use`));
      assert.match(result.stderr, /server\.listen/);
      const debug = await runCli(['relay', '--config', 'relay.yaml', '--log-level', 'debug'], {
        cwd: dir,
      });
      assert.equal(debug.code, 69);
      assert.match(debug.stderr, STACK);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('a second relay on the same dataDir exits 69: the files are in use', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, 'server: { listen: 127.0.0.1:0 }\ndataDir: ./data\n');
    const first = await startRelay(file, { cwd: dir });
    const second = await runCli(['relay', '--config', 'relay.yaml'], { cwd: dir });
    assertOneLineFailure(second, 69);
    assert.match(second.stderr, /in use by another relay/);
    first.child.kill('SIGTERM');
    assert.equal((await first.exited).code, 0);
  });

  it('listen: localhost:99999 fails validate (78), so it never fails at start', async () => {
    const dir = tempDir();
    writeConfig(dir, 'server: { listen: "localhost:99999" }\n');
    for (const command of ['validate', 'relay']) {
      const result = await runCli([command, '--config', 'relay.yaml'], { cwd: dir });
      assertOneLineFailure(result, 78);
      assert.match(result.stderr, /:1:\d+ server\.listen: port out of range .*1 to 65535/);
    }
  });
});

describe('eventsinks dlq: needs only what it uses', () => {
  it('dlq list billing with examples/relay.yaml needs no secret', async () => {
    // A copy on a free port, so that no other relay on this machine answers for it.
    const dir = tempDir();
    const example = readFileSync(new URL('examples/relay.yaml', ROOT), 'utf8');
    writeConfig(dir, example.replace('127.0.0.1:8080', `127.0.0.1:${await freePort()}`));
    // The token is used (to call a running relay's admin endpoint); the secrets are not. The
    // secrets are not set in the test's environment.
    assert.equal(process.env.BILLING_SECRET, undefined);
    const env = { RELAY_TOKEN: 't' };
    const result = await runCli(['dlq', 'list', 'billing', '--config', 'relay.yaml'], {
      cwd: dir,
      env,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /billing: no dead letters/);
    // validate still checks everything.
    const validate = await runCli(['validate', '--config', 'relay.yaml'], { cwd: dir, env });
    assert.equal(validate.code, 78);
    assert.match(validate.stderr, /BILLING_SECRET/);
  });

  it('dlq list before the relay ever ran says there are none and creates nothing', async () => {
    const dir = tempDir();
    writeConfig(
      dir,
      `server: { listen: 127.0.0.1:${await freePort()} }\ndataDir: ./data\ndestinations: [{ name: never, type: stdout }]\n`,
    );
    const result = await runCli(['dlq', 'list', 'never', '--config', 'relay.yaml'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /never: no dead letters/);
    const json = await runCli(['dlq', 'list', 'never', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout, '');
    const replay = await runCli(['dlq', 'replay', 'never', '--since', '1d'], { cwd: dir });
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(existsSync(join(dir, 'data')), false);
  });

  it('every command finds the configuration the same way: --config, EVENTSINKS_CONFIG, ./relay.yaml', async () => {
    const dir = tempDir();
    const yaml = `server: { listen: 127.0.0.1:${await freePort()} }\ndataDir: ./data\ndestinations: [{ name: found, type: stdout }]\n`;
    writeConfig(dir, yaml);
    // ./relay.yaml, with no flag.
    const byDefault = await runCli(['dlq', 'list', 'found'], { cwd: dir });
    assert.equal(byDefault.code, 0, byDefault.stderr);
    assert.match((await runCli(['validate'], { cwd: dir })).stdout, /relay\.yaml: ok/);
    // $EVENTSINKS_CONFIG, from anywhere.
    const elsewhere = tempDir();
    const env = { EVENTSINKS_CONFIG: join(dir, 'relay.yaml') };
    const byEnv = await runCli(['dlq', 'list', 'found'], { cwd: elsewhere, env });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.match((await runCli(['validate'], { cwd: elsewhere, env })).stdout, /ok/);
    // Without any, the embedded defaults (whose only destination is "stdout").
    const none = await runCli(['dlq', 'list', 'found'], { cwd: elsewhere });
    assert.equal(none.code, 64);
    assert.match(none.stderr, /no destination named "found" in the embedded defaults/);
  });

  it('dlq finds a relay on port 0 (relay.json), prints ISO times, --json for scripts', async () => {
    const receiver = await new Receiver().start();
    receiver.status = 400;
    const dir = tempDir();
    const file = writeConfig(
      dir,
      // Concurrency 1: the dead letters are listed by when they died, and with the default 16
      // the second event's attempt may end first.
      `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\ndestinations:\n  - name: hooks\n    type: webhook\n    url: ${receiver.url}\n    concurrency: 1${FAST_RETRY}\n`,
    );
    const relay = await startRelay(file, { cwd: dir });
    const info = JSON.parse(readFileSync(join(dir, 'data', 'relay.json'), 'utf8')) as {
      pid: number;
      url: string;
    };
    assert.equal(info.pid, relay.child.pid);
    assert.equal(info.url, relay.url);
    for (let seq = 0; seq < 2; seq++) await post(relay.url, JSON.stringify({ seq }));
    await waitFor(() => receiver.requests >= 2, 15_000, 'two refused deliveries');
    let json = '';
    await waitFor(
      async () => {
        const listed = await runCli(['dlq', 'list', 'hooks', '--json'], { cwd: dir });
        assert.equal(listed.code, 0, listed.stderr);
        json = listed.stdout;
        return json.trim().split('\n').length === 2;
      },
      15_000,
      'two dead letters listed through the running relay',
    );
    const entries = json
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { deadAt: number; envelope: { event: { seq: number } } });
    assert.deepEqual(
      entries.map((e) => e.envelope.event.seq),
      [0, 1],
    );
    const human = await runCli(['dlq', 'list', 'hooks'], { cwd: dir });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /hooks: 2 dead letters/);
    assert.ok(human.stdout.includes(new Date(entries[0]!.deadAt).toISOString()), human.stdout);
    const replay = await runCli(['dlq', 'replay', 'hooks', '--json'], { cwd: dir });
    assert.equal(replay.code, 0, replay.stderr);
    assert.deepEqual(JSON.parse(replay.stdout), { replayed: 2, relay: 'running' });
    relay.child.kill('SIGTERM');
    assert.equal((await relay.exited).code, 0, relay.stderr());
    assert.equal(existsSync(join(dir, 'data', 'relay.json')), false, 'relay.json removed');
    await receiver.close();
  });
});

describe('eventsinks validate finds what start would trip on', () => {
  async function validate(
    yaml: string,
  ): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const dir = tempDir();
    writeConfig(dir, yaml);
    return runCli(['validate', '--config', 'relay.yaml'], { cwd: dir });
  }

  it('a YAML syntax error has its line and column', async () => {
    const result = await validate(
      'server:\n  listen: 127.0.0.1:8080\ndestinations: [\n  {name: a\nx: 1\n',
    );
    assertOneLineFailure(result, 78);
    assert.match(result.stderr, /relay\.yaml:\d+:\d+ .*YAML/);
  });

  it('backoff.base above backoff.max', async () => {
    const result = await validate(
      'destinations:\n  - name: a\n    type: stdout\n    retry: { backoff: { base: 1m, max: 30s } }\n',
    );
    assert.equal(result.code, 78);
    assert.match(result.stderr, /:4:\d+ destinations\[0\]\.retry\.backoff\.base: .*above max/);
  });

  it('an empty file says what it means', async () => {
    const result = await validate('# nothing here yet\n');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /empty.*embedded defaults apply/);
  });

  it('problems are sorted by line', async () => {
    const result = await validate(
      'drainTimeout: 20\ndataDir: ./data\nsources: [{ type: http, token: "${NO_SUCH_VAR_EVER}" }]\n',
    );
    assert.equal(result.code, 78);
    const lines = result.stderr
      .split('\n')
      .map((l) => /^relay\.yaml:(\d+):/.exec(l)?.[1])
      .filter((n) => n !== undefined)
      .map(Number);
    assert.deepEqual(lines, [1, 3]);
  });

  it('one duration grammar: 1d in the file as in --since', async () => {
    const result = await validate(
      'drainTimeout: 1d\ndestinations: [{ name: a, type: stdout, retry: { backoff: { max: 1d } } }]\n',
    );
    assert.equal(result.code, 0, result.stderr);
  });

  it('a bad size is explained in words, not as a regular expression', async () => {
    const result = await validate('sources: [{ type: http, maxBodySize: "1 megabyte" }]\n');
    assert.equal(result.code, 78);
    assert.match(result.stderr, /maxBodySize: expected a size .*MiB.*"1 megabyte"/);
    assert.doesNotMatch(result.stderr, /pattern|\\d|\^/);
  });
});

describe('small ones', () => {
  it('its signal handlers are in place when it says it listens (a SIGHUP right then reloads)', async () => {
    // A supervisor may send SIGHUP or SIGTERM the moment it reads `listening on`; without a
    // handler yet, the default action would end the relay. The probe counts the handlers at
    // the very write that announces it.
    const dir = tempDir();
    const probe = join(dir, 'probe.mjs');
    writeFileSync(
      probe,
      `const write = process.stderr.write.bind(process.stderr);
process.stderr.write = (chunk, ...rest) => {
  if (String(chunk).includes('listening on')) {
    const n = (s) => process.listenerCount(s);
    write('handlers at the announcement: SIGHUP ' + n('SIGHUP') + ', SIGTERM ' + n('SIGTERM') + ', SIGINT ' + n('SIGINT') + '\\n');
  }
  return write(chunk, ...rest);
};
`,
    );
    const file = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\ndestinations: [{ name: out, type: stdout }]\n`,
    );
    const relay = await startRelay(file, {
      cwd: dir,
      nodeArgs: ['--import', pathToFileURL(probe).href],
    });
    assert.match(
      relay.stderr(),
      /handlers at the announcement: SIGHUP [1-9]\d*, SIGTERM [1-9]\d*, SIGINT [1-9]\d*/,
    );
    relay.child.kill('SIGHUP');
    await waitFor(
      () => /configuration reloaded/.test(relay.stderr()),
      20_000,
      'the reload the SIGHUP asked for',
    );
    relay.child.kill('SIGTERM');
    assert.equal((await relay.exited).code, 0, relay.stderr());
  });

  it('a relay whose only source is stdin drains and exits 0 at EOF', async () => {
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\nsources: [{ type: stdin }]\ndestinations: [{ name: out, type: file, path: ./out.ndjson }]\n`,
    );
    const relay = await startRelay(file, { cwd: dir, stdin: true });
    relay.child.stdin!.end('{"n":1}\n{"n":2}\n{"n":3}\n');
    const timer = setTimeout(() => relay.child.kill('SIGKILL'), 20_000);
    const { code } = await relay.exited;
    clearTimeout(timer);
    assert.equal(code, 0, relay.stderr());
    assert.deepEqual(readFileSync(join(dir, 'out.ndjson'), 'utf8').trim().split('\n'), [
      '{"n":1}',
      '{"n":2}',
      '{"n":3}',
    ]);
  });

  it('SIGTERM to `npm start` stops the relay too (no orphan left listening)', async () => {
    // A package whose start script is the root's real one; its build is a no-op and its
    // packages/relay/dist/cli.js loads the sources (through tsx), so nothing is built here.
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const dir = tempDir();
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({
        name: 'start-test',
        private: true,
        type: 'module',
        scripts: { build: 'true', start: pkg.scripts.start },
      }),
    );
    mkdirSync(join(dir, 'packages', 'relay', 'dist'), { recursive: true });
    writeFileSync(
      join(dir, 'packages', 'relay', 'dist', 'cli.js'),
      `await import(${JSON.stringify(new URL('src/cli.ts', PACKAGE).href)});\n`,
    );
    writeConfig(dir, 'server: { listen: 127.0.0.1:0 }\ndataDir: ./data\n');
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: dir,
      env: { ...process.env, NODE_OPTIONS: `--import ${import.meta.resolve('tsx')}` },
      stdio: 'ignore',
    });
    const npmExited = new Promise<void>((resolve) => npm.on('exit', () => resolve()));
    const relayFile = join(dir, 'data', 'relay.json');
    let info: { pid: number; url: string } | undefined;
    try {
      await waitFor(() => existsSync(relayFile), 60_000, 'the relay to start under npm');
      info = JSON.parse(readFileSync(relayFile, 'utf8')) as { pid: number; url: string };
      assert.equal((await fetch(`${info.url}/healthz`)).status, 200);
      npm.kill('SIGTERM');
      await npmExited;
      const pid = info.pid;
      await waitFor(
        () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch {
            return true;
          }
        },
        20_000,
        'the relay to exit after npm was stopped',
      );
      await assert.rejects(fetch(`${info.url}/healthz`));
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
      if (info) {
        try {
          process.kill(info.pid, 'SIGKILL');
        } catch {
          // Gone, as it should be.
        }
      }
    }
  });

  it('SIGTERM to `npx eventsinks relay` stops the relay too', async () => {
    // npx runs the bin through `sh -c`, which does not pass npm's SIGTERM on.
    const dir = tempDir();
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'npx-test', private: true }));
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    const bin = join(dir, 'node_modules', '.bin', 'eventsinks');
    writeFileSync(
      bin,
      `#!/usr/bin/env node\nimport(${JSON.stringify(new URL('src/cli.ts', PACKAGE).href)});\n`,
      { mode: 0o755 },
    );
    writeConfig(dir, 'server: { listen: 127.0.0.1:0 }\ndataDir: ./data\n');
    const npx = spawn('npx', ['--offline', '--no-install', 'eventsinks', 'relay'], {
      cwd: dir,
      env: { ...process.env, NODE_OPTIONS: `--import ${import.meta.resolve('tsx')}` },
      stdio: 'ignore',
    });
    const npxExited = new Promise<void>((resolve) => npx.on('exit', () => resolve()));
    const relayFile = join(dir, 'data', 'relay.json');
    let info: { pid: number; url: string } | undefined;
    try {
      await waitFor(() => existsSync(relayFile), 60_000, 'the relay to start under npx');
      info = JSON.parse(readFileSync(relayFile, 'utf8')) as { pid: number; url: string };
      npx.kill('SIGTERM');
      await npxExited;
      const pid = info.pid;
      await waitFor(
        () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch {
            return true;
          }
        },
        20_000,
        'the relay to exit after npx was stopped',
      );
    } finally {
      if (npx.exitCode === null) npx.kill('SIGKILL');
      if (info) {
        try {
          process.kill(info.pid, 'SIGKILL');
        } catch {
          // Gone, as it should be.
        }
      }
    }
  });

  it('`eventsinks schema` prints relay.schema.json byte for byte', async () => {
    const result = await runCli(['schema']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, readFileSync(new URL('relay.schema.json', PACKAGE), 'utf8'));
  });

  it('examples/relay.yaml writes nothing into the repository root', () => {
    const config = loadConfig(new URL('examples/relay.yaml', ROOT).pathname, {
      RELAY_TOKEN: 't',
      BILLING_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      AUDIT_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    });
    const paths = [
      join(config.dataDir, 'billing.queue.db'),
      ...config.destinations.flatMap((d) => (d.type === 'file' ? [d.path] : [])),
    ];
    assert.equal(paths.length, 2);
    for (const path of paths) {
      assert.notEqual(join(path, '..'), ROOT_PATH.replace(/\/$/, ''), `${path} is in the root`);
      // git check-ignore exits 0 for an ignored path.
      execFileSync('git', ['check-ignore', '-q', path], { cwd: ROOT_PATH });
    }
    assert.ok(readdirSync(ROOT_PATH).length > 0);
  });

  it('LICENSE is the Apache License 2.0 that package.json names', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE), 'utf8')) as {
      license: string;
    };
    assert.equal(pkg.license, 'Apache-2.0');
    const text = readFileSync(new URL('LICENSE', PACKAGE), 'utf8');
    // The package ships a copy of the repository's LICENSE: the two never differ.
    assert.equal(text, readFileSync(new URL('LICENSE', ROOT), 'utf8'));
    assert.match(text, /^\s*Apache License\s+Version 2\.0, January 2004/);
    assert.match(text, /END OF TERMS AND CONDITIONS/);
    assert.match(text, /APPENDIX: How to apply the Apache License to your work/);
  });
});
