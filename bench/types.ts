// The shape every benchmark suite returns, so `npm run bench` can print one table and write one
// JSON file whatever the suite measures. Suites live in bench/suites/*.ts and export a default
// BenchSuite; bench/index.ts runs them all (or those named on the command line).

/** One line of the results table: one scenario, measured for eventsinks and its peers. */
export interface BenchRow {
  /** The suite's name, e.g. 'core', 'http', 'sqlite', 'redis'. */
  suite: string;
  /** What was measured, e.g. 'Broadcast10'. */
  scenario: string;
  /** The unit of every value in `results`, e.g. 'ns/event', 'events/s', 'bytes/event'. */
  unit: string;
  /** Whether a smaller value is better (time, bytes) or a larger one (throughput). */
  better: 'lower' | 'higher';
  /** Implementation name → measured value; `eventsinks` first; null where it could not run. */
  results: Record<string, number | null>;
  /** Reference figures measured elsewhere (e.g. go-events on the same machine kind). */
  reference?: Record<string, string>;
  /** Anything a reader needs to interpret the row (percentiles, conditions). */
  notes?: string;
}

/** Options every suite receives. */
export interface BenchOptions {
  /** `npm run bench -- --quick`: the whole run must finish in under a minute. */
  quick: boolean;
}

/** A benchmark suite: bench/suites/<name>.ts exports one as default. */
export interface BenchSuite {
  name: string;
  run(options: BenchOptions): Promise<BenchRow[]>;
}
