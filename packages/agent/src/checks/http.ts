// HTTP checks, as Consul's CheckHTTP: one request per run (keep-alive off, a fresh connection each
// time), 2xx → passing, 429 → warning, any other status or a failed request → critical. The output
// is Consul's "HTTP GET <url>: 200 OK Output: <body>", the body cut to the output limit. As Go's
// http.Client does, redirects are followed (at most 10) and the timeout covers the whole exchange,
// body included; a body still arriving at the timeout is reported as far as it got.
// Consul sends `User-Agent: Consul Health Check` and `Accept: text/plain, text/*, */*` unless the
// check's Header sets them; a `Host` header sets the request's host.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { OutputCapture, truncateOutput } from './output.ts';
import { critical, deadline, errorMessage, goQuote, type Probe, type ProbeResult, type Timers } from './probe.ts';

export const HTTP_USER_AGENT = 'Consul Health Check';
export const HTTP_ACCEPT = 'text/plain, text/*, */*';
/** Go's http.Client gives up after 10 redirects. */
const MAX_REDIRECTS = 10;
/** Headers Go drops when a redirect leaves the original host. */
const CROSS_HOST_DROPPED = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2', 'host']);

export interface HttpProbeOptions {
  url: string;
  /** Upper case; Consul's default is GET. */
  method: string;
  header: Record<string, string[]>;
  body: string;
  tlsSkipVerify: boolean;
  tlsServerName: string;
  timeoutMs: number;
  outputMaxBytes: number;
  timers: Timers;
}

export function httpProbe(o: HttpProbeOptions): Probe {
  return async (signal) => {
    const dl = deadline(signal, o.timeoutMs, o.timers);
    try {
      return await httpCheck(o, dl.signal, dl.timedOut);
    } finally {
      dl.clear();
    }
  };
}

async function httpCheck(o: HttpProbeOptions, signal: AbortSignal, timedOut: () => boolean): Promise<ProbeResult> {
  // Go's url.Error: `Get "http://...": <cause>`.
  const op = o.method.charAt(0) + o.method.slice(1).toLowerCase();
  const fail = (url: string, cause: string): ProbeResult => critical(truncateOutput(`${op} ${goQuote(url)}: ${cause}`, o.outputMaxBytes));

  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    return critical(truncateOutput(`parse ${goQuote(o.url)}: invalid URL`, o.outputMaxBytes));
  }
  let shown = o.url;
  let method = o.method;
  let body = o.body;
  let headers = requestHeaders(o.header);
  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return fail(shown, `unsupported protocol scheme ${goQuote(url.protocol.slice(0, -1))}`);
    }
    let res: IncomingMessage;
    try {
      res = await send(url, method, headers, body, o, signal);
    } catch (err) {
      return fail(shown, timedOut() ? 'context deadline exceeded (Client.Timeout exceeded while awaiting headers)' : errorMessage(err));
    }
    const location = res.headers.location;
    const code = res.statusCode ?? 0;
    if (location && [301, 302, 303, 307, 308].includes(code)) {
      res.resume();
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        return fail(shown, `failed to parse Location header ${goQuote(location)}`);
      }
      if (redirects === MAX_REDIRECTS) return fail(next.href, `stopped after ${MAX_REDIRECTS} redirects`);
      if (code !== 307 && code !== 308) {
        if (method !== 'GET' && method !== 'HEAD') method = 'GET';
        body = '';
      }
      if (next.host !== url.host) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CROSS_HOST_DROPPED.has(k.toLowerCase())));
      }
      url = next;
      shown = next.href;
      continue;
    }

    const capture = new OutputCapture(o.outputMaxBytes);
    await readBody(res, capture, signal);
    const statusLine = res.statusMessage ? `${code} ${res.statusMessage}` : String(code);
    const output = `HTTP ${o.method} ${o.url}: ${statusLine} Output: ${capture.text()}`;
    if (code >= 200 && code <= 299) return { status: 'passing', output };
    if (code === 429) return { status: 'warning', output };
    return { status: 'critical', output };
  }
}

/** The check's headers plus Consul's defaults; a Host header is sent once (its first value). */
function requestHeaders(header: Record<string, string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, values] of Object.entries(header)) {
    if (values.length === 0) continue;
    out[name] = name.toLowerCase() === 'host' ? values[0]! : values;
  }
  setDefault(out, 'User-Agent', HTTP_USER_AGENT);
  setDefault(out, 'Accept', HTTP_ACCEPT);
  return out;
}

/** Sets `name` unless a header of that name (any case) has a non-empty first value, as Go's Header.Get. */
function setDefault(headers: Record<string, string | string[]>, name: string, value: string): void {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== lower) continue;
    if ((Array.isArray(v) ? v[0] : v) !== '') return;
    delete headers[k];
  }
  headers[name] = value;
}

function send(
  url: URL, method: string, headers: Record<string, string | string[]>, body: string,
  o: HttpProbeOptions, signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { method, headers, agent: false, signal };
    if (url.protocol === 'https:') {
      options.rejectUnauthorized = !o.tlsSkipVerify;
      // SNI is the TLSServerName, else the URL's host name (never an IP address, as Go).
      const host = url.hostname.replace(/^\[|\]$/g, '');
      options.servername = o.tlsServerName || (net.isIP(host) ? '' : host);
    }
    const req = (url.protocol === 'https:' ? https : http).request(url, options, resolve);
    req.on('error', reject);
    req.end(body === '' ? undefined : body);
  });
}

/** Reads the body into `capture` until it ends, fails or `signal` aborts (keeping what came). */
function readBody(res: IncomingMessage, capture: OutputCapture, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      res.destroy();
      done();
    };
    res.on('data', (chunk: Buffer) => capture.write(chunk));
    res.on('end', done);
    res.on('error', done);
    res.on('close', done);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}
