// What the L7 fast path (h1Server.ts) hands to node:http, on the whole path in one process: an app's
// client -> L7UpstreamListener -> mTLS -> L7Inbound -> the app. An HTTP/1.0 request and a request
// with `Expect: 100-continue` are served by node:http on the upstream listener (the expectation is
// forwarded, so the inbound side hands its connection over too) and reach the app whole; requests
// on the fast path before and after still work on the same listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { inboundSidecar, resolverChain, upstreamListener, useL7Env } from './support/l7Env.ts';

let local = 0;
const seen: Array<{ method: string; url: string; version: string; body: string; expect?: string }> = [];

useL7Env(async (env) => {
  const service = 'payments';
  const app = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, version: req.httpVersion, body, expect: req.headers.expect });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(`got ${body}`) });
      res.end(`got ${body}`);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  env.closers.push(() => { app.closeAllConnections(); return new Promise<void>((r) => app.close(() => r())); });
  const appPort = (app.address() as net.AddressInfo).port;
  await inboundSidecar(env, service, appPort);
  local = (await upstreamListener(env, resolverChain(service))).port;
});

/** Sends raw bytes on a new connection, returns everything until the listener closes it. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(local, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('end', () => { s.end(); resolve(got); });
    s.on('error', reject);
    s.write(text);
  });
}

test('HTTP/1.0 goes through node:http on the upstream listener and reaches the app', async () => {
  const out = await raw('POST /old HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello');
  assert.match(out, /^HTTP\/1\.[01] 200 /);
  assert.match(out, /got hello$/);
  assert.deepEqual(seen.at(-1), { method: 'POST', url: '/old', version: '1.1', body: 'hello', expect: undefined });
});

test('Expect: 100-continue gets its 100 and the body reaches the app through both sidecars', async () => {
  const answer = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request({ host: '127.0.0.1', port: local, method: 'PUT', path: '/expect', agent: false, headers: { expect: '100-continue', 'content-length': 3 } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body, continued }));
    });
    req.on('continue', () => { continued = true; req.end('abc'); });
    req.on('error', reject);
  });
  assert.deepEqual(answer, { status: 200, body: 'got abc', continued: true });
  assert.deepEqual(seen.at(-1), { method: 'PUT', url: '/expect', version: '1.1', body: 'abc', expect: '100-continue' });
});

test('fast-path requests on the same listener before and after the handed-over ones', async () => {
  const out = await raw('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(out.match(/HTTP\/1\.1 200 OK/g)?.length, 2, out);
  assert.deepEqual(seen.slice(-2).map((s) => s.url), ['/a', '/b']);
});
