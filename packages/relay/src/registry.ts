// The relay's running destinations, changed at runtime: the file's (from the configuration,
// reconciled on reload) and the admin API's (stored as specs in the store, so every relay on a
// shared PostgreSQL store runs the same ones). A change replaces a destination's Destination
// object: the old dispatcher stops starting attempts and finishes those in flight, then a new
// one starts from the store, so nothing is lost and nothing is sent twice by the change itself.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { DestinationStatus } from './admin.js';
import { ConfigError, validateDestination, type ConfigProblem } from './config.js';
import { Destination, type DestinationContext } from './destinations.js';
import type { DestinationConfig } from './schema.js';
import { DestinationSpecConflictError, type DestinationSpec } from './store/Store.js';

/** Where a destination is declared: the configuration file, or the admin API (the store). */
export type DestinationOrigin = 'file' | 'api';

/** A destination as `GET /admin/destinations` lists it. */
export interface RegistryStatus extends DestinationStatus {
  origin: DestinationOrigin;
  eventTypes: string[] | null;
}

/** A destination as `GET /admin/destinations/{name}` shows it: secrets redacted. */
export interface RegistryDetail extends RegistryStatus {
  /** The spec's version (the optimistic lock of the store); null for a file destination. */
  version: number | null;
  /** The input form (as the file would hold it), every `whsec_` secret redacted. */
  config: Record<string, unknown>;
}

/** What {@link DestinationRegistry.reload} changed. */
export interface ReloadOutcome {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: number;
}

/** A file destination as the reload hands it over: validated, and its input form. */
export interface FileDestination {
  config: DestinationConfig;
  input: Record<string, unknown>;
}

/** A registry failure the admin API answers with `status`. */
export abstract class RegistryError extends Error {
  /** The HTTP status the admin API answers with. */
  abstract readonly status: number;
  /** Stable code. */
  abstract readonly code: string;
}

/** No destination of that name (404). */
export class DestinationNotFoundError extends RegistryError {
  override readonly name = 'DestinationNotFoundError';
  readonly status = 404;
  readonly code = 'ERR_DESTINATION_NOT_FOUND';
  constructor(
    readonly destination: string,
    have: readonly string[],
  ) {
    super(
      `no destination named ${JSON.stringify(destination)} (have: ${have.join(', ') || 'none'})`,
    );
  }
}

/** A destination of that name exists already (409). */
export class DestinationExistsError extends RegistryError {
  override readonly name = 'DestinationExistsError';
  readonly status = 409;
  readonly code = 'ERR_DESTINATION_EXISTS';
  constructor(
    readonly destination: string,
    origin: DestinationOrigin,
    options?: ErrorOptions,
  ) {
    super(
      origin === 'file'
        ? `destination ${JSON.stringify(destination)} exists already (declared in the config file)`
        : `destination ${JSON.stringify(destination)} exists already (created over the API): change it with PUT or PATCH`,
      options,
    );
  }
}

/** The API may not change or delete a destination of the configuration file (409). */
export class FileDestinationError extends RegistryError {
  override readonly name = 'FileDestinationError';
  readonly status = 409;
  readonly code = 'ERR_FILE_DESTINATION';
  constructor(readonly destination: string) {
    super(
      `destination ${JSON.stringify(destination)} is declared in the config file; change it there (or disable it over the API)`,
    );
  }
}

/** Deleting a destination that still has pending events, without `force` (409). */
export class DestinationHasPendingError extends RegistryError {
  override readonly name = 'DestinationHasPendingError';
  readonly status = 409;
  readonly code = 'ERR_DESTINATION_PENDING';
  constructor(
    readonly destination: string,
    readonly pending: number,
  ) {
    super(
      `destination ${JSON.stringify(destination)} has ${pending} pending event${pending === 1 ? '' : 's'}: ` +
        'deliver them first, or delete with ?force=true to move them to the dead letter (reason "deleted")',
    );
  }
}

/** The spec changed meanwhile (another request or relay), or a body's name is not the path's (409 / 400). */
export class DestinationConflictError extends RegistryError {
  override readonly name = 'DestinationConflictError';
  readonly status = 409;
  readonly code = 'ERR_DESTINATION_CONFLICT';
}

/** An invalid destination body (400): the problems, as the file's validation words them. */
export class DestinationInvalidError extends RegistryError {
  override readonly name = 'DestinationInvalidError';
  readonly status = 400;
  readonly code = 'ERR_DESTINATION_INVALID';
  constructor(
    readonly problems: { path: string; message: string }[],
    options?: ErrorOptions,
  ) {
    super(
      `invalid destination: ${problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; ')}`,
      options,
    );
  }
}

/** A reloaded configuration file that is invalid (400): nothing was changed. */
export class ReloadInvalidError extends RegistryError {
  override readonly name = 'ReloadInvalidError';
  readonly status = 400;
  readonly code = 'ERR_RELOAD_INVALID';
  constructor(
    readonly problems: { path: string; message: string }[],
    file: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `the configuration${file !== undefined ? ` ${file}` : ''} is invalid; nothing was changed: ` +
        problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('; '),
      options,
    );
  }
}

interface Entry {
  destination: Destination;
  origin: DestinationOrigin;
  /** The input form, secrets included (never answered nor logged as is). */
  input: Record<string, unknown>;
  version: number | null;
}

/** Options of {@link DestinationRegistry}. */
export interface RegistryOptions {
  context: DestinationContext;
  /** Makes a destination (tests give their own targets); by default `new Destination`. */
  make?: (config: DestinationConfig, context: DestinationContext) => Destination;
  /** How often the specs are read again (other relays' changes, lost notifications); ms. */
  resync?: number;
  /** The array to keep the running destinations in (the relay's own, read by its metrics). */
  list?: Destination[];
}

/** The error of the attempt record of a delivery moved to the dead letter by a forced delete. */
export const DELETED_REASON = 'deleted: the destination was deleted over the admin API';

/** How often a relay re-reads the store's specs by default. */
export const RESYNC_MS = 2000;

/** `whsec_…abcd`: a secret as answers show it. */
export function redactSecret(secret: string): string {
  return `whsec_…${secret.slice(-4)}`;
}

const SECRET = /^whsec_[A-Za-z0-9+/=]+$/;

// Header values that carry credentials are secrets too.
const SENSITIVE_HEADER =
  /^(authorization|proxy-authorization|cookie)$|token|secret|key|password|auth/i;

/** A credential header value as answers show it: `…` and its last 4 characters (long ones only). */
export function redactHeader(value: string): string {
  return value.length >= 16 ? `…${value.slice(-4)}` : '…';
}

function redactHeaders(headers: unknown): unknown {
  if (!isObject(headers)) return redact(headers);
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) =>
      typeof v === 'string' && SENSITIVE_HEADER.test(k) ? [k, redactHeader(v)] : [k, redact(v)],
    ),
  );
}

/**
 * The input form with every `whsec_` secret redacted (see {@link redactSecret}), and the
 * values of credential headers (`authorization`, `x-api-key`, … see {@link redactHeader}).
 */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return SECRET.test(value) ? redactSecret(value) : value;
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === 'headers' ? redactHeaders(v) : redact(v)]),
    );
  }
  return value;
}

// A redaction keeps 4 characters of a secret: two secrets can share one, so such a value is
// ambiguous (null) unless its place in the body says which secret it stands for.
function secretsOf(value: unknown, into: Map<string, string | null>): Map<string, string | null> {
  if (typeof value === 'string') {
    if (SECRET.test(value)) {
      const shown = redactSecret(value);
      const known = into.get(shown);
      into.set(shown, known === undefined || known === value ? value : null);
    }
  } else if (Array.isArray(value)) {
    for (const item of value) secretsOf(item, into);
  } else if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) secretsOf(item, into);
  }
  return into;
}

/** The member `key` of `value`, when it is an object or an array. */
const memberOf = (value: unknown, key: string | number): unknown =>
  typeof value === 'object' && value !== null
    ? (value as Record<string | number, unknown>)[key]
    : undefined;

/**
 * `body` with every redacted value that `stored` has put back to the secret it stands for: a
 * `whsec_…` wherever it is (the secret at the same place in `stored` first, so two secrets
 * with the same last characters keep their own), a credential header's value under the same
 * header name. A redaction that could stand for two secrets and is not at the place of
 * either is left as it is, and fails validation: a secret is never swapped for another.
 */
export function unredact(body: unknown, stored: unknown): unknown {
  const secrets = secretsOf(stored, new Map());
  const storedHeaders = isObject(stored) && isObject(stored['headers']) ? stored['headers'] : {};
  const walk = (value: unknown, there: unknown, top: boolean): unknown => {
    if (typeof value === 'string') {
      if (typeof there === 'string' && SECRET.test(there) && redactSecret(there) === value) {
        return there;
      }
      return secrets.get(value) ?? value;
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, memberOf(there, i), false));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => {
          if (top && k === 'headers' && isObject(v)) {
            return [
              k,
              Object.fromEntries(
                Object.entries(v).map(([name, header]) => {
                  const before = storedHeaders[name];
                  return typeof before === 'string' &&
                    SENSITIVE_HEADER.test(name) &&
                    header === redactHeader(before)
                    ? [name, before]
                    : [name, walk(header, before, false)];
                }),
              ),
            ];
          }
          return [k, walk(v, memberOf(there, k), false)];
        }),
      );
    }
    return value;
  };
  return walk(body, stored, true);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** RFC 7386 JSON merge patch: `null` deletes a member, objects merge, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** A body checked with the file's destination schema. @throws DestinationInvalidError */
function check(body: unknown): DestinationConfig {
  try {
    return validateDestination(body);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new DestinationInvalidError(
        error.problems.map((p: ConfigProblem) => ({ path: p.path, message: p.message })),
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * The running destinations. {@link DestinationRegistry.list} is the live array that ingest,
 * metrics and the admin API read (changed in place). Every change runs one at a time; one that
 * adds, replaces or removes a Destination object does so while no ingest is between choosing
 * its destinations and handing them the stored events (see {@link DestinationRegistry.admit}).
 *
 * @example
 * ```ts
 * const registry = new DestinationRegistry({ context });
 * registry.addFile(config.destinations[0], input.destinations[0]);
 * await registry.startAll();
 * await registry.create({ name: 'orders', type: 'webhook', url: 'https://example.com/hook' });
 * ```
 */
export class DestinationRegistry {
  /** The running destinations, in order (file first, then API ones by name); changed in place. */
  readonly list: Destination[];
  readonly #entries = new Map<string, Entry>();
  readonly #context: DestinationContext;
  readonly #make: (config: DestinationConfig, context: DestinationContext) => Destination;
  readonly #log: Logger;
  readonly #resync: number;
  #queue: Promise<unknown> = Promise.resolve();
  #active = 0;
  #gate: Promise<void> | undefined;
  #idle: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  // The first sync, at start: what it finds is not another relay's change.
  #starting = false;
  // Spec versions found invalid (logged once each), by name.
  readonly #invalid = new Map<string, number>();

  constructor(options: RegistryOptions) {
    this.#context = options.context;
    this.list = options.list ?? [];
    this.#make = options.make ?? ((config, context) => new Destination(config, context));
    this.#log = options.context.logger.child({ component: 'registry' });
    this.#resync = options.resync ?? RESYNC_MS;
  }

  /** The running destination of `name`. */
  get(name: string): Destination | undefined {
    return this.#entries.get(name)?.destination;
  }

  /** Where `name` is declared; undefined when there is no such destination. */
  origin(name: string): DestinationOrigin | undefined {
    return this.#entries.get(name)?.origin;
  }

  /** Adds a file destination without starting it (the relay starts them all with {@link startAll}). */
  addFile(config: DestinationConfig, input: Record<string, unknown>): Destination {
    const destination = this.#make(config, this.#context);
    this.#entries.set(config.name, { destination, origin: 'file', input, version: null });
    this.list.push(destination);
    return destination;
  }

  /** Starts every destination added so far. */
  async startAll(): Promise<void> {
    for (const d of this.list) await d.start();
  }

  /**
   * Starts the API destinations of the store and follows its changes: `subscribeSpecs` and a
   * re-read every {@link RESYNC_MS}.
   */
  async follow(): Promise<void> {
    this.#starting = true;
    try {
      await this.sync();
    } finally {
      this.#starting = false;
    }
    this.#unsubscribe = this.#context.store.subscribeSpecs(() => this.#syncSoon());
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#syncSoon();
      this.#schedule();
    }, this.#resync);
    this.#timer.unref();
  }

  #syncSoon(): void {
    if (this.#closed) return;
    this.sync().catch((error: unknown) => {
      this.#log.error({ err: error }, 'reading the destination specs failed; trying again soon');
    });
  }

  /**
   * Ingest calls this before choosing its destinations and {@link leave} once it has handed
   * them the stored events: a change of the list waits for those in between, and ingests wait
   * while it is made (a few store reads, not an attempt in flight).
   */
  async admit(): Promise<void> {
    while (this.#gate !== undefined) await this.#gate;
    this.#active++;
  }

  /** See {@link admit}. */
  leave(): void {
    this.#active--;
    if (this.#active === 0) this.#idle?.();
  }

  // Runs `work` with no ingest between admit and leave.
  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    while (this.#gate !== undefined) await this.#gate;
    this.#gate = gate;
    try {
      if (this.#active > 0) {
        await new Promise<void>((resolve) => (this.#idle = resolve));
        this.#idle = undefined;
      }
      return await work();
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  // One change at a time, in call order; a failure does not stop the next.
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #names(): string[] {
    return [...this.#entries.keys()];
  }

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw new DestinationNotFoundError(name, this.#names());
    return entry;
  }

  /** The status of `name` with its origin and event types. @throws DestinationNotFoundError */
  status(name: string): RegistryStatus {
    return this.#status(this.#entry(name).destination);
  }

  /** Every destination's status, with its origin and event types. */
  statuses(): RegistryStatus[] {
    return this.list.map((d) => this.#status(d));
  }

  #status(destination: Destination): RegistryStatus {
    const entry = this.#entries.get(destination.name);
    return {
      ...destination.status(),
      origin: entry?.origin ?? 'file',
      eventTypes: destination.config.eventTypes ?? null,
    };
  }

  /** A destination's status, version and redacted input form. @throws DestinationNotFoundError */
  detail(name: string): RegistryDetail {
    const entry = this.#entry(name);
    return {
      ...this.#status(entry.destination),
      version: entry.version,
      config: redact(entry.input) as Record<string, unknown>,
    };
  }

  /**
   * Creates an API destination: validated like the file's, stored (so every relay on the store
   * runs it), started. @throws DestinationInvalidError, DestinationExistsError
   */
  create(body: unknown): Promise<RegistryDetail> {
    return this.#serial(async () => {
      const config = check(body);
      const input = body as Record<string, unknown>;
      const existing = this.#entries.get(config.name);
      if (existing !== undefined) throw new DestinationExistsError(config.name, existing.origin);
      let spec: DestinationSpec;
      try {
        spec = await this.#context.store.putDestinationSpec(config.name, input, 0);
      } catch (error) {
        if (error instanceof DestinationSpecConflictError) {
          throw new DestinationExistsError(config.name, 'api', { cause: error });
        }
        throw error;
      }
      await this.#add(config, input, 'api', spec.version);
      this.#log.info(
        { destination: config.name, type: config.type, version: spec.version },
        'destination created over the API',
      );
      return this.detail(config.name);
    });
  }

  /**
   * Replaces an API destination with `body` (a full destination; its `name`, if given, must be
   * `name`). A redacted secret sent back keeps the stored secret it stands for.
   * @throws DestinationNotFoundError, FileDestinationError, DestinationInvalidError, DestinationConflictError
   */
  replace(name: string, body: unknown): Promise<RegistryDetail> {
    return this.#serial(async () => {
      const entry = this.#apiEntry(name);
      if (isObject(body) && body['name'] !== undefined && body['name'] !== name) {
        throw new DestinationInvalidError([
          {
            path: 'name',
            message: `must be the name in the path (${JSON.stringify(name)}), got ${JSON.stringify(body['name'])}`,
          },
        ]);
      }
      const withName = isObject(body) ? { ...body, name } : body;
      return this.#change(entry, unredact(withName, entry.input), 'replaced');
    });
  }

  /**
   * Applies a JSON merge patch (RFC 7386) to an API destination's input form; a `signing`
   * absent from the patch keeps the stored secrets. See {@link replace}.
   */
  patch(name: string, patch: unknown): Promise<RegistryDetail> {
    return this.#serial(async () => {
      const entry = this.#apiEntry(name);
      if (!isObject(patch)) {
        throw new DestinationInvalidError([
          { path: '', message: 'expected a JSON merge patch (an object)' },
        ]);
      }
      if (patch['name'] !== undefined && patch['name'] !== name) {
        throw new DestinationInvalidError([
          {
            path: 'name',
            message: `a destination cannot be renamed (it is ${JSON.stringify(name)})`,
          },
        ]);
      }
      const merged = mergePatch(entry.input, unredact(patch, entry.input));
      return this.#change(entry, merged, 'patched');
    });
  }

  /**
   * Changes an API destination's input form with `edit`, which is given the stored form
   * (secrets included, a copy) and returns the new one; validated, stored and applied as
   * {@link replace} does, in turn with every other change. What `edit` throws rejects the
   * update and changes nothing. Used by `POST /admin/destinations/{name}/rotate-secret`.
   * @throws DestinationNotFoundError, FileDestinationError, DestinationInvalidError, DestinationConflictError
   */
  update(
    name: string,
    edit: (input: Record<string, unknown>) => Record<string, unknown>,
    what = 'updated',
  ): Promise<RegistryDetail> {
    return this.#serial(async () => {
      const entry = this.#apiEntry(name);
      return this.#change(entry, { ...edit(structuredClone(entry.input)), name }, what);
    });
  }

  /** The input form of `name`, secrets included (for routes that need them; never answer it). */
  input(name: string): Record<string, unknown> {
    return structuredClone(this.#entry(name).input);
  }

  #apiEntry(name: string): Entry {
    const entry = this.#entry(name);
    if (entry.origin === 'file') throw new FileDestinationError(name);
    return entry;
  }

  async #change(entry: Entry, body: unknown, what: string): Promise<RegistryDetail> {
    const config = check(body);
    const input = body as Record<string, unknown>;
    let spec: DestinationSpec;
    try {
      spec = await this.#context.store.putDestinationSpec(
        config.name,
        input,
        entry.version ?? undefined,
      );
    } catch (error) {
      if (error instanceof DestinationSpecConflictError) {
        throw new DestinationConflictError(`${error.message}; read it again and retry`, {
          cause: error,
        });
      }
      throw error;
    }
    await this.#swap(entry, config, input, spec.version);
    this.#log.info(
      { destination: config.name, type: config.type, version: spec.version },
      `destination ${what} over the API`,
    );
    return this.detail(config.name);
  }

  /**
   * Deletes an API destination. With pending events: {@link DestinationHasPendingError} unless
   * `force`, which moves them to the dead letter with reason `deleted`.
   * @throws DestinationNotFoundError, FileDestinationError, DestinationHasPendingError
   */
  remove(name: string, force: boolean): Promise<{ deadLettered: number }> {
    return this.#serial(async () => {
      const entry = this.#apiEntry(name);
      const store = this.#context.store;
      await this.#exclusive(async () => {
        const { pending } = await store.counts(name);
        if (pending > 0 && !force) throw new DestinationHasPendingError(name, pending);
        this.#drop(name);
      });
      // The other relays stop it on hearing of the spec's deletion.
      await store.deleteDestinationSpec(name);
      // Its in-flight attempts end (and are recorded) before the rest is moved.
      await entry.destination.close();
      const deadLettered = await this.#deadLetterPending(name);
      this.#log.info({ destination: name, deadLettered }, 'destination deleted over the API');
      const { pending } = await store.counts(name);
      // Deliveries another relay holds (in flight there) cannot be moved until it lets go.
      if (pending > 0) this.#sweepLater(name, pending);
      return { deadLettered };
    });
  }

  async #deadLetterPending(name: string): Promise<number> {
    let moved = 0;
    for (;;) {
      const seqs = await this.#context.store.overflow(name, 1000, new Set(), DELETED_REASON);
      moved += seqs.length;
      if (seqs.length < 1000) return moved;
    }
  }

  // Retries the move every second while other relays' leases may still hold some (at most
  // twice the lease timeout); what is left after that is logged.
  #sweepLater(name: string, pending: number): void {
    const store = this.#context.config.store;
    const deadline = Date.now() + 2 * (store.type === 'postgres' ? store.leaseTimeout : 0) + 5000;
    this.#log.warn(
      { destination: name, pending },
      'deleted destination: some pending deliveries are held by another relay; moving them to the dead letter once it lets go',
    );
    const sweep = (): void => {
      if (this.#closed) return;
      void (async () => {
        try {
          // Created again meanwhile: its deliveries are its own again.
          if (this.#entries.has(name)) return;
          await this.#deadLetterPending(name);
          const left = (await this.#context.store.counts(name)).pending;
          if (left === 0) return;
          if (Date.now() > deadline) {
            this.#log.error(
              { destination: name, pending: left },
              'deleted destination: pending deliveries could not be moved to the dead letter',
            );
            return;
          }
        } catch (error) {
          this.#log.error({ err: error, destination: name }, 'moving pending deliveries failed');
        }
        setTimeout(sweep, 1000).unref();
      })();
    };
    setTimeout(sweep, 1000).unref();
  }

  /**
   * Reconciles the file's destinations with `files` (a reloaded, valid configuration): adds the
   * new ones, replaces the changed ones, removes the missing ones (their pending deliveries stay
   * in the store, logged with the count).
   * @throws ReloadInvalidError when a new file destination has an API destination's name (nothing changed)
   */
  reload(files: readonly FileDestination[]): Promise<ReloadOutcome> {
    return this.#serial(async () => {
      const clash = files.flatMap((f, i) =>
        this.#entries.get(f.config.name)?.origin === 'api'
          ? [
              {
                path: `destinations[${i}].name`,
                message: `destination "${f.config.name}" exists already (created over the API): delete it there, or name this one differently`,
              },
            ]
          : [],
      );
      if (clash.length > 0) throw new ReloadInvalidError(clash, undefined);
      const outcome: ReloadOutcome = { added: [], changed: [], removed: [], unchanged: 0 };
      const wanted = new Set(files.map((f) => f.config.name));
      for (const [name, entry] of [...this.#entries]) {
        if (entry.origin !== 'file' || wanted.has(name)) continue;
        await this.#retire(name, entry);
        const { pending } = await this.#context.store.counts(name);
        this.#log.warn(
          { destination: name, pending },
          pending > 0
            ? `destination removed from the config file; its ${pending} pending events stay in the store (delivered if it comes back)`
            : 'destination removed from the config file',
        );
        outcome.removed.push(name);
      }
      for (const file of files) {
        const entry = this.#entries.get(file.config.name);
        if (entry === undefined) {
          await this.#add(file.config, file.input, 'file', null);
          this.#log.info({ destination: file.config.name }, 'destination added by a reload');
          outcome.added.push(file.config.name);
        } else if (!isDeepStrictEqual(entry.destination.config, file.config)) {
          await this.#swap(entry, file.config, file.input, null);
          this.#log.info({ destination: file.config.name }, 'destination changed by a reload');
          outcome.changed.push(file.config.name);
        } else {
          entry.input = file.input;
          outcome.unchanged++;
        }
      }
      return outcome;
    });
  }

  /**
   * Brings the API destinations in line with the store's specs (changes of other relays):
   * starts new ones, replaces changed ones (by version), stops deleted ones.
   */
  sync(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      const specs = await this.#context.store.listDestinationSpecs();
      const seen = new Set<string>();
      for (const spec of specs) {
        seen.add(spec.name);
        const entry = this.#entries.get(spec.name);
        if (entry?.origin === 'file') {
          if (this.#invalid.get(spec.name) !== spec.version) {
            this.#invalid.set(spec.name, spec.version);
            this.#log.error(
              { destination: spec.name },
              'a destination created over the API has the name of a config file destination; the file one runs',
            );
          }
          continue;
        }
        if (entry !== undefined && entry.version === spec.version) continue;
        let config: DestinationConfig;
        try {
          config = check(spec.config);
        } catch (error) {
          if (this.#invalid.get(spec.name) !== spec.version) {
            this.#invalid.set(spec.name, spec.version);
            this.#log.error(
              { destination: spec.name, version: spec.version, err: error },
              'a stored destination spec is invalid for this relay; it is not run',
            );
          }
          continue;
        }
        if (entry === undefined) {
          await this.#add(config, spec.config, 'api', spec.version);
          this.#log.info(
            { destination: spec.name, version: spec.version },
            this.#starting
              ? 'destination created over the API started'
              : 'destination created over the API (by another relay)',
          );
        } else {
          await this.#swap(entry, config, spec.config, spec.version);
          this.#log.info(
            { destination: spec.name, version: spec.version },
            'destination changed over the API (by another relay)',
          );
        }
      }
      for (const [name, entry] of [...this.#entries]) {
        if (entry.origin !== 'api' || seen.has(name)) continue;
        await this.#retire(name, entry);
        this.#log.info(
          { destination: name },
          'destination deleted over the API (by another relay)',
        );
      }
    });
  }

  async #add(
    config: DestinationConfig,
    input: Record<string, unknown>,
    origin: DestinationOrigin,
    version: number | null,
  ): Promise<void> {
    const destination = this.#make(config, this.#context);
    await this.#exclusive(async () => {
      await destination.start();
      this.#entries.set(config.name, { destination, origin, input, version });
      this.list.push(destination);
    });
  }

  // The old dispatcher finishes what it has in flight first; the new one reads the rest from
  // the store (everything the old one did not record is still pending there).
  async #swap(
    entry: Entry,
    config: DestinationConfig,
    input: Record<string, unknown>,
    version: number | null,
  ): Promise<void> {
    const old = entry.destination;
    await old.close();
    const next = this.#make(config, this.#context);
    await this.#exclusive(async () => {
      await next.start();
      const index = this.list.indexOf(old);
      if (index >= 0) this.list[index] = next;
      else this.list.push(next);
      entry.destination = next;
      entry.input = input;
      entry.version = version;
    });
  }

  /**
   * Takes `entry` out of the running list between two ingests, then lets its in-flight
   * attempts end (and be recorded): its pending deliveries stay in the store.
   */
  async #retire(name: string, entry: Entry): Promise<void> {
    await this.#exclusive(() => {
      this.#drop(name);
      return Promise.resolve();
    });
    await entry.destination.close();
  }

  #drop(name: string): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    this.#entries.delete(name);
    const index = this.list.indexOf(entry.destination);
    if (index >= 0) this.list.splice(index, 1);
  }

  /** Stops following the store (the relay closes the destinations itself, draining). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#unsubscribe?.();
  }
}
