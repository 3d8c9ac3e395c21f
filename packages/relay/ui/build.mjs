// Builds the dashboard into dist/ui/ (index.html, app.js, app.css, icon.svg): type-checks the
// sources, bundles them with esbuild (Preact, uPlot and the styles in one file each), and writes
// index.html with each file's version tag (`app.js?v=…`, the same hash src/ui/serve.ts computes)
// so that browsers may cache the bundles for good and still get each new build.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here('../dist/ui/');
const version = (file) =>
  createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);

if (!process.argv.includes('--no-check')) {
  execFileSync(
    process.execPath,
    [here('../../../node_modules/typescript/bin/tsc'), '-p', here('tsconfig.json')],
    {
      stdio: 'inherit',
    },
  );
}

mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: here('main.tsx') },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // Preact's and uPlot's MIT notices stay in the bundles.
  legalComments: 'eof',
  logLevel: 'warning',
});
writeFileSync(`${out}icon.svg`, readFileSync(here('icon.svg')));
const html = readFileSync(here('index.html'), 'utf8')
  .replace('__JS__', version(`${out}app.js`))
  .replace('__CSS__', version(`${out}app.css`))
  .replace('__ICON__', version(`${out}icon.svg`));
writeFileSync(`${out}index.html`, html);
