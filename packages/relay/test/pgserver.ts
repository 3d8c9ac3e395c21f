// A private PostgreSQL server for the tests that stop and start one (issue 15): its own data
// directory under the system temp dir, its own port on 127.0.0.1 and its own socket directory,
// so the shared server on 5432 that every helper and CI test uses is never touched.
//
// initdb and postgres refuse to run as root ("cannot be run as root"), and CI (.ci/run) runs as
// root: then every command runs as the `postgres` OS user through `runuser -u postgres --`, and
// the temp dir is handed to that user first. As any other user the commands run directly.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness.js';

const run = promisify(execFile);

/** Where Debian's PostgreSQL 15 puts its server binaries; EVENTSINKS_PG_BIN overrides it. */
export const PG_BIN = process.env['EVENTSINKS_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/** Why a private server cannot run here, or undefined when it can. */
export function privateServerUnavailable(): string | undefined {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(PG_BIN, tool))) return `${join(PG_BIN, tool)} is missing`;
  }
  if (process.getuid?.() === 0 && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser'))
    return 'running as root and runuser is missing (initdb refuses root)';
  return undefined;
}

/** The uid/gid of the `postgres` OS user, read from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const fields = line?.split(':');
  if (fields === undefined || fields.length < 4)
    throw new Error('running as root, and there is no `postgres` user to run initdb as');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** A PostgreSQL server of its own, started by {@link startPrivateServer}. */
export class PrivateServer {
  readonly dir: string;
  readonly port: number;
  readonly #asRoot: boolean;

  constructor(dir: string, port: number, asRoot: boolean) {
    this.dir = dir;
    this.port = port;
    this.#asRoot = asRoot;
  }

  /** The connection string of its `postgres` database, as the `postgres` superuser. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** Runs one of PG_BIN's tools, as the `postgres` user when this process is root. */
  async tool(name: string, args: string[]): Promise<string> {
    const [file, argv] = this.#asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, name), ...args]]
      : [join(PG_BIN, name), args];
    try {
      const { stdout } = await run(file, argv, { timeout: 60_000 });
      return stdout;
    } catch (error) {
      const log = existsSync(join(this.dir, 'log'))
        ? readFileSync(join(this.dir, 'log'), 'utf8').slice(-2000)
        : '';
      throw new Error(`${name} ${args.join(' ')} failed: ${String(error)}\nserver log:\n${log}`, {
        cause: error,
      });
    }
  }

  /** Starts the server (again) on its port and waits until it accepts connections. */
  async start(): Promise<void> {
    await this.tool('pg_ctl', [
      '-D',
      join(this.dir, 'data'),
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-t',
      '60',
      '-o',
      // fsync off: this server's data is thrown away; the test is about connections.
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }

  /**
   * Stops the server: `fast` ends every session (clients see 57P01), `immediate` kills it like
   * a crash (it recovers from its WAL at the next start).
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.tool('pg_ctl', ['-D', join(this.dir, 'data'), '-m', mode, '-w', 'stop']);
  }

  /** Stops the server if it runs and removes its directory. */
  async destroy(): Promise<void> {
    if (existsSync(join(this.dir, 'data', 'postmaster.pid')))
      await this.stop('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** initdb's a fresh cluster in a temp dir (trust auth) and starts it on a free port. */
export async function startPrivateServer(): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'eventsinks-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
  }
  const server = new PrivateServer(dir, await freePort(), asRoot);
  try {
    await server.tool('initdb', [
      '-D',
      join(dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await server.start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return server;
}
