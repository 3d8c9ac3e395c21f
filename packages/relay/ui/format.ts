// How the dashboard writes numbers and times: short, and the same everywhere.

/** An ISO time as local `YYYY-MM-DD HH:MM:SS`; `—` for none. */
export function time(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** How long ago an ISO time was, relative to `now` (`12 s ago`, `3 min ago`); `never` for none. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (iso === null || iso === undefined) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return iso;
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/** Seconds as a latency (`12 ms`, `1.4 s`); `—` for none. */
export function latency(seconds: number | undefined): string {
  if (seconds === undefined) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
}

/** A duration in ms (`35 ms`, `2.1 s`). */
export function duration(ms: number): string {
  return latency(ms / 1000);
}

/** A 0..1 ratio as a percentage; `—` for none. */
export function percent(ratio: number | undefined): string {
  if (ratio === undefined) return '—';
  if (ratio === 1) return '100 %';
  return `${(Math.floor(ratio * 1000) / 10).toFixed(1)} %`;
}

/** A count with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `text` cut to `max` characters with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
