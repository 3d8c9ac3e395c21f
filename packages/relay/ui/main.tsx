// The relay's operations dashboard (issue 17): a view of the admin API, served at /ui/. One
// poll every 2 s reads the destinations and samples /metrics for the last minutes' numbers;
// the views are chosen by the location hash (so every view is a plain static file's URL).
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, errorText, type DestinationStatus, type UiSession } from './api.js';
import { Destination } from './Destination.js';
import { time } from './format.js';
import { href, usePoll, useRoute, type Route } from './hooks.js';
import { Message } from './Message.js';
import { Overview } from './Overview.js';
import { StatsWindow, parseMetrics } from './stats.js';

const POLL_MS = 2000;

function title(route: Route): string {
  switch (route.view) {
    case 'overview':
      return 'Destinations';
    case 'destination':
      return `Destination ${route.name}`;
    case 'message':
      return `Message ${route.id}`;
  }
}

function Search() {
  const [id, setId] = useState('');
  return (
    <form
      role="search"
      class="search"
      onSubmit={(event) => {
        event.preventDefault();
        const value = id.trim();
        if (value !== '') location.hash = href({ view: 'message', id: value });
      }}
    >
      <label for="message-id">Message id</label>
      <input
        id="message-id"
        type="search"
        value={id}
        autoComplete="off"
        spellcheck={false}
        onInput={(event) => setId(event.currentTarget.value)}
      />
      <button type="submit">Find message</button>
    </form>
  );
}

/** Shown when the relay refuses the page's calls: the session expired or was ended. */
function SignedOut({ reason }: { reason: string }) {
  return (
    <div class="token">
      <p role="alert">The relay refused the dashboard's request: {reason}</p>
      <p>
        <a href="login">Sign in again</a> with the admin token.
      </p>
    </div>
  );
}

/** Sign out: a plain form (no script needed), shown when the page is signed in by cookie. */
function SignOut() {
  const [session, setSession] = useState<UiSession | undefined>();
  useEffect(() => {
    api.session().then(setSession, () => setSession(undefined));
  }, []);
  if (session?.auth !== 'cookie') return null;
  return (
    <form class="sign-out" method="post" action="logout">
      <button type="submit">Sign out</button>
    </form>
  );
}

interface Snapshot {
  destinations: DestinationStatus[];
  at: number;
}

function App() {
  const route = useRoute();
  const stats = useMemo(() => new StatsWindow(), []);
  const [metricsError, setMetricsError] = useState<string | undefined>();
  const snapshot = usePoll<Snapshot>(
    async () => {
      const [destinations, metrics] = await Promise.all([
        api.destinations(),
        // The numbers over time are a bonus: the page works without them.
        api.metrics().then(
          (text) => text,
          (error: unknown) => error,
        ),
      ]);
      const at = Date.now();
      if (typeof metrics === 'string') {
        stats.add(at, parseMetrics(metrics));
        setMetricsError(undefined);
      } else {
        setMetricsError(errorText(metrics));
      }
      return { destinations, at };
    },
    POLL_MS,
    'relay',
  );

  const heading = useRef<HTMLElement>(null);
  const routeKey = JSON.stringify(route);
  const first = useRef(true);
  useEffect(() => {
    document.title = `${title(route)} · eventsinks relay`;
    // A new view is announced by moving focus to its heading (not on the first load).
    if (first.current) first.current = false;
    else heading.current?.querySelector<HTMLElement>('h1')?.focus();
  }, [routeKey]);

  const error = snapshot.error;
  const unauthorized = error instanceof ApiError && error.status === 401;
  const destinations = snapshot.data?.destinations;
  let view;
  if (unauthorized) view = <SignedOut reason={error.reason} />;
  else if (route.view === 'destination') {
    view = (
      <Destination
        name={route.name}
        destinations={destinations}
        stats={stats}
        onChanged={snapshot.refresh}
      />
    );
  } else if (route.view === 'message') {
    view = <Message id={route.id} onChanged={snapshot.refresh} />;
  } else view = <Overview destinations={destinations} stats={stats} />;

  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(event) => {
          event.preventDefault();
          heading.current?.querySelector<HTMLElement>('h1')?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href({ view: 'overview' })}>
          eventsinks relay
        </a>
        <nav aria-label="Main">
          <ul>
            <li>
              <a
                href={href({ view: 'overview' })}
                aria-current={route.view === 'overview' ? 'page' : undefined}
              >
                Destinations
              </a>
            </li>
          </ul>
        </nav>
        <Search />
        <SignOut />
      </header>
      <main id="main" ref={heading}>
        {error !== undefined && !unauthorized && (
          <p role="alert" class="notice notice-error">
            The relay did not answer: {errorText(error)}
            {destinations ? ' (showing the last answer)' : ''}
          </p>
        )}
        {view}
      </main>
      <footer class="bottom">
        <p>
          {snapshot.data
            ? `Updated ${time(new Date(snapshot.data.at).toISOString())}`
            : 'Connecting…'}
          {' · '}refreshes every {POLL_MS / 1000} s
          {metricsError !== undefined && ` · no metrics: ${metricsError}`}
        </p>
      </footer>
    </>
  );
}

render(<App />, document.getElementById('app')!);
