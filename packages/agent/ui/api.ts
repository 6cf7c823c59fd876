// The UI's only backend is the agent's HTTP API. Every read follows its data with Consul's blocking
// queries (?index=<X-Consul-Index>&wait=...): the answer comes back when what the page shows has
// changed, so a health change appears at once and an idle page costs one parked request. A hidden
// tab aborts its requests and resumes when it is shown again.
import { useEffect, useState } from 'preact/hooks';

export interface Settings { contentPath: string; datacenter: string }

export const settings: Settings = (() => {
  const el = document.getElementById('trellis-ui-settings');
  try {
    return { contentPath: '/ui/', datacenter: 'dc1', ...(JSON.parse(el?.textContent ?? '{}') as Partial<Settings>) };
  } catch {
    return { contentPath: '/ui/', datacenter: 'dc1' };
  }
})();

/** An API answer that was not 2xx: the status and the API's own text. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly text: string) {
    super(text.trim() !== '' ? text.trim() : `HTTP ${status}`);
  }
}

/** The datacenter the current page shows (the URL's first segment), for ?dc. */
let currentDc = settings.datacenter;
export function setCurrentDc(dc: string): void { currentDc = dc; }

const TOKEN_KEY = 'trellis-ui-token';
export function getToken(): string { return sessionStorage.getItem(TOKEN_KEY) ?? ''; }
export function setToken(t: string): void {
  if (t === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, t);
}

export function withDc(path: string, dc = currentDc): string {
  return `${path}${path.includes('?') ? '&' : '?'}dc=${encodeURIComponent(dc)}`;
}

export interface ApiResult<T> { data: T; index: number }

/** One request; the body as JSON (or text for non-JSON answers); throws ApiError on non-2xx. */
export async function api<T = unknown>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token !== '') headers['X-Consul-Token'] = token;
  let payload: string | undefined;
  if (body !== undefined) payload = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(withDc(path), { method, headers, body: payload, signal });
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, text);
  const index = Number(res.headers.get('X-Consul-Index') ?? '0');
  const type = res.headers.get('Content-Type') ?? '';
  const data = (type.includes('json') && text !== '' ? JSON.parse(text) : text) as T;
  return { data, index };
}

/** Resolves when the tab is visible (at once if it is). */
function whenVisible(): Promise<void> {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (): void => {
      if (document.hidden) return;
      document.removeEventListener('visibilitychange', on);
      resolve();
    };
    document.addEventListener('visibilitychange', on);
  });
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** How long one blocking request may park at the agent. */
const WAIT = '5m';
/** Least time between two requests of one query: a burst of writes is shown at most this often. */
const MIN_INTERVAL_MS = 250;
/** Period for endpoints that do not block. */
const POLL_MS = 10_000;
/** Retry delay after an error. */
const ERROR_RETRY_MS = 3000;

export interface Live<T> { data?: T; error?: ApiError; loading: boolean }

/**
 * Follows `path` with blocking queries while the component is mounted and the tab visible.
 * `path` null: nothing to read. Changing `path` starts over.
 */
export function useLive<T>(path: string | null): Live<T> {
  const [state, setState] = useState<Live<T>>({ loading: path !== null });
  useEffect(() => {
    if (path === null) { setState({ loading: false }); return; }
    const stop = new AbortController();
    let request: AbortController | undefined;
    // A hidden tab parks nothing at the agent: abort the request; the loop waits for visibility.
    const onVisibility = (): void => { if (document.hidden) request?.abort(); };
    document.addEventListener('visibilitychange', onVisibility);
    setState({ loading: true });
    void (async () => {
      let index = 0;
      let lastChanged = true;
      while (!stop.signal.aborted) {
        await whenVisible();
        if (stop.signal.aborted) break;
        request = new AbortController();
        const onStop = (): void => request?.abort();
        stop.signal.addEventListener('abort', onStop, { once: true });
        const started = Date.now();
        try {
          const sep = path.includes('?') ? '&' : '?';
          const r = await api<T>('GET', index > 0 ? `${path}${sep}index=${index}&wait=${WAIT}` : path, undefined, request.signal);
          // An index that went backwards (a restored snapshot) starts over, as Consul's clients do.
          const changed = r.index !== index || index === 0;
          index = r.index > 0 && r.index >= index ? r.index : 0;
          lastChanged = changed;
          if (changed) setState({ data: r.data, loading: false });
        } catch (err) {
          if (request.signal.aborted) { stop.signal.removeEventListener('abort', onStop); continue; }
          const e = err instanceof ApiError ? err : new ApiError(0, `Could not reach the agent: ${(err as Error).message}`);
          setState((s) => ({ ...s, error: e, loading: false }));
          index = 0;
          lastChanged = true;
          stop.signal.removeEventListener('abort', onStop);
          await sleep(ERROR_RETRY_MS, stop.signal);
          continue;
        }
        stop.signal.removeEventListener('abort', onStop);
        const elapsed = Date.now() - started;
        // An endpoint that does not block (no X-Consul-Index, as /v1/status/leader, or one that
        // answered at once with nothing new) is polled instead of asked again at once.
        if (index === 0 || (!lastChanged && elapsed < 1000)) await sleep(POLL_MS, stop.signal);
        else if (elapsed < MIN_INTERVAL_MS) await sleep(MIN_INTERVAL_MS - elapsed, stop.signal);
      }
    })();
    return () => {
      stop.abort();
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [path]);
  return state;
}

/** Decodes a KV value (base64 of bytes) as UTF-8 text. */
export function decodeValue(b64: string | null): string {
  if (!b64) return '';
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
