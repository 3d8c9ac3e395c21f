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

/**
 * The clock every measurement reads: wall time (mitata's default), or with
 * `EVENTSINKS_BENCH_CLOCK=cpu` (`npm run bench -- --clock=cpu`) this process's CPU time, which
 * leaves out the time other processes held the CPU on a shared machine. CPU time counts every
 * thread, so a contender's concurrent GC work is charged to it.
 */
export function clockName(): 'wall' | 'cpu' {
  return process.env.EVENTSINKS_BENCH_CLOCK === 'cpu' ? 'cpu' : 'wall';
}

function cpuNow(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) * 1e3;
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
  // mitata decides whether to batch calls from the first few, and an unoptimized first call
  // can look slow enough that it times calls one by one, where clock overhead swamps a 40 ns
  // operation. Warm the function up first so the decision sees its optimized speed.
  const deadline = performance.now() + (options.quick ? 20 : 100);
  for (let i = 0; i < 1000 && (i < 3 || performance.now() < deadline); i++) {
    const result = fn();
    if (result instanceof Promise) await result;
  }
  const stats = await measure(fn, {
    min_cpu_time: cpuBudget(options.quick),
    ...(clockName() === 'cpu' ? { now: cpuNow } : {}),
  });
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
