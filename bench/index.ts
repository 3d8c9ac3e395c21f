// `npm run bench [-- [suite…] [--quick] [--svg=path]]`: runs every bench/suites/*.ts (or the
// ones named), prints one markdown table per suite, writes bench/results/latest.json and
// latest.md, and draws the SVG chart from that JSON.
//
// Suites are discovered, not listed, so a new file in bench/suites/ runs without touching this
// one. A suite that fails to load, throws, returns malformed rows or overruns its time limit is
// reported and the others still run; the exit code is then 1, so CI notices a suite that rots.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem, arch } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clockName, noopFloor } from './lib/measure.js';
import { markdownReport, markdownTable, renderSvg, type BenchResult } from './lib/report.js';
import type { BenchRow, BenchSuite } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const suitesDir = join(here, 'suites');
const resultsDir = join(here, 'results');

const USAGE = `usage: npm run bench -- [suite…] [--quick] [--svg=<path>] [--timeout=<seconds>]
  suite        a file name in bench/suites/ without .ts (default: all of them)
  --quick      short sampling, for CI: the core suite finishes in well under a minute
  --svg        where to draw the chart (default: docs/benchmarks.svg for a full run of every
               suite, bench/results/latest.svg otherwise, so a partial run leaves the docs alone)
  --timeout    per-suite limit (default: 300 s quick, 1800 s full)
  --clock=cpu  time with this process's CPU time instead of wall time (for a shared machine)
  --from       measure nothing: redraw latest.md and the SVG from a results JSON`;

interface Args {
  quick: boolean;
  names: string[];
  svg: string | undefined;
  timeoutSeconds: number | undefined;
  from: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    quick: false,
    names: [],
    svg: undefined,
    timeoutSeconds: undefined,
    from: undefined,
  };
  for (const arg of argv) {
    if (arg === '--quick') args.quick = true;
    else if (arg.startsWith('--svg=')) args.svg = arg.slice('--svg='.length);
    else if (arg.startsWith('--timeout=')) args.timeoutSeconds = Number(arg.slice(10));
    else if (arg.startsWith('--from=')) args.from = arg.slice('--from='.length);
    else if (arg === '--clock=cpu' || arg === '--clock=wall') {
      // An environment variable, so suites that use bench/lib/measure.ts see it too.
      process.env.EVENTSINKS_BENCH_CLOCK = arg.slice('--clock='.length);
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith('-')) {
      console.error(`unknown option ${arg}\n${USAGE}`);
      process.exit(2);
    } else args.names.push(arg);
  }
  return args;
}

function isSuite(value: unknown): value is BenchSuite {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as BenchSuite).name === 'string' &&
    typeof (value as BenchSuite).run === 'function'
  );
}

/** The reason a row cannot go into the JSON, or undefined if it can. */
function invalidRow(row: unknown): string | undefined {
  if (typeof row !== 'object' || row === null) return 'not an object';
  const r = row as Partial<BenchRow>;
  if (typeof r.scenario !== 'string') return 'no scenario';
  if (typeof r.unit !== 'string') return `${r.scenario}: no unit`;
  if (r.better !== 'lower' && r.better !== 'higher') return `${r.scenario}: bad \`better\``;
  if (typeof r.results !== 'object' || r.results === null) return `${r.scenario}: no results`;
  for (const [name, value] of Object.entries(r.results)) {
    if (value !== null && typeof value !== 'number') return `${r.scenario}: ${name} not a number`;
  }
  return undefined;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took longer than ${seconds} s`)),
      seconds * 1000,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Writes latest.md and draws the SVG, both from the one result document. */
function writeReports(result: BenchResult, svg: string): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'latest.md'), markdownReport(result));
  mkdirSync(dirname(svg), { recursive: true });
  writeFileSync(svg, renderSvg(result));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.from !== undefined) {
    const result = JSON.parse(readFileSync(args.from, 'utf8')) as BenchResult;
    const svg = args.svg ?? join(resultsDir, 'latest.svg');
    writeReports(result, svg);
    console.log(markdownReport(result));
    console.log(`wrote ${relative(root, join(resultsDir, 'latest.md'))}, ${relative(root, svg)}`);
    return;
  }
  const timeoutSeconds = args.timeoutSeconds ?? (args.quick ? 300 : 1800);
  const available = readdirSync(suitesDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
    .map((f) => basename(f, '.ts'))
    .sort((a, b) => (a === 'core' ? -1 : b === 'core' ? 1 : a.localeCompare(b)));
  const unknown = args.names.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    console.error(`no such suite: ${unknown.join(', ')} (available: ${available.join(', ')})`);
    process.exit(2);
  }
  const selected =
    args.names.length > 0 ? available.filter((n) => args.names.includes(n)) : available;

  const cpuList = cpus();
  const loadStart = loadavg()[0] ?? 0;
  // Measured first, on a quiet process: the floor under every figure that follows.
  const noop = await noopFloor(args.quick);
  const result: BenchResult = {
    date: new Date().toISOString(),
    quick: args.quick,
    machine: {
      cpu: cpuList[0]?.model.trim() ?? 'unknown',
      cores: cpuList.length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      platform: `${platform()} ${release()} ${arch()}`,
      node: process.version,
      v8: process.versions.v8,
      loadStart,
      loadEnd: loadStart,
    },
    clock: clockName(),
    noopNs: Number(noop.p50.toPrecision(4)),
    suites: [],
    rows: [],
  };
  console.log(
    `# eventsinks benchmarks (${args.quick ? 'quick' : 'full'}): ${selected.join(', ')}\n` +
      `${result.machine.cpu}, ${result.machine.cores} cores, Node ${process.version}, load ${loadStart.toFixed(2)}`,
  );

  for (const name of selected) {
    const file = join(suitesDir, `${name}.ts`);
    const started = performance.now();
    const entry: BenchResult['suites'][number] = {
      name,
      file: relative(root, file),
      ok: false,
      seconds: 0,
    };
    result.suites.push(entry);
    console.log(`\n## ${name}\n`);
    try {
      const loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
      const suite = loaded.default;
      if (!isSuite(suite))
        throw new TypeError(`${entry.file} does not export a default BenchSuite`);
      entry.name = suite.name;
      const rows = await withTimeout(
        suite.run({ quick: args.quick }),
        timeoutSeconds,
        `suite ${name}`,
      );
      if (!Array.isArray(rows))
        throw new TypeError(`suite ${name} did not return an array of rows`);
      const problems: string[] = [];
      for (const row of rows as unknown[]) {
        const problem = invalidRow(row);
        if (problem === undefined) result.rows.push({ ...(row as BenchRow), suite: suite.name });
        else problems.push(problem);
      }
      if (problems.length > 0) throw new TypeError(`malformed rows: ${problems.join('; ')}`);
      entry.ok = true;
    } catch (error) {
      entry.error = describeError(error);
      console.error(`suite ${name} FAILED: ${entry.error}`);
    }
    entry.seconds = (performance.now() - started) / 1000;
    const rows = result.rows.filter((r) => r.suite === entry.name);
    if (rows.length > 0) console.log(markdownTable(rows));
    console.log(`\n(${entry.seconds.toFixed(1)} s)`);
  }
  result.machine.loadEnd = loadavg()[0] ?? 0;

  mkdirSync(resultsDir, { recursive: true });
  const json = join(resultsDir, 'latest.json');
  writeFileSync(json, JSON.stringify(result, null, 2) + '\n');
  const everything = selected.length === available.length;
  const svg =
    args.svg ??
    (!args.quick && everything
      ? join(root, 'docs', 'benchmarks.svg')
      : join(resultsDir, 'latest.svg'));
  writeReports(result, svg);
  console.log(
    `\nwrote ${relative(root, json)}, ${relative(root, join(resultsDir, 'latest.md'))}, ${relative(root, svg)}`,
  );

  const failed = result.suites.filter((s) => !s.ok);
  if (failed.length > 0) {
    console.error(`\n${failed.length} suite(s) failed: ${failed.map((s) => s.name).join(', ')}`);
  }
  // A suite that timed out may still hold sockets or timers; the run is over either way.
  process.exit(failed.length > 0 ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(describeError(error));
  process.exit(1);
});
