// The proxy's only link to the control plane: the local agent's HTTP API (Consul's api package,
// the parts connect/proxy uses), over httpLite (one request per connection; no node:http, whose
// memory the proxy cannot afford, see httpLite.ts).
//
// Blocking queries (Consul's "watch" pattern): the first GET returns at once with X-Consul-Index
// (or X-Consul-ContentHash for the agent's local endpoints); each following GET passes it back as
// ?index= (?hash=) and the agent holds the request until the answer changes or `wait` elapses.
// Errors back off exponentially (Consul's proxy: 1 s doubling to 1 min, here capped lower) so a
// restarting agent is not hammered and comes back into view quickly.

import { request } from './httpLite.ts';
import type { Logger } from './log.ts';

export class AgentApiError extends Error {
  readonly code = 'ERR_AGENT_API';
  readonly status: number;
  readonly path: string;
  constructor(path: string, status: number, body: string) {
    super(`agent API ${path}: ${status === 0 ? body : `${status} ${body.trim()}`}`);
    this.name = 'AgentApiError';
    this.status = status;
    this.path = path;
  }
}

export interface AgentResponse<T> {
  body: T;
  /** X-Consul-Index, if the endpoint sent one. */
  index?: string;
  /** X-Consul-ContentHash, if the endpoint sent one (hash-based blocking). */
  hash?: string;
}

export interface AgentApiOptions {
  /** host:port, or http://host:port (Consul's -http-addr / CONSUL_HTTP_ADDR). */
  httpAddr: string;
  /** Consul's -token / CONSUL_HTTP_TOKEN: sent as X-Consul-Token when set. */
  token?: string;
}

export function parseHttpAddr(addr: string): { host: string; port: number } {
  const withScheme = /^[a-z]+:\/\//i.test(addr) ? addr : `http://${addr}`;
  const u = new URL(withScheme);
  if (u.protocol !== 'http:') throw new Error(`-http-addr ${JSON.stringify(addr)}: only http:// is supported`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 8500 };
}

export class AgentApi {
  private readonly host: string;
  private readonly port: number;
  private readonly token: string | undefined;
  constructor(opts: AgentApiOptions) {
    const { host, port } = parseHttpAddr(opts.httpAddr);
    this.host = host;
    this.port = port;
    this.token = opts.token;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<AgentResponse<T>> {
    return this.request<T>('GET', path, undefined, signal);
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<AgentResponse<T>> {
    return this.request<T>('POST', path, JSON.stringify(body), signal);
  }

  put<T>(path: string, body: unknown, signal?: AbortSignal): Promise<AgentResponse<T>> {
    return this.request<T>('PUT', path, JSON.stringify(body), signal);
  }

  /** Nothing to release: each request has its own connection. Kept so callers need not know. */
  close(): void {}

  private async request<T>(method: string, path: string, body: string | undefined, signal?: AbortSignal): Promise<AgentResponse<T>> {
    const headers: Record<string, string> = {};
    if (this.token) headers['X-Consul-Token'] = this.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await request({ host: this.host, port: this.port, method, path, headers, body, signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new AgentApiError(path, 0, (err as Error).message);
    }
    const text = res.body.toString('utf8');
    if (res.status < 200 || res.status >= 300) throw new AgentApiError(path, res.status, text);
    let parsed: T;
    try {
      // Writes such as PUT /v1/agent/service/register answer 200 with an empty body.
      parsed = (text.trim() === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new AgentApiError(path, res.status, `not JSON: ${text.slice(0, 200)}`);
    }
    return { body: parsed, index: res.headers.get('x-consul-index'), hash: res.headers.get('x-consul-contenthash') };
  }
}

export interface WatchOptions<T> {
  api: AgentApi;
  /** The path with its own query, without index/hash/wait. */
  path: string;
  onChange: (value: T) => void;
  /** Called on each failure (after which the watch backs off and retries). */
  onError?: (err: Error) => void;
  signal: AbortSignal;
  logger?: Logger;
  /** Consul's `wait` for each blocking request. */
  waitSeconds?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

function withQuery(path: string, q: Record<string, string>): string {
  const sep = path.includes('?') ? '&' : '?';
  return `${path}${sep}${new URLSearchParams(q).toString()}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) { resolve(); return; }
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs a blocking-query loop until `signal` aborts: `onChange` gets the first answer and every
 * answer whose index (or content hash) differs from the last one. Resolves when stopped.
 */
export async function watch<T>(opts: WatchOptions<T>): Promise<void> {
  const { api, signal } = opts;
  const minBackoff = opts.minBackoffMs ?? 250;
  const maxBackoff = opts.maxBackoffMs ?? 10_000;
  const wait = `${opts.waitSeconds ?? 60}s`;
  let index: string | undefined;
  let hash: string | undefined;
  let backoff = minBackoff;
  while (!signal.aborted) {
    const q: Record<string, string> = {};
    if (hash !== undefined) Object.assign(q, { hash, wait });
    else if (index !== undefined) Object.assign(q, { index, wait });
    let res: AgentResponse<T>;
    try {
      res = await api.get<T>(Object.keys(q).length ? withQuery(opts.path, q) : opts.path, signal);
    } catch (err) {
      if (signal.aborted) return;
      opts.onError?.(err as Error);
      opts.logger?.warn('watch failed, retrying', { path: opts.path, error: err as Error, backoff_ms: backoff });
      await sleep(backoff + Math.floor(Math.random() * backoff / 4), signal);
      backoff = Math.min(backoff * 2, maxBackoff);
      // A restarted agent's index starts over: ask for the current state, not a wait on the old index.
      index = undefined;
      hash = undefined;
      continue;
    }
    backoff = minBackoff;
    const changed = res.hash !== undefined ? res.hash !== hash : res.index === undefined || res.index !== index;
    // Consul: an index that goes backwards means a reset; start over from 0 rather than block forever.
    if (res.index !== undefined && index !== undefined && /^\d+$/.test(res.index) && /^\d+$/.test(index) && BigInt(res.index) < BigInt(index)) index = undefined;
    else index = res.index;
    hash = res.hash;
    if (changed) opts.onChange(res.body);
    // An endpoint without index or hash cannot block: poll it gently instead of spinning.
    if (res.index === undefined && res.hash === undefined) await sleep(1000, signal);
  }
}
