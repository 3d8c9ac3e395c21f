// Durations and sizes in the relay's configuration always carry a unit: a bare number is
// rejected, because "timeout: 5" meaning 5 ns (as in the registry's Go config) is a known trap.
// One grammar for each, used by the configuration schema and by the command line (`--since`).

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** The duration units, for messages: `ms, s, m, h, d`. */
export const DURATION_UNITS = Object.keys(DURATION_MS).join(', ');

/** Milliseconds in a duration such as `500ms`, `30s`, `5m`, `1h`, `1d`; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * DURATION_MS[match[2]!]!;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;
const SIZE_BYTES: Record<string, number> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** The size units, for messages. */
export const SIZE_UNITS = 'b, kb, KiB, mb, MiB, gb, GiB';

/** Bytes in a size such as `512kb`, `1MiB`, `1048576`; undefined if malformed. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  return Math.floor(Number(match[1]) * SIZE_BYTES[(match[2] ?? 'b').toLowerCase()]!);
}
