// The CLI's HTTP client for the agent's Consul-compatible API, and the flags every HTTP command
// shares (-http-addr, -token, -datacenter, -stale), resolved as Consul's api.Config does.
//
// Address: -http-addr, else TRELLIS_HTTP_ADDR, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
// (TRELLIS_ wins over CONSUL_ when both are set: it is the more specific of the two.) "http://"
// and "https://" prefixes are honoured; a bare "host:port" is http unless CONSUL_HTTP_SSL=true.

import fs from 'node:fs';
import type { FlagSpec, ParsedFlags } from '../config/flags.ts';
import { parseGoBool } from '../config/flags.ts';

export const HTTP_CLIENT_FLAGS: readonly FlagSpec[] = [
  { name: 'http-addr', kind: 'string', section: 'HTTP API Options', placeholder: 'address',
    usage: 'The `address` and port of the Trellis (or Consul) HTTP agent. The value can be an IP address or DNS address, but it must also include the port. This can also be specified via the CONSUL_HTTP_ADDR or TRELLIS_HTTP_ADDR environment variable. The default value is http://127.0.0.1:8500. The scheme can also be set to HTTPS by setting the environment variable CONSUL_HTTP_SSL=true.' },
  { name: 'token', kind: 'string', section: 'HTTP API Options', placeholder: 'value',
    usage: 'ACL token to use in the request. This can also be specified via the CONSUL_HTTP_TOKEN environment variable. If unspecified, the query will default to the token of the agent at the HTTP address.' },
  { name: 'token-file', kind: 'string', section: 'HTTP API Options', placeholder: 'value',
    usage: 'File containing the ACL token to use in the request instead of one specified via the -token argument or CONSUL_HTTP_TOKEN environment variable. This can also be specified via the CONSUL_HTTP_TOKEN_FILE environment variable.' },
];

export const HTTP_SERVER_FLAGS: readonly FlagSpec[] = [
  { name: 'datacenter', kind: 'string', section: 'HTTP API Options', placeholder: 'name',
    usage: 'Name of the datacenter to query. If unspecified, this will default to the datacenter of the queried agent.' },
  { name: 'stale', kind: 'bool', section: 'HTTP API Options',
    usage: 'Permit any Consul server (non-leader) to respond to this request. This allows for lower latency and higher throughput, but can result in stale data. This option has no effect on non-read operations. The default value is false.' },
];

export type ApiErrorCode = 'ERR_AGENT_UNREACHABLE' | 'ERR_HTTP_STATUS' | 'ERR_BAD_RESPONSE' | 'ERR_HTTP_ADDR';

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number | undefined;
  readonly body: string | undefined;
  constructor(code: ApiErrorCode, message: string, opts: { status?: number; body?: string } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = opts.status;
    this.body = opts.body;
  }
}

export interface ClientOptions {
  /** Base URL without a trailing slash, e.g. "http://127.0.0.1:8500". */
  readonly baseUrl: string;
  readonly token: string;
  readonly datacenter: string;
  readonly stale: boolean;
}

export function clientOptionsFrom(flags: ParsedFlags, env: Readonly<Record<string, string | undefined>>): ClientOptions {
  const addr = (flags.values.get('http-addr') as string | undefined) || env['TRELLIS_HTTP_ADDR'] || env['CONSUL_HTTP_ADDR'] || '127.0.0.1:8500';
  const ssl = parseGoBool(env['CONSUL_HTTP_SSL'] ?? '') === true;
  let token = (flags.values.get('token') as string | undefined) ?? '';
  const tokenFile = (flags.values.get('token-file') as string | undefined) ?? env['CONSUL_HTTP_TOKEN_FILE'] ?? '';
  if (!token && tokenFile) {
    try {
      token = fs.readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new ApiError('ERR_HTTP_ADDR', `cannot read token file ${tokenFile}: ${(err as Error).message}`);
    }
  }
  if (!token) token = env['CONSUL_HTTP_TOKEN'] ?? env['TRELLIS_HTTP_TOKEN'] ?? '';
  return {
    baseUrl: baseUrlFor(addr, ssl),
    token,
    datacenter: (flags.values.get('datacenter') as string | undefined) ?? '',
    stale: flags.values.get('stale') === true,
  };
}

export function baseUrlFor(addr: string, ssl = false): string {
  const a = addr.trim();
  if (a.startsWith('unix://')) {
    throw new ApiError('ERR_HTTP_ADDR', `unix socket addresses (${a}) are not supported by the trellis CLI yet; give host:port`);
  }
  const withScheme = /^https?:\/\//i.test(a) ? a : `${ssl ? 'https' : 'http'}://${a}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    // URL's own message ("Invalid URL") says nothing about which input; ours does.
    throw new ApiError('ERR_HTTP_ADDR', `invalid HTTP address "${addr}": use host:port, e.g. 127.0.0.1:8500`);
  }
  return `${url.protocol}//${url.host}`;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
  /** X-Consul-Index, 0n when absent. */
  readonly index: bigint;
}

export interface RequestOptions {
  /** A true value sends the bare parameter ("?recurse="), an array repeats it. */
  readonly query?: Record<string, string | number | bigint | boolean | readonly string[] | undefined>;
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
  /** Status codes that are answers, not errors (e.g. 404 for a missing KV key). */
  readonly accept?: readonly number[];
}

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export class ApiClient {
  readonly options: ClientOptions;
  private readonly fetchImpl: FetchLike;

  constructor(options: ClientOptions, fetchImpl: FetchLike = fetch) {
    this.options = options;
    this.fetchImpl = fetchImpl;
  }

  /** "127.0.0.1:8500", for messages. */
  get address(): string {
    return this.options.baseUrl.replace(/^https?:\/\//, '');
  }

  url(path: string, query: RequestOptions['query'] = {}): string {
    const params = new URLSearchParams();
    if (this.options.datacenter) params.set('dc', this.options.datacenter);
    if (this.options.stale) params.set('stale', '');
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === false) continue;
      if (Array.isArray(v)) for (const item of v) params.append(k, item);
      else params.set(k, v === true ? '' : String(v));
    }
    const qs = params.toString();
    return `${this.options.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }

  /**
   * Like request() but hands back the unread streaming Response (for snapshots, which can be
   * large). Non-200 answers are still turned into ApiError.
   */
  async stream(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const res = await this.send(method, path, opts);
    if (res.status !== 200 && !(opts.accept ?? []).includes(res.status)) {
      throw statusError(method, path, res.status, (await res.text()).trim());
    }
    return res;
  }

  private async send(method: string, path: string, opts: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.options.token) headers['X-Consul-Token'] = this.options.token;
    try {
      return await this.fetchImpl(this.url(path, opts.query), {
        method,
        headers,
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw this.transportError(err);
    }
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const res = await this.send(method, path, opts);
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw this.transportError(err);
    }
    const index = indexOf(res);
    if (res.status !== 200 && !(opts.accept ?? []).includes(res.status)) {
      throw statusError(method, path, res.status, body.toString('utf8').trim());
    }
    return { status: res.status, headers: res.headers, body, index };
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<{ value: T; index: bigint; status: number }> {
    const res = await this.request(method, path, opts);
    if (res.status !== 200) return { value: undefined as T, index: res.index, status: res.status };
    return { value: parseJson<T>(res.body.toString('utf8'), path), index: res.index, status: res.status };
  }

  private transportError(err: unknown): ApiError {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? (err as { code?: string }).code ?? '';
    const where = this.address;
    const hint = 'is the agent running? Set -http-addr or CONSUL_HTTP_ADDR to its HTTP address';
    switch (code) {
      case 'ECONNREFUSED':
        return new ApiError('ERR_AGENT_UNREACHABLE', `connection refused to ${where} — ${hint}`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new ApiError('ERR_AGENT_UNREACHABLE', `cannot resolve the host of ${where} — check -http-addr or CONSUL_HTTP_ADDR`);
      case 'ETIMEDOUT':
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new ApiError('ERR_AGENT_UNREACHABLE', `timed out connecting to ${where} — ${hint}`);
      case 'ECONNRESET':
      case 'UND_ERR_SOCKET':
        return new ApiError('ERR_AGENT_UNREACHABLE', `connection to ${where} was closed before the agent answered — is it an HTTP (not HTTPS) agent, and still running?`);
      default:
        return new ApiError('ERR_AGENT_UNREACHABLE', `cannot reach the agent at ${where}: ${cause?.message ?? (err as Error).message} — ${hint}`);
    }
  }
}

/**
 * Consul's api package wording, "Unexpected response code: 500 (No cluster leader)"; a bare 404
 * names the endpoint, since it usually means the agent does not serve it (yet).
 */
function statusError(method: string, path: string, status: number, text: string): ApiError {
  const detail = text || (status === 404 ? `${method} ${path} is not served by this agent` : '');
  return new ApiError('ERR_HTTP_STATUS', `Unexpected response code: ${status}${detail ? ` (${detail})` : ''}`, { status, body: text });
}

/** X-Consul-Index of a response, 0n when absent. */
export function indexOf(res: Response): bigint {
  const idx = res.headers.get('x-consul-index');
  return idx && /^\d+$/.test(idx) ? BigInt(idx) : 0n;
}

/**
 * JSON.parse that keeps integers above 2^53 exact as bigint: KV Flags are uint64 and the lock and
 * semaphore marker values (0x2ddccbc058a50c18, 0xe0f69a2baa414de0) do not fit in a double.
 */
export function parseJson<T>(text: string, what = 'response'): T {
  try {
    return JSON.parse(text, function reviver(this: unknown, _key: string, value: unknown, context?: { source?: string }) {
      if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)) {
        return BigInt(context.source);
      }
      return value;
    } as (this: unknown, key: string, value: unknown) => unknown) as T;
  } catch (err) {
    throw new ApiError('ERR_BAD_RESPONSE', `the agent answered ${what} with invalid JSON: ${(err as Error).message}`);
  }
}

/** Percent-encodes a KV key for a URL path, keeping its slashes (Consul keys are paths). */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
