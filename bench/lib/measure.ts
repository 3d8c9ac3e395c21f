// A thin layer over mitata's `measure`, shared by the suites: one call per (scenario,
// implementation), the same sampling budget for every implementation in a run, and the result
// reduced to what a BenchRow holds.
import { measure } from 'mitata';

/** What one measurement reports, in nanoseconds per operation. */
export interface Timing {
  /** Median sample: the headline figure, the least disturbed by a loaded machine. */
  p50: number;
  avg: number;
  p99: number;
  min: number;
  /** How many times the operation ran. */
  ticks: number;
}

/** How long mitata keeps sampling one function, in nanoseconds of CPU time. */
export function cpuBudget(quick: boolean): number {
  // mitata's own default is 642 ms; the full run keeps it, quick mode trades precision for a
  // run short enough for CI.
  return quick ? 40e6 : 642e6;
}

/**
 * Measures `fn` with mitata. `fn` may return a promise; mitata then awaits each call.
 * `perOp` divides every figure, for operations that move several events at once.
 */
export async function time(
  fn: () => unknown,
  options: { quick: boolean; perOp?: number },
): Promise<Timing> {
  const per = options.perOp ?? 1;
  const stats = await measure(fn, { min_cpu_time: cpuBudget(options.quick) });
  return {
    p50: stats.p50 / per,
    avg: stats.avg / per,
    p99: stats.p99 / per,
    min: stats.min / per,
    ticks: stats.ticks,
  };
}

/** The no-op baseline mitata keeps: the floor under every figure of this run. */
export async function noopFloor(quick: boolean): Promise<Timing> {
  return time(() => {}, { quick });
}

/** Forces a full collection; the bench script runs with --expose-gc. */
export function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench does)');
  gc();
  gc();
}
