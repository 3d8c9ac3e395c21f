// Runs every *.test.ts under packages/*/src, packages/*/test and the root's test/ with node's
// test runner (Node 20 takes no globs).
// Usage: node scripts/run-tests.mjs [--long] [path-filter...]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const long = args.includes('--long');
const filters = args.filter((a) => !a.startsWith('--'));

function collect(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'node_modules' && name !== 'fixtures') collect(path, out);
    } else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const packages = readdirSync('packages')
  .filter((name) => existsSync(join('packages', name, 'package.json')))
  .sort();
const roots = [
  ...packages.flatMap((name) => ['src', 'test'].map((d) => join('packages', name, d))),
  'test',
];
const files = roots
  .flatMap((dir) => collect(dir, []))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const env = { ...process.env };
if (long) env.EVENTSINKS_LONG = '1';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=900000', ...files],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
