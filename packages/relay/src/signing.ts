// Secret rotation for webhook destinations. A destination's `signing` holds its secrets (the
// single `secret`, which never expires, and `secrets`, each until its `expiresAt`); a request
// is signed with every secret still valid, so a receiver holding the old secret and one
// holding the new both verify it while they switch (Standard Webhooks allows several
// space-separated signatures). Pure functions over the configuration's input form, so the
// admin API can store the rotated `signing` in the destination's spec as it is.
import { randomBytes } from 'node:crypto';
import type { SigningConfig } from './schema.js';

/** One secret of a destination, its expiry parsed: what a WebhookClient signs with. */
export interface SigningKey {
  /** The `whsec_…` secret. */
  secret: string;
  /** Ms since the epoch from which it no longer signs; absent: it signs for ever. */
  expiresAt?: number;
}

/** The grace period of {@link rotateSigning} when none is given: 24 hours, in ms. */
export const DEFAULT_ROTATION_GRACE = 24 * 60 * 60 * 1000;

const SECRET = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

/**
 * A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64 (a 256-bit key, the
 * size of the HMAC-SHA256 block's hash, as Svix and the Standard Webhooks tools make them).
 *
 * @example
 * ```ts
 * const secret = generateSecret(); // 'whsec_…' (44 base64 characters)
 * ```
 */
export function generateSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * The secrets of a `signing`, with their expiry in ms: the single `secret` first (it never
 * expires), then `secrets` in their order. Validated by the schema already; an `expiresAt`
 * that is not a date is refused here too, so a spec that skipped the schema cannot sign
 * with a secret meant to have expired.
 *
 * @throws TypeError naming the entry whose `expiresAt` is not a date.
 * @example
 * ```ts
 * signingKeys({ secrets: [{ secret: 'whsec_…', expiresAt: '2026-12-03T00:00:00Z' }] });
 * // [{ secret: 'whsec_…', expiresAt: 1796256000000 }]
 * ```
 */
export function signingKeys(signing: SigningConfig | undefined): SigningKey[] {
  if (signing === undefined) return [];
  const keys: SigningKey[] = [];
  if (signing.secret !== undefined) keys.push({ secret: signing.secret });
  (signing.secrets ?? []).forEach((entry, i) => {
    if (entry.expiresAt === undefined) {
      keys.push({ secret: entry.secret });
      return;
    }
    const expiresAt = Date.parse(entry.expiresAt);
    if (Number.isNaN(expiresAt)) {
      throw new TypeError(
        `Expected \`signing.secrets[${i}].expiresAt\` to be an ISO-8601 date and time, got ${JSON.stringify(entry.expiresAt)}`,
      );
    }
    keys.push({ secret: entry.secret, expiresAt });
  });
  return keys;
}

/** What {@link secretsAt} chose. */
export interface ActiveSecrets {
  /** The secrets to sign with, in the order of the keys; never empty when there are keys. */
  secrets: string[];
  /**
   * Every key had expired: `secrets` is the one that expired last. Never sending a request
   * unsigned is safer than sending it unverifiable to any receiver: the caller warns.
   */
  allExpired: boolean;
}

/**
 * The secrets that sign a request at `now`: every key not yet expired (`now < expiresAt`).
 * When every key has expired, the one that expired last, with `allExpired`.
 *
 * @example
 * ```ts
 * secretsAt([{ secret: a }, { secret: b, expiresAt: Date.now() - 1 }], Date.now());
 * // { secrets: [a], allExpired: false }
 * ```
 */
export function secretsAt(keys: readonly SigningKey[], now: number): ActiveSecrets {
  const active = keys.filter((key) => key.expiresAt === undefined || now < key.expiresAt);
  if (active.length > 0 || keys.length === 0) {
    return { secrets: active.map((key) => key.secret), allExpired: false };
  }
  let last = keys[0]!;
  for (const key of keys) if (key.expiresAt! > last.expiresAt!) last = key;
  return { secrets: [last.secret], allExpired: true };
}

/** Options of {@link rotateSigning}. */
export interface RotateSigningOptions {
  /** The time of the rotation, in ms since the epoch. */
  now: number;
  /** How long the old secrets keep signing alongside the new one, in ms. */
  grace: number;
  /** The new secret; by default a fresh one ({@link generateSecret}). */
  secret?: string | undefined;
}

/** What {@link rotateSigning} returns. */
export interface RotatedSigning {
  /** The new `signing`, to store in place of the old: the new secret first, without expiry. */
  signing: SigningConfig;
  /** The new secret (to show once to whoever rotated it). */
  secret: string;
  /** When each old secret still signing stops, as ISO-8601 text, in the order of `signing`. */
  previous: { expiresAt: string }[];
}

/**
 * Rotates a webhook destination's signing secret: the new secret signs from `now` on (for
 * ever), each old secret still valid keeps signing until `now + grace` (or its own earlier
 * expiry), and secrets already expired are dropped. The single-`secret` form becomes a
 * `secrets` list. Rotating to a secret already in the list makes it the unexpiring one.
 *
 * @param signing - the destination's current `signing` (input form), or `undefined` when it
 *   signed nothing yet.
 * @throws TypeError if `secret` is not a `whsec_` secret (the message never shows it);
 *   RangeError if `now` or `grace` is not a finite number of ms, or `grace` is negative.
 * @example
 * ```ts
 * const { signing, secret } = rotateSigning(destination.signing, {
 *   now: Date.now(),
 *   grace: DEFAULT_ROTATION_GRACE,
 * });
 * // signing: { secrets: [{ secret }, { secret: old, expiresAt: '…24 h from now' }] }
 * ```
 */
export function rotateSigning(
  signing: SigningConfig | undefined,
  options: RotateSigningOptions,
): RotatedSigning {
  const { now, grace } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new RangeError(`Expected \`now\` to be ms since the epoch, got ${String(now)}`);
  }
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
    throw new RangeError(
      `Expected \`grace\` to be a non-negative number of ms, got ${String(grace)}`,
    );
  }
  const secret = options.secret ?? generateSecret();
  if (typeof secret !== 'string' || !SECRET.test(secret) || (secret.length - 6) % 4 === 1) {
    throw new TypeError(
      `Expected \`secret\` to be a Standard Webhooks secret: "whsec_" followed by base64; got a ${typeof secret === 'string' ? `${secret.length}-character string` : typeof secret} that is not`,
    );
  }
  const until = now + grace;
  const kept: { secret: string; expiresAt: string }[] = [];
  for (const key of signingKeys(signing)) {
    if (key.secret === secret) continue;
    if (key.expiresAt !== undefined && key.expiresAt <= now) continue; // expired: dropped
    const expiresAt = Math.min(key.expiresAt ?? until, until);
    if (expiresAt <= now) continue; // no grace (`0s`): the old secret stops at once
    // The same old secret twice (as `secret` and in `secrets`): keep it once, latest expiry.
    const twin = kept.find((entry) => entry.secret === key.secret);
    if (twin) {
      if (Date.parse(twin.expiresAt) < expiresAt)
        twin.expiresAt = new Date(expiresAt).toISOString();
      continue;
    }
    kept.push({ secret: key.secret, expiresAt: new Date(expiresAt).toISOString() });
  }
  return {
    signing: { secrets: [{ secret }, ...kept] },
    secret,
    previous: kept.map(({ expiresAt }) => ({ expiresAt })),
  };
}
