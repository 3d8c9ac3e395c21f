// The dashboard's numbers "over the last minutes": the page samples the relay's /metrics every
// poll and keeps a window of samples; counts, success rate and latency quantiles are the
// differences across that window (as Prometheus' increase() and histogram_quantile() would
// compute them), so the relay keeps no extra state for the page. Pure code: tested in Node.

/** One destination's counters in one scrape. */
export interface DestinationCounters {
  delivered: number;
  failed: number;
  /** The latency histogram's cumulative buckets: upper bound (s, Infinity last) → count. */
  buckets: Map<number, number>;
}

/** One scrape: when, and each destination's counters. */
export interface Sample {
  at: number;
  destinations: Map<string, DestinationCounters>;
}

const DELIVERED = 'eventsinks_relay_delivered_events_total';
const FAILED = 'eventsinks_relay_delivery_failures_total';
const BUCKET = 'eventsinks_relay_delivery_latency_seconds_bucket';

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labels(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (text === undefined) return out;
  for (const match of text.matchAll(LABEL)) {
    out.set(
      match[1]!,
      match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)),
    );
  }
  return out;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/**
 * The delivery counters and latency buckets per destination in a Prometheus text exposition;
 * other metrics are ignored, and so are lines without a `destination` label.
 */
export function parseMetrics(text: string): Map<string, DestinationCounters> {
  const out = new Map<string, DestinationCounters>();
  const of = (name: string): DestinationCounters => {
    let counters = out.get(name);
    if (!counters) {
      counters = { delivered: 0, failed: 0, buckets: new Map() };
      out.set(name, counters);
    }
    return counters;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const metric = match[1]!;
    if (metric !== DELIVERED && metric !== FAILED && metric !== BUCKET) continue;
    const set = labels(match[2]);
    const destination = set.get('destination');
    const value = parseValue(match[3]!);
    if (destination === undefined || Number.isNaN(value)) continue;
    const counters = of(destination);
    if (metric === DELIVERED) counters.delivered = value;
    else if (metric === FAILED) counters.failed = value;
    else {
      const le = parseValue(set.get('le') ?? '');
      if (!Number.isNaN(le)) counters.buckets.set(le, value);
    }
  }
  return out;
}

/** The increase of a counter between two readings; a drop is a restart of the relay. */
function increase(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * The `q` quantile (0..1) of a histogram given as cumulative bucket counts, interpolated
 * linearly inside the bucket as Prometheus' histogram_quantile() does; undefined when empty.
 * A quantile that falls in the +Inf bucket is the highest finite bound.
 */
export function quantile(q: number, buckets: ReadonlyMap<number, number>): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? (bounds.length ? buckets.get(bounds.at(-1)!)! : 0);
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = buckets.get(bound)!;
    if (count >= rank) {
      if (bound === Infinity) return lower;
      const inside = count - below;
      return inside > 0 ? lower + (bound - lower) * ((rank - below) / inside) : bound;
    }
    lower = bound;
    below = count;
  }
  return lower;
}

/** A destination's numbers over the window. */
export interface WindowSummary {
  delivered: number;
  /** Failed attempts (each retry counts, as in the metric). */
  failed: number;
  /** delivered / (delivered + failed), 0..1; undefined when there was neither. */
  successRate: number | undefined;
  /** Seconds; undefined without deliveries in the window. */
  p50: number | undefined;
  p99: number | undefined;
  /** How much time the window covers so far (less than its length after the page opens), ms. */
  coveredMs: number;
}

/** Per-interval rates for a chart: x in seconds since the epoch, y in events per second. */
export interface Series {
  at: number[];
  delivered: number[];
  failed: number[];
}

/** The samples of the last `windowMs`, and the numbers across them. */
export class StatsWindow {
  readonly windowMs: number;
  readonly #samples: Sample[] = [];

  constructor(windowMs = 5 * 60_000) {
    this.windowMs = windowMs;
  }

  /** Adds a scrape taken at `at` (ms) and drops the samples that left the window. */
  add(at: number, destinations: Map<string, DestinationCounters>): void {
    this.#samples.push({ at, destinations });
    // One sample older than the window stays: it is the baseline of the first interval.
    while (this.#samples.length > 2 && this.#samples[1]!.at <= at - this.windowMs) {
      this.#samples.shift();
    }
  }

  /** How many samples are kept. */
  get size(): number {
    return this.#samples.length;
  }

  /** The numbers of `destination` (all destinations added up when omitted) over the window. */
  summary(destination?: string): WindowSummary {
    let delivered = 0;
    let failed = 0;
    const buckets = new Map<number, number>();
    this.#intervals(destination, (previous, current) => {
      delivered += increase(previous.delivered, current.delivered);
      failed += increase(previous.failed, current.failed);
      for (const [le, count] of current.buckets) {
        const increment = increase(previous.buckets.get(le) ?? 0, count);
        buckets.set(le, (buckets.get(le) ?? 0) + increment);
      }
    });
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    return {
      delivered,
      failed,
      successRate: delivered + failed > 0 ? delivered / (delivered + failed) : undefined,
      p50: quantile(0.5, buckets),
      p99: quantile(0.99, buckets),
      coveredMs: first && last ? last.at - first.at : 0,
    };
  }

  /** Delivered and failed per second in each interval, for the chart. */
  series(destination?: string): Series {
    const series: Series = { at: [], delivered: [], failed: [] };
    this.#intervals(destination, (previous, current, seconds, at) => {
      series.at.push(at / 1000);
      series.delivered.push(increase(previous.delivered, current.delivered) / seconds);
      series.failed.push(increase(previous.failed, current.failed) / seconds);
    });
    return series;
  }

  #intervals(
    destination: string | undefined,
    visit: (
      previous: DestinationCounters,
      current: DestinationCounters,
      seconds: number,
      at: number,
    ) => void,
  ): void {
    for (let i = 1; i < this.#samples.length; i++) {
      const before = this.#samples[i - 1]!;
      const after = this.#samples[i]!;
      const seconds = Math.max((after.at - before.at) / 1000, 0.001);
      const names = destination === undefined ? [...after.destinations.keys()] : [destination];
      const previous = sum(names.map((n) => before.destinations.get(n)));
      const current = sum(names.map((n) => after.destinations.get(n)));
      visit(previous, current, seconds, after.at);
    }
  }
}

const EMPTY: DestinationCounters = { delivered: 0, failed: 0, buckets: new Map() };

function sum(list: (DestinationCounters | undefined)[]): DestinationCounters {
  if (list.length === 1) return list[0] ?? EMPTY;
  const total: DestinationCounters = { delivered: 0, failed: 0, buckets: new Map() };
  for (const counters of list) {
    if (!counters) continue;
    total.delivered += counters.delivered;
    total.failed += counters.failed;
    for (const [le, count] of counters.buckets) {
      total.buckets.set(le, (total.buckets.get(le) ?? 0) + count);
    }
  }
  return total;
}
