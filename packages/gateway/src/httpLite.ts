// Just enough HTTP/1.1 for the proxy, over node:net: one request per connection as a client (the
// agent API) and one-shot answers as a server (/metrics). node:http is not loaded at all: it costs
// a proxy process ~3.4 MB of RSS (measured: tls + net listeners 52.5 MB, with http 56.0 MB) out
// of a 60 MB budget, and the proxy needs none of its features (keep-alive pools, streaming bodies,
// upgrades).

import net from 'node:net';

export interface LiteResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  body: Buffer;
}

export interface LiteRequest {
  host: string;
  port: number;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** Answers larger than this are refused (a misbehaving peer must not exhaust memory). */
  maxBytes?: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** Decodes a chunked body (RFC 9112 §7.1); trailers are ignored. */
export function decodeChunked(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) throw new Error('chunked body: missing chunk size line');
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) throw new Error('chunked body: bad chunk size');
    if (size === 0) return Buffer.concat(parts);
    const start = eol + 2;
    if (start + size > buf.length) throw new Error('chunked body: truncated');
    parts.push(buf.subarray(start, start + size));
    at = start + size + 2;
  }
}

export function parseResponse(raw: Buffer): LiteResponse {
  const end = raw.indexOf(HEADER_END);
  if (end < 0) throw new Error('HTTP response: no end of headers');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`HTTP response: bad status line ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) body = decodeChunked(body);
  else if (headers.has('content-length')) {
    const n = Number(headers.get('content-length'));
    if (!Number.isInteger(n) || n < 0 || body.length < n) throw new Error('HTTP response: body shorter than Content-Length');
    body = body.subarray(0, n);
  }
  return { status: Number(m[1]), headers, body };
}

/** One request on a fresh connection (Connection: close); resolves with the whole answer. */
export function request(req: LiteRequest): Promise<LiteResponse> {
  return new Promise((resolve, reject) => {
    if (req.signal?.aborted) { reject(req.signal.reason as Error); return; }
    const maxBytes = req.maxBytes ?? 64 * 1024 * 1024;
    const socket = net.connect({ host: req.host, port: req.port });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: Error | undefined, res?: LiteResponse) => {
      if (settled) return;
      settled = true;
      req.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const onAbort = () => finish(req.signal!.reason as Error);
    req.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => {
      const body = req.body === undefined ? undefined : Buffer.from(req.body);
      const host = net.isIPv6(req.host) ? `[${req.host}]` : req.host;
      const head = [`${req.method} ${req.path} HTTP/1.1`, `Host: ${host}:${req.port}`, 'Connection: close', 'User-Agent: trellis-connect-proxy', 'Accept: application/json'];
      for (const [k, v] of Object.entries(req.headers ?? {})) head.push(`${k}: ${v}`);
      if (body) head.push(`Content-Length: ${body.length}`);
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      if (body) socket.write(body);
    });
    socket.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) { finish(new Error(`HTTP response larger than ${maxBytes} bytes`)); return; }
      chunks.push(c);
    });
    socket.on('error', (err) => finish(err));
    socket.on('end', () => {
      if (size === 0) { finish(new Error('the server closed the connection without an answer')); return; }
      try {
        finish(undefined, parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('close', () => finish(new Error('connection closed before a complete answer')));
  });
}

/** A server answering each request with `handler`'s status and text, then closing the connection. */
export function serveText(handler: (method: string, path: string) => { status: number; contentType: string; body: string }): net.Server {
  return net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf(HEADER_END);
      if (end < 0) {
        if (buf.length > 16 * 1024) socket.destroy(); // no request line this long is ours
        return;
      }
      socket.removeAllListeners('data');
      const [method = '', path = ''] = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1').split(' ');
      const res = handler(method, path);
      const body = Buffer.from(res.body);
      const reason = res.status === 200 ? 'OK' : res.status === 404 ? 'Not Found' : res.status === 405 ? 'Method Not Allowed' : '';
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 ${res.status} ${reason}\r\nContent-Type: ${res.contentType}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
    });
  });
}
