// Small Preact hooks of the dashboard: polling a loader, and the hash route.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/** What {@link usePoll} gives: the last data, the last error (cleared by a success), a refresh. */
export interface Poll<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  refresh: () => void;
}

/**
 * Calls `load` now and again `ms` after each call finishes (so slow answers never pile up),
 * until unmounted or `key` changes (then the data is dropped and loading starts over).
 */
export function usePoll<T>(load: () => Promise<T>, ms: number, key: string): Poll<T> {
  const [state, setState] = useState<{ key: string; data?: T; error?: unknown }>({ key });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      try {
        const data = await loadRef.current();
        if (!stopped) setState({ key, data });
      } catch (error) {
        if (!stopped) setState((s) => (s.key === key ? { ...s, error } : { key, error }));
      }
      if (!stopped) timer = setTimeout(() => void run(), ms);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [key, ms, tick]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  const current = state.key === key;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: !current || (state.data === undefined && state.error === undefined),
    refresh,
  };
}

/** The page's routes: `#/`, `#/destinations/{name}`, `#/messages/{id}`. */
export type Route =
  { view: 'overview' } | { view: 'destination'; name: string } | { view: 'message'; id: string };

/** The route of a location hash; unknown hashes are the overview. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  const match = /^\/(destinations|messages)\/(.+)$/.exec(path);
  if (match) {
    let value: string;
    try {
      value = decodeURIComponent(match[2]!);
    } catch {
      value = match[2]!;
    }
    return match[1] === 'destinations'
      ? { view: 'destination', name: value }
      : { view: 'message', id: value };
  }
  return { view: 'overview' };
}

/** The hash of a route, for links. */
export function href(route: Route): string {
  switch (route.view) {
    case 'overview':
      return '#/';
    case 'destination':
      return `#/destinations/${encodeURIComponent(route.name)}`;
    case 'message':
      return `#/messages/${encodeURIComponent(route.id)}`;
  }
}

/** The current route, following the location hash. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
