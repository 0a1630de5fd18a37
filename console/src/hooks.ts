import { useCallback, useEffect, useState } from 'preact/hooks';

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  reload: () => void;
}

/**
 * Loads with `load`, again whenever `deps` change, and every `everyMs` when given. An answer is
 * shown only for the deps it was loaded for: new deps ask a different question.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number): Loaded<T> {
  const key = JSON.stringify(deps);
  const [answer, setAnswer] = useState<{ key: string; value: T } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let live = true;
    load().then(
      (value) => {
        if (!live) return;
        setAnswer({ key, value });
        setError(null);
      },
      (failure: Error) => live && setError(failure.message),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  useEffect(() => {
    if (!everyMs) return;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [everyMs, reload]);
  return { data: answer?.key === key ? answer.value : null, error, reload };
}

/** The hash route: `#/instances/ID?x=1` → path `/instances/ID`, query `{x: '1'}`. */
export function useRoute(): { path: string; query: URLSearchParams } {
  const read = () => {
    const [path = '/', search = ''] = location.hash.replace(/^#/, '').split('?', 2);
    return { path: path || '/', query: new URLSearchParams(search) };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

export function navigate(path: string, query?: Record<string, string>): void {
  const search = query
    ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '')).toString()
    : '';
  location.hash = search ? `${path}?${search}` : path;
}
