// `POST /admin/destinations/{name}/rotate-secret`: an edit of the destination's stored input
// form, kept apart from the routing so that it depends only on how a destination is changed.
// The registry stores and applies the change like any other API edit.
import { rotateSecretRequestSchema, type SigningConfig } from './schema.js';
import { rotateSigning } from './signing.js';

/** How {@link rotateSecret} reads and changes a destination (the registry provides it). */
export interface RotateSecretContext {
  /** Where destination `name` is declared; undefined when there is none. */
  origin(name: string): 'file' | 'api' | undefined;
  /**
   * Changes an API destination's stored input form with `edit` (given that form, secrets
   * included), validates, stores and applies the result. Serialised with every other change
   * of the destination, so nothing another change did is lost.
   */
  update(
    name: string,
    edit: (input: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<unknown>;
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

/** Aborts an update: the destination is not a webhook, so it has no secret to rotate. */
class NotAWebhook extends Error {
  override readonly name = 'NotAWebhook';
  constructor(readonly type: string) {
    super(`a ${type} destination has no signing secret`);
  }
}

/**
 * Rotates the signing secret of destination `name`: validates `body` (`{secret?, grace?}`, an
 * empty body is `{}`), makes the new `signing` ({@link rotateSigning}) from the stored one and
 * stores it through `context.update`. Its errors (a destination removed meanwhile, a change
 * made by another relay) propagate to the caller.
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
  const origin = context.origin(name);
  if (origin === undefined) {
    return { status: 404, body: { error: `no destination named ${JSON.stringify(name)}` } };
  }
  if (origin === 'file') {
    return {
      status: 409,
      body: {
        error: `destination ${JSON.stringify(name)} is declared in the config file; rotate its secret there (signing.secrets, each with its expiresAt) and reload`,
      },
    };
  }
  let rotated: ReturnType<typeof rotateSigning> | undefined;
  try {
    await context.update(name, (input) => {
      // Thrown, not returned unchanged: storing the same form would still replace the destination.
      if (input['type'] !== 'webhook') throw new NotAWebhook(String(input['type']));
      rotated = rotateSigning(input['signing'] as SigningConfig | undefined, {
        now: (context.now ?? Date.now)(),
        grace,
        secret,
      });
      return { ...input, signing: rotated.signing };
    });
  } catch (error) {
    if (!(error instanceof NotAWebhook)) throw error;
    return {
      status: 400,
      body: {
        error: `destination ${JSON.stringify(name)} is a ${error.type} destination: only webhook destinations have a signing secret`,
      },
    };
  }
  if (rotated === undefined) throw new Error('unreachable: update did not call edit');
  return { status: 200, body: { secret: rotated.secret, previous: rotated.previous } };
}
