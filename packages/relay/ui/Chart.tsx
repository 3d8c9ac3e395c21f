// The deliveries-and-failures chart (uPlot on a canvas). A canvas says nothing to a screen
// reader, so the figure carries its numbers as text: the latest rates in its label and caption.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { Series } from './stats.js';

const DELIVERED = '#1a7f37';
const FAILED = '#cf222e';

/** The shortest span the x axis shows, s: a page that just opened still reads as "minutes". */
const MIN_SPAN = 60;

const clock = (seconds: number): string => {
  const date = new Date(seconds * 1000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
};

function options(width: number): uPlot.Options {
  return {
    width,
    height: 160,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: {
        time: true,
        range: (_u, min, max) => [Math.min(min, max - MIN_SPAN), max],
      },
      y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: [
      {
        stroke: 'currentColor',
        grid: { stroke: 'rgba(128,128,128,0.2)' },
        space: 70,
        values: (_u, ticks) => ticks.map(clock),
      },
      {
        stroke: 'currentColor',
        grid: { stroke: 'rgba(128,128,128,0.2)' },
        size: 40,
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : t.toFixed(1))),
      },
    ],
    series: [
      {},
      { label: 'delivered/s', stroke: DELIVERED, width: 2, fill: 'rgba(26,127,55,0.12)' },
      { label: 'failed/s', stroke: FAILED, width: 2, dash: [6, 3] },
    ],
  };
}

/** A small chart of delivered and failed events per second over the stats window. */
export function Chart({ series, title }: { series: Series; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data: uPlot.AlignedData = [series.at, series.delivered, series.failed];

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const chart = new uPlot(options(Math.max(200, element.clientWidth)), data, element);
    plot.current = chart;
    const observer = new ResizeObserver(() =>
      chart.setSize({ width: Math.max(200, element.clientWidth), height: 160 }),
    );
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // Created once; data updates go through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  });

  const last = (values: number[]): string => (values.at(-1) ?? 0).toFixed(1);
  const text =
    series.at.length === 0
      ? 'no samples yet'
      : `now ${last(series.delivered)} delivered/s and ${last(series.failed)} failed/s`;
  return (
    <figure class="chart">
      <figcaption>
        {title}: <span class="key delivered">delivered/s</span>{' '}
        <span class="key failed">failed/s</span> ({text})
      </figcaption>
      <div ref={box} role="img" aria-label={`${title}, ${text}`} />
    </figure>
  );
}
