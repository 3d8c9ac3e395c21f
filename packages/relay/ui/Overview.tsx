// The overview: every destination with its state, queue, the last minutes' counts, success
// rate and latency, and a chart of deliveries and failures, refreshed on every poll.
import type { DestinationStatus } from './api.js';
import { Chart } from './Chart.js';
import { clip, count, latency, percent } from './format.js';
import { href } from './hooks.js';
import { State } from './State.js';
import type { StatsWindow } from './stats.js';

/** How the window is named in headers (its length in minutes). */
export function windowLabel(stats: StatsWindow): string {
  return `${Math.round(stats.windowMs / 60_000)} min`;
}

/** The overview page. */
export function Overview({
  destinations,
  stats,
}: {
  destinations: DestinationStatus[] | undefined;
  stats: StatsWindow;
}) {
  const span = windowLabel(stats);
  const failing = destinations?.filter((d) => d.state === 'failing').length ?? 0;
  return (
    <>
      <h1 tabIndex={-1}>Destinations</h1>
      {destinations && (
        <p class="lead">
          {destinations.length} {destinations.length === 1 ? 'destination' : 'destinations'}
          {failing > 0 ? `, ${failing} failing` : ', none failing'}.
        </p>
      )}
      <Chart series={stats.series()} title={`All destinations, last ${span}`} />
      {destinations === undefined ? (
        <p>Loading…</p>
      ) : destinations.length === 0 ? (
        <p>The relay has no destinations.</p>
      ) : (
        <div class="table-wrap" role="region" aria-labelledby="destinations-caption" tabIndex={0}>
          <table>
            <caption id="destinations-caption">
              Destinations (counts and latency over the last {span} of this page's samples)
            </caption>
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">State</th>
                <th scope="col" class="num">
                  Pending
                </th>
                <th scope="col" class="num">
                  In flight
                </th>
                <th scope="col" class="num">
                  Delivered
                  <br />
                  <small>{span}</small>
                </th>
                <th scope="col" class="num">
                  Failed
                  <br />
                  <small>{span}</small>
                </th>
                <th scope="col" class="num">
                  Success rate
                </th>
                <th scope="col" class="num">
                  p50
                </th>
                <th scope="col" class="num">
                  p99
                </th>
                <th scope="col" class="num">
                  Dead letters
                </th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {destinations.map((d) => {
                const s = stats.summary(d.name);
                return (
                  <tr key={d.name}>
                    <th scope="row">
                      <a href={href({ view: 'destination', name: d.name })}>{d.name}</a>
                      <span class="type">
                        {' '}
                        {d.type}
                        {d.origin === undefined ? '' : ` · ${d.origin === 'file' ? 'file' : 'API'}`}
                      </span>
                      {d.eventTypes != null && (
                        <span class="type event-types"> {d.eventTypes.join(', ')}</span>
                      )}
                    </th>
                    <td>
                      <State state={d.state} />
                    </td>
                    <td class="num">{count(d.pending)}</td>
                    <td class="num">{count(d.inFlight)}</td>
                    <td class="num">{count(s.delivered)}</td>
                    <td class="num">{count(s.failed)}</td>
                    <td class="num">{percent(s.successRate)}</td>
                    <td class="num">{latency(s.p50)}</td>
                    <td class="num">{latency(s.p99)}</td>
                    <td class="num">{count(d.deadLetters)}</td>
                    <td class="error-text" title={d.lastError ?? undefined}>
                      {d.lastError === null ? '—' : clip(d.lastError, 160)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
