// Turns a run's rows into what people read: markdown tables and an SVG bar chart. Both are
// drawn from the same JSON document the run writes, so the docs can never disagree with it.
import type { BenchRow } from '../types.js';

/** What bench/results/latest.json holds. */
export interface BenchResult {
  date: string;
  quick: boolean;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    platform: string;
    node: string;
    v8: string;
    /** 1-minute load average when the run started and when it ended. */
    loadStart: number;
    loadEnd: number;
  };
  /** What the timings read: wall time, or this process's CPU time (`--clock=cpu`). */
  clock?: 'wall' | 'cpu';
  /** mitata's no-op baseline in this run, ns per call: the floor under every figure. */
  noopNs: number;
  suites: { name: string; file: string; ok: boolean; seconds: number; error?: string }[];
  rows: BenchRow[];
}

/** The implementation a row is about: `eventsinks` by convention, else its first column. */
export function subjectOf(row: BenchRow): string {
  return 'eventsinks' in row.results ? 'eventsinks' : (Object.keys(row.results)[0] ?? '');
}

/** A figure with four significant digits and thousands separators. */
export function formatNumber(value: number): string {
  return value.toLocaleString('en-US', { maximumSignificantDigits: 4 });
}

/**
 * eventsinks' cost relative to a peer: below 1 means eventsinks is faster (or smaller). For
 * `better: 'higher'` units (throughput) the quotient is inverted so the reading stays the same.
 */
export function ratio(row: BenchRow, peer: string): number | undefined {
  const own = row.results[subjectOf(row)];
  const other = row.results[peer];
  if (own == null || other == null || own <= 0 || other <= 0) return undefined;
  return row.better === 'lower' ? own / other : other / own;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** One markdown table for the rows of one suite. */
export function markdownTable(rows: BenchRow[]): string {
  const subject = rows[0] ? subjectOf(rows[0]) : 'eventsinks';
  const peers: string[] = [];
  const references: string[] = [];
  for (const row of rows) {
    for (const [name, value] of Object.entries(row.results)) {
      if (name !== subjectOf(row) && value != null && !peers.includes(name)) peers.push(name);
    }
    for (const name of Object.keys(row.reference ?? {})) {
      if (!references.includes(name)) references.push(name);
    }
  }
  const header = [
    'scenario',
    'unit',
    subject,
    ...peers.map((p) => `${p} (×)`),
    ...references.map((r) => `${r} (reference)`),
  ];
  const lines = [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const row of rows) {
    const own = row.results[subjectOf(row)];
    const cells = [
      row.scenario,
      row.unit,
      own == null ? '—' : `**${formatNumber(own)}**`,
      ...peers.map((peer) => {
        const value = row.results[peer];
        if (value == null) return '—';
        const r = ratio(row, peer);
        return r === undefined ? formatNumber(value) : `${formatNumber(value)} (${r.toFixed(2)}×)`;
      }),
      ...references.map((name) => row.reference?.[name] ?? '—'),
    ];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The header, tables and notes of a whole run, as printed and as written to latest.md. */
export function markdownReport(result: BenchResult): string {
  const m = result.machine;
  const out = [
    `Node ${m.node} (V8 ${m.v8}), ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}; ` +
      `${result.date}; ${result.quick ? 'quick' : 'full'} run; load average ${m.loadStart.toFixed(2)} ` +
      `at start, ${m.loadEnd.toFixed(2)} at end; ${result.clock ?? 'wall'}-clock time; mitata no-op ` +
      `floor ${formatNumber(result.noopNs)} ns.`,
    '',
    'Each peer cell reads `value (×)`, × being eventsinks ÷ that peer: below 1 means eventsinks ' +
      'is faster or smaller. Reference columns were measured separately on the same machine kind, ' +
      'not in this run.',
  ];
  for (const suite of result.suites) {
    const rows = result.rows.filter((r) => r.suite === suite.name);
    out.push('', `### ${suite.name}`, '');
    if (!suite.ok) out.push(`**Failed** after ${suite.seconds.toFixed(1)} s: ${suite.error}`, '');
    if (rows.length > 0) {
      out.push(markdownTable(rows), '');
      for (const row of rows) if (row.notes) out.push(`- ${row.scenario}: ${row.notes}`);
    }
  }
  return out.join('\n') + '\n';
}

const TIME_UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };

/**
 * A row's values as nanoseconds per event, or undefined for units that are not a time per
 * something (bytes) nor a rate (events/s), which the chart leaves out.
 */
export function nanosecondsPer(row: BenchRow): Record<string, number> | undefined {
  const [head, tail] = row.unit.split('/', 2);
  if (head === undefined || tail === undefined) return undefined;
  let toNs: ((v: number) => number) | undefined;
  const scale = TIME_UNITS[head];
  if (scale !== undefined) toNs = (v) => v * scale;
  else if (TIME_UNITS[tail] !== undefined) {
    const per = TIME_UNITS[tail];
    toNs = (v) => (v > 0 ? per / v : NaN);
  }
  if (toNs === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(row.results)) {
    if (value == null) continue;
    const ns = toNs(value);
    if (Number.isFinite(ns) && ns > 0) out[name] = ns;
  }
  return out;
}

/** A reference figure such as '1.85–2.06 µs/op' or '64 B/event' as a range in ns, if a time. */
export function referenceRangeNs(text: string): [number, number] | undefined {
  const match = /^\s*([\d.]+)\s*(?:[–-]\s*([\d.]+))?\s*(ns|µs|us|ms|s)\//.exec(text);
  if (match === null) return undefined;
  const scale = TIME_UNITS[match[3]!]!;
  const low = Number(match[1]) * scale;
  const high = Number(match[2] ?? match[1]) * scale;
  return Number.isFinite(low) && Number.isFinite(high) ? [low, high] : undefined;
}

function formatNs(ns: number): string {
  if (ns < 1e3) return `${formatNumber(ns)} ns`;
  if (ns < 1e6) return `${formatNumber(ns / 1e3)} µs`;
  if (ns < 1e9) return `${formatNumber(ns / 1e6)} ms`;
  return `${formatNumber(ns / 1e9)} s`;
}

function xml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

// eventsinks is always red and no peer is; peers take the rest in order of first appearance.
const SUBJECT_COLOUR = '#d62728';
const PALETTE = [
  '#1f77b4',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
  '#aec7e8',
  '#98df8a',
  '#c5b0d5',
  '#ffbb78',
  '#c49c94',
  '#f7b6d2',
  '#9edae5',
  '#393b79',
  '#637939',
  '#8c6d31',
  '#7b4173',
];

/** A rough text width in px at the chart's 11 px font, for layout without a renderer. */
function textWidth(text: string): number {
  return text.length * 6.2;
}

/** A horizontal grouped bar chart of ns/event per scenario, on a log scale. */
export function renderSvg(result: BenchResult): string {
  interface Bar {
    name: string;
    ns: number;
    /** Set for reference figures: measured elsewhere, drawn hollow with their range. */
    range?: [number, number];
  }
  const groups: { label: string; bars: Bar[] }[] = [];
  const names: string[] = [];
  const multiSuite = new Set(result.rows.map((r) => r.suite)).size > 1;
  for (const row of result.rows) {
    const values = nanosecondsPer(row);
    if (values === undefined) continue;
    const subject = subjectOf(row);
    const ordered = Object.keys(values).sort((a, b) =>
      a === subject ? -1 : b === subject ? 1 : 0,
    );
    if (ordered.length === 0) continue;
    const bars: Bar[] = ordered.map((name) => ({ name, ns: values[name]! }));
    for (const [source, text] of Object.entries(row.reference ?? {})) {
      const range = referenceRangeNs(text);
      if (range === undefined) continue;
      bars.push({ name: `${source} (reference)`, ns: (range[0] + range[1]) / 2, range });
    }
    for (const bar of bars) if (!names.includes(bar.name)) names.push(bar.name);
    groups.push({ label: multiSuite ? `${row.suite} · ${row.scenario}` : row.scenario, bars });
  }
  const rank = (name: string): number =>
    name === 'eventsinks' ? 0 : name.endsWith(' (reference)') ? 2 : 1;
  names.sort((a, b) => rank(a) - rank(b));
  const peers = names.filter((n) => rank(n) === 1);
  const colour = (name: string): string =>
    rank(name) === 0
      ? SUBJECT_COLOUR
      : (PALETTE[peers.indexOf(name) % PALETTE.length] ?? '#000000');

  const isReference = (name: string): boolean => rank(name) === 2;
  const all = groups.flatMap((g) => g.bars.flatMap((b) => b.range ?? [b.ns]));
  const lo = Math.floor(Math.log10(Math.min(...all, 10)));
  const hi = Math.ceil(Math.log10(Math.max(...all, 100)));
  const width = 980;
  const left = Math.ceil(Math.max(150, ...groups.map((g) => textWidth(g.label) + 18)));
  const right = width - 90;
  const x = (ns: number): number => left + ((Math.log10(ns) - lo) / (hi - lo)) * (right - left);
  const barHeight = 11;
  // The legend flows left to right and wraps, each entry as wide as its name.
  const legend: { name: string; lx: number; ly: number }[] = [];
  let lx = 20;
  let ly = 50;
  for (const name of names) {
    const label = isReference(name) ? `${name}, measured separately` : name;
    const entry = 17 + textWidth(label) + 16;
    if (lx + entry > width - 10 && lx > 20) {
      lx = 20;
      ly += 18;
    }
    legend.push({ name: label, lx, ly });
    lx += entry;
  }
  const top = ly + 26;
  const groupHeights = groups.map((g) => g.bars.length * (barHeight + 2) + 14);
  const height = top + groupHeights.reduce((a, b) => a + b, 0) + 30;

  const m = result.machine;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="20" y="20" font-size="14" font-weight="bold">Time per event (log scale; shorter is faster)</text>`,
    `<text x="20" y="37" fill="#555555">${xml(
      `Node ${m.node}, ${m.cpu}, ${m.cores} cores, load ${m.loadStart.toFixed(2)}; ${result.date.slice(0, 10)}; ${result.quick ? 'quick' : 'full'} run; ${result.clock ?? 'wall'} clock; median of mitata samples`,
    )}</text>`,
  ];
  legend.forEach(({ name, lx, ly }, i) => {
    parts.push(
      isReference(names[i]!)
        ? `<rect x="${lx + 0.5}" y="${ly + 0.5}" width="11" height="11" fill="#eeeeee" stroke="#777777" stroke-dasharray="2 1"/>`
        : `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${colour(name)}"/>`,
      `<text x="${lx + 17}" y="${ly + 10}">${xml(name)}</text>`,
    );
  });
  for (let d = lo; d <= hi; d++) {
    const gx = x(10 ** d).toFixed(1);
    parts.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - 24}" stroke="#dddddd"/>`,
      `<text x="${gx}" y="${height - 10}" text-anchor="middle" fill="#555555">${formatNs(10 ** d)}</text>`,
    );
  }
  let y = top;
  groups.forEach((group, gi) => {
    const h = groupHeights[gi]!;
    parts.push(
      `<text x="${left - 8}" y="${(y + (h - 14) / 2 + 4).toFixed(1)}" text-anchor="end" font-weight="bold">${xml(group.label)}</text>`,
    );
    group.bars.forEach((bar, bi) => {
      const by = y + bi * (barHeight + 2);
      const bw = Math.max(1, x(bar.ns) - left);
      if (bar.range === undefined) {
        parts.push(
          `<rect x="${left}" y="${by}" width="${bw.toFixed(1)}" height="${barHeight}" fill="${colour(bar.name)}"><title>${xml(`${bar.name}: ${formatNs(bar.ns)}`)}</title></rect>`,
          `<text x="${(left + bw + 4).toFixed(1)}" y="${by + barHeight - 2}" font-size="9" fill="#333333">${xml(formatNs(bar.ns))}</text>`,
        );
        return;
      }
      const [low, high] = bar.range;
      const label = low === high ? formatNs(low) : `${formatNs(low)}–${formatNs(high)}`;
      const end = Math.max(x(high), left + bw);
      parts.push(
        `<rect x="${left + 0.5}" y="${by + 0.5}" width="${bw.toFixed(1)}" height="${barHeight - 1}" fill="#eeeeee" stroke="#777777" stroke-dasharray="2 1"><title>${xml(`${bar.name}: ${label}`)}</title></rect>`,
        `<line x1="${x(low).toFixed(1)}" y1="${by + barHeight / 2}" x2="${x(high).toFixed(1)}" y2="${by + barHeight / 2}" stroke="#333333"/>`,
        `<text x="${(end + 4).toFixed(1)}" y="${by + barHeight - 2}" font-size="9" fill="#555555">${xml(label)}</text>`,
      );
    });
    y += h;
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
