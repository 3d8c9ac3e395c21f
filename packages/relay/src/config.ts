// Loading the relay's configuration: YAML (or JSON) → ${VAR} interpolation → schema. Every
// problem is reported with its path and, when it comes from a file, its line and column.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type * as z from 'zod';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import {
  destinationSchema,
  relayAdminSchema,
  relayConfigSchema,
  type DestinationConfig,
  type RelayAdminConfig,
  type RelayConfig,
} from './schema.js';

/** The environment variable that names the configuration file when `--config` is not given. */
export const CONFIG_ENV = 'EVENTSINKS_CONFIG';
/** The file used when neither `--config` nor {@link CONFIG_ENV} names one, if it exists. */
export const DEFAULT_CONFIG_FILE = 'relay.yaml';

/** Where a configuration came from. */
export interface ConfigSource {
  /** The file, or undefined for the embedded defaults. */
  path: string | undefined;
  /** How it was found: `--config`, `$EVENTSINKS_CONFIG`, `./relay.yaml`, or the defaults. */
  origin: 'flag' | 'env' | 'default-file' | 'defaults';
}

/**
 * Finds the configuration the same way for every command: `--config`, else
 * `$EVENTSINKS_CONFIG`, else `./relay.yaml` when it exists, else the embedded defaults.
 */
export function findConfig(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd = process.cwd(),
): ConfigSource {
  if (flag !== undefined && flag !== '') return { path: flag, origin: 'flag' };
  const fromEnv = env[CONFIG_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { path: fromEnv, origin: 'env' };
  if (existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))) {
    return { path: DEFAULT_CONFIG_FILE, origin: 'default-file' };
  }
  return { path: undefined, origin: 'defaults' };
}

/** What an empty configuration file means, for `validate` and the relay to say. */
export const EMPTY_FILE_NOTE =
  'the file is empty (or only comments): the embedded defaults apply ' +
  '(HTTP on 127.0.0.1:8080, queues under ./.eventsinks, one stdout destination)';

/** True when a configuration text holds no value at all (empty, blank or only comments). */
export function isEmptyConfig(text: string): boolean {
  return parseDocument(text).contents === null;
}

/** One thing wrong with a configuration. */
export interface ConfigProblem {
  /** Dotted path in the file, e.g. `destinations[0].timeout`; empty for the whole file. */
  path: string;
  /** 1-based line and column in the file, when known. */
  line?: number;
  column?: number;
  message: string;
}

/** The configuration is invalid; `problems` lists every problem found. Exit code 78. */
export class ConfigError extends Error {
  readonly code = 'ERR_RELAY_CONFIG';
  readonly problems: ConfigProblem[];
  readonly file: string | undefined;
  constructor(problems: ConfigProblem[], file: string | undefined) {
    super(
      `invalid relay configuration${file ? ` in ${file}` : ''}:\n` +
        problems.map((p) => `  ${formatProblem(p, file)}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
  }
}

/** `relay.yaml:12:5 destinations[0].timeout: …` */
export function formatProblem(problem: ConfigProblem, file: string | undefined): string {
  const where =
    problem.line !== undefined
      ? `${file ?? '<config>'}:${problem.line}:${problem.column ?? 1} `
      : '';
  return `${where}${problem.path || '(root)'}: ${problem.message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function locate(
  doc: Document | undefined,
  lines: LineCounter | undefined,
  path: readonly PropertyKey[],
): { line?: number; column?: number } {
  if (!doc || !lines) return {};
  // The deepest node that exists along the path: a missing key is reported at its parent.
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) {
      const { line, col } = lines.linePos(node.range[0]);
      return { line, column: col };
    }
  }
  return {};
}

/**
 * Parses and validates a configuration text. `file` is only used in messages.
 * @throws ConfigError listing every problem.
 */
export function parseConfig(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: string,
  out?: { input?: unknown },
): RelayConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sortProblems(
        doc.errors.map((e) => {
          const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
          return {
            path: '',
            line: pos.line,
            column: pos.col,
            message: `YAML syntax: ${(e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '')}`,
          };
        }),
      ),
      file,
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  return check(relayConfigSchema, raw, env, file, doc, lines, undefined, out);
}

/**
 * Like {@link parseConfig}, but checks only what the admin commands (`dlq`, `messages`) use:
 * the server, `dataDir`, `durability`, `store`, `retention`, the http source's token and the destinations' names. Nothing else is
 * interpolated, so a destination's secret need not be set to list its dead letters.
 * @throws ConfigError listing every problem in those parts.
 */
export function parseAdminConfig(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: string,
): RelayAdminConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) return parseConfig(text, env, file); // throws the syntax errors
  const raw: unknown = doc.toJS() ?? {};
  return check(relayAdminSchema, raw, env, file, doc, lines, adminNeeds);
}

/** The parts of a configuration that the admin commands read. */
function adminNeeds(path: readonly (string | number)[]): boolean {
  const [top, , key] = path;
  if (top === 'server' || top === 'dataDir' || top === 'durability') return true;
  if (top === 'store' || top === 'retention') return true;
  if (top === 'sources') return key === undefined || key === 'type' || key === 'token';
  if (top === 'destinations') return key === undefined || key === 'name';
  return false;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  // By line then column; problems without a position (the whole file) first.
  return problems.sort(
    (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
  );
}

/** Validates an already-parsed configuration object (e.g. the embedded defaults). */
export function validate(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: string,
  doc?: Document,
  lines?: LineCounter,
): RelayConfig {
  return check(relayConfigSchema, raw, env, file, doc, lines);
}

function check<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  env: Readonly<Record<string, string | undefined>>,
  file: string | undefined,
  doc: Document | undefined,
  lines: LineCounter | undefined,
  needs?: (path: readonly (string | number)[]) => boolean,
  out?: { input?: unknown },
): z.output<S> {
  const interpolationProblems: InterpolationProblem[] = [];
  const interpolated = interpolate(raw, env, interpolationProblems, [], needs);
  if (out) out.input = interpolated;
  const problems: ConfigProblem[] = interpolationProblems.map((p) => ({
    path: formatPath(p.path),
    ...locate(doc, lines, p.path),
    message: p.message,
  }));
  const result = schema.safeParse(interpolated);
  if (!result.success) {
    // A value already reported as a missing variable needs no second, derived complaint.
    const reported = new Set(problems.map((p) => p.path));
    problems.push(
      ...issuesToProblems(result.error.issues, doc, lines).filter((p) => !reported.has(p.path)),
    );
  }
  if (problems.length > 0) throw new ConfigError(sortProblems(problems), file);
  return result.data as z.output<S>;
}

function issuesToProblems(
  issues: readonly z.core.$ZodIssue[],
  doc: Document | undefined,
  lines: LineCounter | undefined,
): ConfigProblem[] {
  return issues.map((issue) => {
    let path = issue.path;
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...issue.path, issue.keys[0]!];
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    } else if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
      message = `${message} (check "${String(issue.discriminator)}")`;
    }
    return { path: formatPath(path), ...locate(doc, lines, path), message };
  });
}

/**
 * Reads and validates a configuration file (YAML or JSON); without a path, the embedded
 * defaults (HTTP on 127.0.0.1:8080, queues under ./.eventsinks/, one stdout destination).
 * Relative paths in a file (`dataDir`, a file destination's `path`) are relative to the file's
 * folder, so a configuration means the same wherever the command runs.
 * @throws ConfigError listing every problem, including an unreadable file.
 */
export function loadConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
  out?: { input?: unknown },
): RelayConfig {
  if (path === undefined) {
    if (out) out.input = {};
    return validate({}, env);
  }
  const config = parseConfig(readConfigText(path), env, path, out);
  const base = dirname(resolve(path));
  config.dataDir = relativeTo(base, config.dataDir);
  if (config.store.type === 'sqlite' && config.store.path !== undefined)
    config.store.path = relativeTo(base, config.store.path);
  for (const destination of config.destinations) {
    if (destination.type === 'file') destination.path = relativeTo(base, destination.path);
  }
  return config;
}

/**
 * Reads the parts of a configuration that the admin commands use ({@link parseAdminConfig});
 * without a path, the embedded defaults. `dataDir` is relative to the file, as in
 * {@link loadConfig}.
 * @throws ConfigError listing every problem in those parts.
 */
export function loadAdminConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): RelayAdminConfig {
  if (path === undefined) return check(relayAdminSchema, {}, env, undefined, undefined, undefined);
  const config = parseAdminConfig(readConfigText(path), env, path);
  const base = dirname(resolve(path));
  config.dataDir = relativeTo(base, config.dataDir);
  if (config.store.type === 'sqlite' && config.store.path !== undefined)
    config.store.path = relativeTo(base, config.store.path);
  return config;
}

/**
 * Validates one destination as the admin API receives it, with the schema and the messages of
 * the file's `destinations` entries. Paths are the body's own (`url`, `retry.maxAttempts`). No
 * `${VAR}` interpolation: the API must not read the relay's environment.
 * @throws ConfigError listing every problem.
 * @example
 * ```ts
 * const config = validateDestination({ name: 'orders', type: 'webhook', url: 'https://example.com/hook' });
 * ```
 */
export function validateDestination(raw: unknown): DestinationConfig {
  const result = destinationSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ConfigError(issuesToProblems(result.error.issues, undefined, undefined), undefined);
}

/** The text of a configuration file. @throws ConfigError when it cannot be read. */
export function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (error as Error).message;
    throw new ConfigError([{ path: '', message: `cannot read ${path}: ${why}` }], path);
  }
}

function relativeTo(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}
