// A small HTTP client for talking to an agent under test. node:http rather than fetch because tests
// need the request line exactly as written: fetch's URL parser normalises `/v1/kv/a/../b` to
// `/v1/kv/b` and percent-decodes nothing, so bad-input tests could not send what a careless client
// sends.
import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as UTF-8 text. */
  text: string;
  /** The body parsed as JSON (throws with the text when it is not JSON). */
  json<T = unknown>(): T;
  /** X-Consul-Index as a number (NaN when absent). */
  index: number;
  /** Milliseconds from sending the request to the end of the response. */
  elapsedMs: number;
}

export interface RequestOptions {
  /** A string or Buffer is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Abort (and reject) after this long; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  agent?: http.Agent;
}

const sharedAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function request(baseUrl: string, method: string, path: string, opts: RequestOptions = {}): Promise<HttpResult> {
  const u = new URL(baseUrl);
  let payload: Buffer | undefined;
  if (opts.body !== undefined) {
    payload = typeof opts.body === 'string' ? Buffer.from(opts.body)
      : Buffer.isBuffer(opts.body) ? opts.body
      : Buffer.from(JSON.stringify(opts.body));
  }
  const headers: Record<string, string> = { ...opts.headers };
  if (payload) headers['content-length'] = String(payload.length);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, method, path, headers,
      agent: opts.agent ?? sharedAgent,
      signal: opts.signal,
      timeout: opts.timeoutMs ?? 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        const idx = res.headers['x-consul-index'];
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text,
          json<T>() {
            try {
              return JSON.parse(text) as T;
            } catch {
              throw new Error(`${method} ${path} answered ${res.statusCode} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
            }
          },
          index: typeof idx === 'string' ? Number(idx) : Number.NaN,
          elapsedMs: performance.now() - started,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Closes idle keep-alive sockets of the shared agent (so a test process can exit promptly). */
export function closeIdleSockets(): void {
  sharedAgent.destroy();
}
