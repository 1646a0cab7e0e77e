import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api';
import type { Change } from './types';

/** A stream event: a change, or `null` when the stream (re)connected and every view should reload. */
type Listener = (change: Change | null) => void;

const listeners = new Set<Listener>();
const statusListeners = new Set<(live: boolean) => void>();
let source: EventSource | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;

function setLive(live: boolean): void {
  for (const l of statusListeners) l(live);
}

/**
 * One EventSource per tab on the service's change stream. The browser reconnects by itself after a
 * network break; a refused stream (the session ended) is not retried by EventSource, so the session is
 * checked (a 401 shows the log-in) and the stream opened again a little later.
 */
export function startLive(): void {
  stopLive();
  const stream = new EventSource('/api/v1/dashboard/stream');
  source = stream;
  stream.addEventListener('hello', () => {
    setLive(true);
    for (const l of listeners) l(null);
  });
  stream.addEventListener('change', (e) => {
    const change = JSON.parse((e as MessageEvent<string>).data) as Change;
    for (const l of listeners) l(change);
  });
  stream.onerror = () => {
    setLive(false);
    if (stream.readyState !== EventSource.CLOSED) return;
    retry = setTimeout(() => {
      api('GET', '/api/v1/session').then(startLive, () => undefined);
    }, 3000);
  };
}

export function stopLive(): void {
  clearTimeout(retry);
  source?.close();
  source = undefined;
  setLive(false);
}

export function useLiveStatus(): boolean {
  const [live, setLiveState] = useState(false);
  useEffect(() => {
    statusListeners.add(setLiveState);
    return () => void statusListeners.delete(setLiveState);
  }, []);
  return live;
}

/** Calls `listener` with every change (and null on reconnect) while the component is mounted. */
export function useChanges(listener: Listener): void {
  const current = useRef(listener);
  current.current = listener;
  useEffect(() => {
    const l: Listener = (c) => current.current(c);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
}

export interface Loaded<T> {
  /** The last data loaded, possibly for the previous key while the new one loads. */
  data: T | undefined;
  error: string | undefined;
  reload(): void;
  /** Replaces the data in place (a live patch) until the next load. */
  patch(update: (data: T) => T): void;
}

/**
 * Data for a view: loaded when `key` changes, and again when the stream says something it shows has
 * changed (`affects`), at most once per `minIntervalMs`, never two loads at once.
 */
export function useLoad<T>(key: string, load: () => Promise<T>, affects: (change: Change) => boolean, minIntervalMs = 0): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const state = useRef({ running: false, again: false, last: 0, timer: undefined as ReturnType<typeof setTimeout> | undefined, key, load });
  state.current.load = load;

  const run = () => {
    const s = state.current;
    if (s.running) {
      s.again = true;
      return;
    }
    s.running = true;
    s.last = Date.now();
    const forKey = s.key;
    s.load()
      .then(
        (value) => {
          if (forKey !== state.current.key) return;
          setData(value);
          setError(undefined);
        },
        (err: Error) => {
          if (forKey === state.current.key) setError(err.message);
        },
      )
      .finally(() => {
        s.running = false;
        if (s.again) {
          s.again = false;
          run();
        }
      });
  };
  const soon = () => {
    const s = state.current;
    if (s.timer) return;
    const wait = Math.max(0, s.last + minIntervalMs - Date.now());
    s.timer = setTimeout(() => {
      s.timer = undefined;
      run();
    }, wait);
  };

  useEffect(() => {
    // The previous data stays on screen until the new arrives (a page of a list, another filter).
    state.current.key = key;
    setError(undefined);
    run();
    return () => {
      clearTimeout(state.current.timer);
      state.current.timer = undefined;
    };
  }, [key]);
  useChanges((change) => {
    if (change === null || affects(change)) soon();
  });
  return { data, error, reload: run, patch: (update) => setData((d) => (d === undefined ? d : update(d))) };
}
