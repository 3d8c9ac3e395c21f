// The relay's logger: pino, JSON lines on stderr; on a terminal, lines a person can read
// (pino-pretty, when it is installed). The level comes from `--log-level`, else
// $EVENTSINKS_LOG_LEVEL, else the configuration's `log.level`.
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

/** The environment variable that sets the log level (over the configuration's `log.level`). */
export const LOG_LEVEL_ENV = 'EVENTSINKS_LOG_LEVEL';

/** The levels, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** True for a name in {@link LOG_LEVELS}. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * An error's message followed by its causes' messages, each only when it says something new:
 * `fetch failed (connect ECONNREFUSED …)` rather than `… : fetch failed: connect ECONNREFUSED …`.
 */
export function describeError(error: unknown): string {
  let text = '';
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== undefined && current !== null && !seen.has(current)) {
    seen.add(current);
    const message = current instanceof Error ? current.message : plain(current);
    if (message !== '' && !text.includes(message)) text = text ? `${text}: ${message}` : message;
    current = current instanceof Error ? current.cause : undefined;
  }
  return text;
}

function plain(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'symbol':
      return value.toString();
    case 'undefined':
      return 'undefined';
    default:
      try {
        return JSON.stringify(value) ?? typeof value;
      } catch {
        return typeof value;
      }
  }
}

/** `HttpTransportError: POST … failed (…)`: the error's name and {@link describeError}. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${describeError(error)}`;
  return describeError(error);
}

/** pino's `err` serializer: the text once, the code and status; the stack only at debug. */
function errSerializer(withStack: boolean): (error: unknown) => unknown {
  return (error) => {
    if (!(error instanceof Error)) return { message: String(error) };
    const { code, status } = error as { code?: unknown; status?: unknown };
    return {
      type: error.name,
      message: describeError(error),
      ...(code !== undefined ? { code } : {}),
      ...(status !== undefined ? { status } : {}),
      ...(withStack && error.stack ? { stack: error.stack } : {}),
    };
  };
}

/** Whether `level` shows debug lines (and so stacks). */
export function isVerbose(level: string): boolean {
  return level === 'debug' || level === 'trace';
}

function prettyStream(): DestinationStream | undefined {
  try {
    // pino-pretty is a dependency, still loaded defensively: without it a terminal gets JSON lines.
    const require = createRequire(import.meta.url);
    const pretty = require('pino-pretty') as (
      options: Record<string, unknown>,
    ) => DestinationStream;
    return pretty({
      destination: 2,
      sync: true,
      colorize: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,service',
    });
  } catch {
    return undefined;
  }
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level: LogLevel;
  /** Readable lines instead of JSON; default: when stderr is a terminal. */
  pretty?: boolean;
}

/**
 * Log fields that may hold a secret, written as `[redacted]`: the tokens of a configuration
 * logged whole or in part (`admin.token`, the http source's `token`), a webhook's signing
 * secret and request headers. Nothing logs them today; this keeps a later debug line from
 * leaking them (pino's `redact`, paths as in its docs).
 */
export const REDACTED_PATHS: readonly string[] = [
  'admin.token',
  'config.admin.token',
  'token',
  'sources[*].token',
  'config.sources[*].token',
  'signing.secret',
  'destination.signing.secret',
  'config.destinations[*].signing.secret',
  'headers.authorization',
  'req.headers.authorization',
];

/** The relay's logger on stderr (fd 2, written synchronously so nothing is lost on exit). */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const stream = (pretty ? prettyStream() : undefined) ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level: options.level,
      base: { service: 'eventsinks-relay' },
      serializers: { err: errSerializer(isVerbose(options.level)) },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    stream,
  );
}
