// Loading the relay's configuration: YAML (or JSON) → ${VAR} interpolation → schema. Every
// problem is reported with its path and, when it comes from a file, its line and column.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type * as z from 'zod';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import { relayConfigSchema, type RelayConfig } from './schema.js';

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
): RelayConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          path: '',
          ...(pos ? { line: pos.line, column: pos.col } : {}),
          message: e.message.split('\n')[0] ?? e.message,
        };
      }),
      file,
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  return validate(raw, env, file, doc, lines);
}

/** Validates an already-parsed configuration object (e.g. the embedded defaults). */
export function validate(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>> = process.env,
  file?: string,
  doc?: Document,
  lines?: LineCounter,
): RelayConfig {
  const interpolationProblems: InterpolationProblem[] = [];
  const interpolated = interpolate(raw, env, interpolationProblems);
  const problems: ConfigProblem[] = interpolationProblems.map((p) => ({
    path: formatPath(p.path),
    ...locate(doc, lines, p.path),
    message: p.message,
  }));
  const result = relayConfigSchema.safeParse(interpolated);
  if (!result.success) {
    // A value already reported as a missing variable needs no second, derived complaint.
    const reported = new Set(problems.map((p) => p.path));
    problems.push(
      ...issuesToProblems(result.error.issues, doc, lines).filter((p) => !reported.has(p.path)),
    );
  }
  if (problems.length > 0) throw new ConfigError(problems, file);
  return result.data!;
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
 * @throws ConfigError listing every problem, including an unreadable file.
 */
export function loadConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): RelayConfig {
  if (path === undefined) return validate({}, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      [{ path: '', message: `cannot read ${path}: ${(error as Error).message}` }],
      path,
    );
  }
  return parseConfig(text, env, path);
}
