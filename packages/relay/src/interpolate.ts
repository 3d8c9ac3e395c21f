// `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in configuration strings, so secrets come
// from the environment. A variable that is unset (and has no default) is an error naming the
// path in the file, never an empty string that would pass validation silently.

export interface InterpolationProblem {
  path: (string | number)[];
  message: string;
}

const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}|\$\$/g;

function interpolateString(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  path: (string | number)[],
  problems: InterpolationProblem[],
): string {
  return text.replace(
    PATTERN,
    (whole, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (whole === '$$') return '$';
      const value = env[name!];
      if (value !== undefined && value !== '') return value;
      if (op === ':-') return arg ?? '';
      if (op === ':?') {
        problems.push({ path, message: `\${${name}}: ${arg || 'required variable is not set'}` });
        return '';
      }
      if (value === '') return '';
      problems.push({
        path,
        message: `environment variable ${name} is not set (use \${${name}:-default} for a default)`,
      });
      return '';
    },
  );
}

/**
 * Returns a copy of `value` with every string interpolated; problems are collected. With
 * `needs`, only the strings at paths it accepts are interpolated (a command that signs nothing
 * needs no secret); the others are copied as they are.
 */
export function interpolate(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  problems: InterpolationProblem[],
  path: (string | number)[] = [],
  needs?: (path: readonly (string | number)[]) => boolean,
): unknown {
  if (typeof value === 'string') {
    return needs && !needs(path) ? value : interpolateString(value, env, path, problems);
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => interpolate(v, env, problems, [...path, i], needs));
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        interpolate(v, env, problems, [...path, k], needs),
      ]),
    );
  }
  return value;
}
