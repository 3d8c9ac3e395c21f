// One message, found by id: when and where it came from, its payload, and each destination's
// delivery with every attempt and a "resend" button.
import { useState } from 'preact/hooks';
import { ApiError, api, errorText } from './api.js';
import { outcome, snippet } from './Destination.js';
import { duration, time } from './format.js';
import { href, usePoll } from './hooks.js';

/** The message page. */
export function Message({ id, onChanged }: { id: string; onChanged: () => void }) {
  const detail = usePoll(() => api.message(id), 3000, id);
  const [notice, setNotice] = useState<{ text: string; error: boolean } | undefined>();
  const [busy, setBusy] = useState(false);
  const heading = (
    <h1 tabIndex={-1}>
      Message <code>{id}</code>
    </h1>
  );

  const error = detail.error;
  if (detail.data === undefined) {
    return (
      <>
        {heading}
        {error === undefined ? (
          <p>Loading…</p>
        ) : (
          <p role="alert">
            {error instanceof ApiError && error.status === 404
              ? `No message “${id}”: it was never stored, or it was purged after the retention time.`
              : errorText(error)}
          </p>
        )}
      </>
    );
  }
  const message = detail.data;

  const resend = async (destination: string): Promise<void> => {
    setBusy(true);
    try {
      await api.resend(message.id, destination);
      setNotice({ text: `Message ${message.id} sent again to ${destination}.`, error: false });
    } catch (failure) {
      setNotice({
        text: errorText(failure),
        error: true,
      });
    } finally {
      setBusy(false);
      detail.refresh();
      onChanged();
    }
  };

  return (
    <>
      {heading}
      <p role="status" class={notice?.error ? 'notice notice-error' : 'notice'}>
        {notice?.text}
      </p>
      <dl class="facts">
        <div>
          <dt>Received</dt>
          <dd>
            <time dateTime={message.receivedAt}>{time(message.receivedAt)}</time>
          </dd>
        </div>
        <div>
          <dt>Source</dt>
          <dd>{message.source}</dd>
        </div>
        <div>
          <dt>Destinations</dt>
          <dd>{message.deliveries.length}</dd>
        </div>
      </dl>
      <section aria-labelledby="payload-heading">
        <h2 id="payload-heading">Payload</h2>
        <pre class="payload" tabIndex={0} aria-labelledby="payload-heading">
          {JSON.stringify(message.event, null, 2)}
        </pre>
      </section>
      <section aria-labelledby="deliveries-heading">
        <h2 id="deliveries-heading">Deliveries</h2>
        {message.deliveries.length === 0 && <p>No destination matched this message.</p>}
        {message.deliveries.map((delivery) => {
          const headingId = `delivery-${delivery.destination}`;
          return (
            <section key={delivery.destination} class="delivery" aria-labelledby={headingId}>
              <h3 id={headingId}>
                <a href={href({ view: 'destination', name: delivery.destination })}>
                  {delivery.destination}
                </a>
                : <span class={`status status-${delivery.status}`}>{delivery.status}</span>
              </h3>
              <div class="actions">
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => void resend(delivery.destination)}
                >
                  Resend to {delivery.destination}
                </button>
              </div>
              {delivery.attempts.length === 0 ? (
                <p>No attempt yet.</p>
              ) : (
                <div
                  class="table-wrap"
                  role="region"
                  aria-label={`Attempts to ${delivery.destination}`}
                  tabIndex={0}
                >
                  <table>
                    <caption>
                      Attempts to {delivery.destination}
                      {delivery.attemptsOmitted
                        ? ` (the latest; ${delivery.attemptsOmitted} older left out)`
                        : ''}
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Time</th>
                        <th scope="col">Result</th>
                        <th scope="col" class="num">
                          Latency
                        </th>
                        <th scope="col">Response</th>
                        <th scope="col">Next attempt</th>
                      </tr>
                    </thead>
                    <tbody>
                      {delivery.attempts.map((a, i) => (
                        <tr key={`${a.at}-${i}`}>
                          <td>
                            <time dateTime={a.at}>{time(a.at)}</time>
                          </td>
                          <td>{outcome(a)}</td>
                          <td class="num">{duration(a.durationMs)}</td>
                          <td>{snippet(a.response, 4000)}</td>
                          <td>
                            {a.nextAt === undefined ? (
                              '—'
                            ) : (
                              <time dateTime={a.nextAt}>{time(a.nextAt)}</time>
                            )}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </section>
          );
        })}
      </section>
    </>
  );
}
