// `POST /admin/destinations/{name}/rotate-secret`: a read-modify-write of the destination's
// spec (its input form, as stored), kept apart from the routing so that it depends only on how
// a spec is read and written. The registry applies the stored change like any other API edit.
import { DestinationSpecConflictError } from './store/Store.js';
import { rotateSecretRequestSchema, type SigningConfig } from './schema.js';
import { rotateSigning } from './signing.js';

/** A destination as the rotation sees it: where it comes from and its stored input form. */
export interface RotatableDestination {
  origin: 'file' | 'api';
  /** The input form (as the file or the API gave it), secrets included. */
  config: Record<string, unknown>;
  /** The spec's version (api destinations): the optimistic lock of the write. */
  version: number | null;
}

/** How {@link rotateSecret} reads and writes a destination. */
export interface RotateSecretContext {
  /** The destination named so, or undefined when there is none. */
  get(name: string): Promise<RotatableDestination | undefined>;
  /**
   * Stores `config` as the destination's new input form when its version is still
   * `expectedVersion` (else rejects with DestinationSpecConflictError), and applies it.
   */
  put(name: string, config: Record<string, unknown>, expectedVersion: number): Promise<unknown>;
  /** The clock, ms since the epoch; default `Date.now`. */
  now?: () => number;
}

/** One problem of a request body, as the admin API lists them. */
export interface RequestProblem {
  path: string;
  message: string;
}

/** The answer: a status and its JSON body. */
export interface RotateSecretAnswer {
  status: 200 | 400 | 404 | 409;
  body:
    | { secret: string; previous: { expiresAt: string }[] }
    | { error: string; problems?: RequestProblem[] };
}

/** A concurrent edit of the same spec is retried this many times before a 409. */
const ATTEMPTS = 5;

/**
 * Rotates the signing secret of destination `name`: validates `body` (`{secret?, grace?}`, an
 * empty body is `{}`), makes the new `signing` ({@link rotateSigning}) and stores it. A spec
 * changed meanwhile by another request or relay is read again and rotated again, so nothing
 * that other change did is lost.
 *
 * @returns 200 `{secret, previous}`; 400 naming the bad field (or a destination that is not a
 *   webhook); 404 for an unknown name; 409 for a file destination (rotated in the file).
 * @example
 * ```ts
 * const answer = await rotateSecret(context, 'billing', { grace: '48h' });
 * reply(res, answer.status, answer.body);
 * ```
 */
export async function rotateSecret(
  context: RotateSecretContext,
  name: string,
  body: unknown,
): Promise<RotateSecretAnswer> {
  const parsed = rotateSecretRequestSchema.safeParse(body ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      path:
        issue.code === 'unrecognized_keys'
          ? issue.keys.join(', ')
          : issue.path.map(String).join('.') || '(body)',
      message:
        issue.code === 'unrecognized_keys'
          ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (expected secret, grace)`
          : issue.message,
    }));
    return {
      status: 400,
      body: {
        error: `invalid rotate-secret request: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        problems,
      },
    };
  }
  const { secret, grace } = parsed.data;
  for (let attempt = 1; ; attempt++) {
    const destination = await context.get(name);
    if (!destination) {
      return { status: 404, body: { error: `no destination named ${JSON.stringify(name)}` } };
    }
    if (destination.origin === 'file') {
      return {
        status: 409,
        body: {
          error: `destination ${JSON.stringify(name)} is declared in the config file; rotate its secret there (signing.secrets, each with its expiresAt) and reload`,
        },
      };
    }
    const { config } = destination;
    if (config['type'] !== 'webhook') {
      return {
        status: 400,
        body: {
          error: `destination ${JSON.stringify(name)} is a ${String(config['type'])} destination: only webhook destinations have a signing secret`,
        },
      };
    }
    const rotated = rotateSigning(config['signing'] as SigningConfig | undefined, {
      now: (context.now ?? Date.now)(),
      grace,
      secret,
    });
    try {
      await context.put(name, { ...config, signing: rotated.signing }, destination.version ?? 0);
    } catch (error) {
      if (error instanceof DestinationSpecConflictError && attempt < ATTEMPTS) continue;
      if (error instanceof DestinationSpecConflictError) {
        return { status: 409, body: { error: error.message } };
      }
      throw error;
    }
    return { status: 200, body: { secret: rotated.secret, previous: rotated.previous } };
  }
}
