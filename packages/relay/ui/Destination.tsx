// One destination: its status and counts, enable/disable, its chart, its recent attempts
// (time, status or error, latency, response) and its dead letters with "resend" (one, or all
// that died since a time). The admin API has no per-destination attempt list, so the recent
// attempts are read from the destination's latest messages.
import { useState } from 'preact/hooks';
import { ApiError, api, errorText, type Attempt, type DestinationStatus } from './api.js';
import { Chart } from './Chart.js';
import { ago, clip, count, duration, latency, percent, time } from './format.js';
import { href, usePoll } from './hooks.js';
import { windowLabel } from './Overview.js';
import { SigningSecret } from './Secret.js';
import { State } from './State.js';
import type { StatsWindow } from './stats.js';

/** Messages whose attempts the page reads for "recent attempts". */
const RECENT_MESSAGES = 20;
/** Dead letters listed (and read for their last error). */
const DEAD_SHOWN = 50;
/** Attempts listed. */
const ATTEMPTS_SHOWN = 50;

interface AttemptRow extends Attempt {
  message: string;
}

interface DeadRow {
  id: string;
  receivedAt: string;
  attempts: number;
  lastError: string | undefined;
}

interface Activity {
  attempts: AttemptRow[];
  dead: DeadRow[];
  deadMore: boolean;
}

async function detailOrNone(id: string) {
  try {
    return await api.message(id);
  } catch (error) {
    // Purged between the list and the read: it is simply no longer shown.
    if (error instanceof ApiError && error.status === 404) return undefined;
    throw error;
  }
}

/** Where a destination is declared, in words (the version of one created over the API). */
export function originText(status: DestinationStatus, version?: number | null): string {
  if (status.origin === 'file') return 'config file';
  if (status.origin === 'api')
    return version == null ? 'admin API' : `admin API, version ${version}`;
  return '—';
}

/** The event type patterns a destination takes, in words. */
export function eventTypesText(eventTypes: string[] | null | undefined): string {
  if (eventTypes === undefined) return '—';
  return eventTypes === null ? 'all events' : eventTypes.join(', ');
}

async function detailOfDestination(name: string) {
  try {
    return await api.destination(name);
  } catch (error) {
    // A relay before issue 16 has no such route: the page works without it.
    if (error instanceof ApiError && (error.status === 404 || error.status === 405))
      return undefined;
    throw error;
  }
}

/** An attempt's outcome in words: the HTTP status, the error, or both. */
export function outcome(attempt: Attempt): string {
  const status = attempt.status === undefined ? undefined : String(attempt.status);
  const error = attempt.error;
  if (error === undefined) return status ?? 'ok';
  // The engine's error often starts with the status already ("500 Internal Server Error").
  return status === undefined || error.startsWith(status) ? error : `${status} — ${error}`;
}

/** A response snippet, or a dash when there was none (or it was empty). */
export function snippet(response: string | undefined, max: number) {
  if (response === undefined || response.trim() === '') return '—';
  return <code class="snippet">{clip(response, max)}</code>;
}

function failed(attempt: Attempt): boolean {
  return attempt.error !== undefined || (attempt.status !== undefined && attempt.status >= 300);
}

async function loadActivity(name: string): Promise<Activity> {
  const [recent, dead] = await Promise.all([
    api.messages({ destination: name, limit: RECENT_MESSAGES }),
    api.messages({ destination: name, status: 'dead', limit: DEAD_SHOWN }),
  ]);
  const ids = [...new Set([...recent.items, ...dead.items].map((m) => m.id))];
  const details = new Map(
    (await Promise.all(ids.map(detailOrNone))).flatMap((d) => (d ? [[d.id, d] as const] : [])),
  );
  const attempts: AttemptRow[] = [];
  for (const message of recent.items) {
    const delivery = details.get(message.id)?.deliveries.find((d) => d.destination === name);
    for (const attempt of delivery?.attempts ?? [])
      attempts.push({ ...attempt, message: message.id });
  }
  attempts.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  return {
    attempts: attempts.slice(0, ATTEMPTS_SHOWN),
    dead: dead.items.map((m) => {
      const delivery = details.get(m.id)?.deliveries.find((d) => d.destination === name);
      const last = delivery?.attempts.at(-1);
      return {
        id: m.id,
        receivedAt: m.receivedAt,
        attempts: m.deliveries.find((d) => d.destination === name)?.attempts ?? 0,
        lastError: last ? outcome(last) : undefined,
      };
    }),
    deadMore: dead.next !== null,
  };
}

/** The destination page. */
export function Destination({
  name,
  destinations,
  stats,
  onChanged,
}: {
  name: string;
  destinations: DestinationStatus[] | undefined;
  stats: StatsWindow;
  onChanged: () => void;
}) {
  const activity = usePoll(() => loadActivity(name), 4000, name);
  const status = destinations?.find((d) => d.name === name);
  // Only a relay that lists `origin` (issue 16) has the detail route: no 404 from older ones.
  const hasDetail = status?.origin !== undefined;
  const detail = usePoll(
    () => (hasDetail ? detailOfDestination(name) : Promise.resolve(undefined)),
    10_000,
    `${name}:${hasDetail}`,
  );
  const [notice, setNotice] = useState<{ text: string; error: boolean } | undefined>();
  const [busy, setBusy] = useState(false);
  const [since, setSince] = useState('');
  const span = windowLabel(stats);
  const summary = stats.summary(name);

  const act = async (work: () => Promise<string>): Promise<void> => {
    setBusy(true);
    try {
      setNotice({ text: await work(), error: false });
    } catch (error) {
      setNotice({ text: errorText(error), error: true });
    } finally {
      setBusy(false);
      onChanged();
      activity.refresh();
    }
  };

  const heading = (
    <h1 tabIndex={-1}>
      Destination {name} {status && <State state={status.state} />}
    </h1>
  );
  if (destinations && !status) {
    return (
      <>
        {heading}
        <p role="alert">
          The relay has no destination named “{name}”.{' '}
          <a href={href({ view: 'overview' })}>See all destinations</a>.
        </p>
      </>
    );
  }

  return (
    <>
      {heading}
      <p role="status" class={notice?.error ? 'notice notice-error' : 'notice'}>
        {notice?.text}
      </p>
      <section aria-labelledby="status-heading">
        <h2 id="status-heading">Status</h2>
        {status ? (
          <>
            <dl class="facts">
              <div>
                <dt>Type</dt>
                <dd>{status.type}</dd>
              </div>
              <div>
                <dt>Declared in</dt>
                <dd>{originText(status, detail.data?.version)}</dd>
              </div>
              <div>
                <dt>Event types</dt>
                <dd>{eventTypesText(status.eventTypes)}</dd>
              </div>
              <div>
                <dt>Pending</dt>
                <dd>{count(status.pending)}</dd>
              </div>
              <div>
                <dt>In flight</dt>
                <dd>{count(status.inFlight)}</dd>
              </div>
              <div>
                <dt>Delivered</dt>
                <dd>{count(status.delivered)}</dd>
              </div>
              <div>
                <dt>Failed</dt>
                <dd>{count(status.failed)}</dd>
              </div>
              <div>
                <dt>Dead letters</dt>
                <dd>{count(status.deadLetters)}</dd>
              </div>
              <div>
                <dt>Success rate ({span})</dt>
                <dd>{percent(summary.successRate)}</dd>
              </div>
              <div>
                <dt>Latency p50 / p99 ({span})</dt>
                <dd>
                  {latency(summary.p50)} / {latency(summary.p99)}
                </dd>
              </div>
              <div>
                <dt>Last success</dt>
                <dd>
                  {status.lastSuccessAt === null ? (
                    'never'
                  ) : (
                    <time dateTime={status.lastSuccessAt} title={time(status.lastSuccessAt)}>
                      {ago(status.lastSuccessAt)}
                    </time>
                  )}
                </dd>
              </div>
              <div class="wide">
                <dt>Last error</dt>
                <dd class="error-text">{status.lastError ?? '—'}</dd>
              </div>
            </dl>
            <div class="actions">
              {status.state === 'disabled' ? (
                <button
                  type="button"
                  disabled={busy}
                  onClick={() =>
                    void act(async () => {
                      await api.setEnabled(name, true);
                      return `${name} is enabled: it delivers again.`;
                    })
                  }
                >
                  Enable {name}
                </button>
              ) : (
                <button
                  type="button"
                  class="danger"
                  disabled={busy}
                  onClick={() =>
                    void act(async () => {
                      await api.setEnabled(name, false);
                      return `${name} is disabled: its messages wait until it is enabled.`;
                    })
                  }
                >
                  Disable {name}
                </button>
              )}
            </div>
            {detail.data?.config !== undefined && (
              <details>
                <summary>Configuration (secrets redacted)</summary>
                <pre class="payload config" tabIndex={0} aria-label={`Configuration of ${name}`}>
                  {JSON.stringify(detail.data.config, null, 2)}
                </pre>
              </details>
            )}
          </>
        ) : (
          <p>Loading…</p>
        )}
      </section>

      <Chart series={stats.series(name)} title={`${name}, last ${span}`} />

      {status?.type === 'webhook' && (
        <SigningSecret
          name={name}
          onChanged={() => {
            onChanged();
            detail.refresh();
          }}
        />
      )}

      <section aria-labelledby="dead-heading">
        <h2 id="dead-heading">Dead letters</h2>
        <form
          class="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            void act(async () => {
              const replayed = await api.replay(name, since.trim());
              const what = replayed === 1 ? 'dead letter' : 'dead letters';
              return `${count(replayed)} ${what} of ${name} sent again.`;
            });
          }}
        >
          <label for="replay-since">
            Dead since (ISO time or a duration such as 1h; empty: all)
          </label>
          <input
            id="replay-since"
            name="since"
            type="text"
            value={since}
            placeholder="1h"
            autoComplete="off"
            onInput={(event) => setSince(event.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            Resend all dead letters
          </button>
        </form>
        <ActivityError error={activity.error} />
        {activity.data === undefined ? (
          activity.error === undefined && <p>Loading…</p>
        ) : activity.data.dead.length === 0 ? (
          <p>No dead letters.</p>
        ) : (
          <div class="table-wrap" role="region" aria-labelledby="dead-caption" tabIndex={0}>
            <table>
              <caption id="dead-caption">
                Dead letters of {name}
                {activity.data.deadMore ? ` (the latest ${DEAD_SHOWN})` : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Message</th>
                  <th scope="col">Received</th>
                  <th scope="col" class="num">
                    Attempts
                  </th>
                  <th scope="col">Last error</th>
                  <th scope="col">
                    <span class="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {activity.data.dead.map((d) => (
                  <tr key={d.id}>
                    <th scope="row">
                      <a href={href({ view: 'message', id: d.id })}>
                        <code>{d.id}</code>
                      </a>
                    </th>
                    <td>
                      <time dateTime={d.receivedAt}>{time(d.receivedAt)}</time>
                    </td>
                    <td class="num">{count(d.attempts)}</td>
                    <td class="error-text">
                      {d.lastError === undefined ? '—' : clip(d.lastError, 160)}
                    </td>
                    <td>
                      <button
                        type="button"
                        disabled={busy}
                        aria-label={`Resend ${d.id}`}
                        onClick={() =>
                          void act(async () => {
                            await api.resend(d.id, name);
                            return `Message ${d.id} sent again to ${name}.`;
                          })
                        }
                      >
                        Resend
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="attempts-heading">
        <h2 id="attempts-heading">Recent attempts</h2>
        {activity.data === undefined ? (
          activity.error === undefined && <p>Loading…</p>
        ) : activity.data.attempts.length === 0 ? (
          <p>No attempts yet.</p>
        ) : (
          <div class="table-wrap" role="region" aria-labelledby="attempts-caption" tabIndex={0}>
            <table>
              <caption id="attempts-caption">
                Attempts to {name}, newest first (of its latest {RECENT_MESSAGES} messages)
              </caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Message</th>
                  <th scope="col">Result</th>
                  <th scope="col" class="num">
                    Latency
                  </th>
                  <th scope="col">Response</th>
                </tr>
              </thead>
              <tbody>
                {activity.data.attempts.map((a, i) => (
                  <tr
                    key={`${a.message}-${a.at}-${i}`}
                    class={failed(a) ? 'row-failed' : undefined}
                  >
                    <td>
                      <time dateTime={a.at}>{time(a.at)}</time>
                    </td>
                    <td>
                      <a href={href({ view: 'message', id: a.message })}>
                        <code>{a.message}</code>
                      </a>
                    </td>
                    <td class={failed(a) ? 'error-text' : undefined}>{clip(outcome(a), 160)}</td>
                    <td class="num">{duration(a.durationMs)}</td>
                    <td>{snippet(a.response, 120)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function ActivityError({ error }: { error: unknown }) {
  if (error === undefined) return null;
  return <p role="alert">Could not read the destination's messages: {errorText(error)}</p>;
}
