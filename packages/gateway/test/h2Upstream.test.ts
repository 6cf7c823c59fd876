// The HTTP/2 upstream listener against sidecars that are real TLS servers on loopback (fake agent
// for health, real certificates): a sidecar that picks ALPN http/1.1 gets the request over
// HTTP/1.1 and its answer (trailers included) goes back to the h2c caller as HTTP/2; a sidecar
// that picks h2 gets every request on one TLS connection (multiplexed streams).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { H2UpstreamListener } from '../src/h2Upstream.ts';
import { DC, TD, sidecar, upstreamListener, useL7Env } from './support/l7Env.ts';

const env = useL7Env();

function chainFor(service: string, routes: Array<{ Match?: Record<string, unknown>; Destination?: Record<string, unknown> }> = []): CompiledDiscoveryChain {
  const id = `${service}.default.default.${DC}`;
  const resolver = `resolver:${id}`;
  return {
    ServiceName: service, Datacenter: DC, Protocol: 'http2', StartNode: routes.length ? `router:${service}` : resolver,
    Nodes: {
      [resolver]: { Type: 'resolver', Name: id, Resolver: { Target: id } },
      ...(routes.length ? { [`router:${service}`]: { Type: 'router' as const, Name: service, Routes: routes.map((r) => ({ Definition: r, NextNode: resolver })) } } : {}),
    },
    Targets: { [id]: { ID: id, Service: service, Datacenter: DC, SNI: `${service}.default.${DC}.internal.${TD}` } },
  };
}

/** An HTTP/2-mode upstream listener on `service`'s chain (its sidecar registered by sidecar()). */
async function listener(service: string, routes: Parameters<typeof chainFor>[1] = []): Promise<number> {
  return (await upstreamListener(env, chainFor(service, routes), { make: (o) => new H2UpstreamListener(o) })).port;
}

type Answer = { status: number; headers: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders | undefined };
function h2get(port: number, path: string, n = 1, extra: Record<string, string> = {}): Promise<Answer[]> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const one = () => new Promise<Answer>((resolve, reject) => {
    const req = session.request({ ':path': path, ...extra });
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (h) => { status = Number(h[':status']); headers = h; });
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => resolve({ status, headers, body, trailers }));
    req.on('error', reject);
  });
  return Promise.all(Array.from({ length: n }, one)).finally(() => session.close());
}

test('a sidecar that picks http/1.1: the request goes over HTTP/1.1, the answer and its trailers come back as HTTP/2', async () => {
  const h1 = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
    res.write(`${req.httpVersion} ${req.method} ${req.url}`);
    res.addTrailers({ 'x-sum': '42' });
    res.end();
  });
  env.closers.push(() => { h1.closeAllConnections(); });
  const peer = await sidecar(env, 'legacy', (s) => h1.emit('connection', s), ['http/1.1']);
  const port = await listener('legacy');
  const [r] = await h2get(port, '/a?b=1');
  assert.deepEqual([r!.status, r!.body, r!.trailers?.['x-sum']], [200, '1.1 GET /a?b=1', '42']);
});

test('a sidecar that picks h2: 20 concurrent requests share one TLS connection', async () => {
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'x-path': String(headers[':path']) }));
    stream.end(`h2 ${headers[':path']}`);
  });
  env.closers.push(() => { h2.close(); });
  const peer = await sidecar(env, 'modern', (s) => h2.emit('connection', s), ['h2', 'http/1.1']);
  const port = await listener('modern');
  const out = await h2get(port, '/m', 20);
  for (const r of out) assert.deepEqual([r.status, r.body, r.trailers?.['x-path']], [200, 'h2 /m', '/m']);
  assert.equal(peer.conns(), 1);
});

test('route settings on HTTP/2: retries on a status code, RequestTimeout answered 504 (gRPC: UNAVAILABLE, trailers-only)', async () => {
  const tries = new Map<string, number>();
  const h2 = http2.createServer();
  const hung: http2.ServerHttp2Stream[] = [];
  h2.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const n = (tries.get(path) ?? 0) + 1;
    tries.set(path, n);
    if (path.startsWith('/slow')) { hung.push(stream); return; } // never answers
    stream.respond({ ':status': (path.startsWith('/flaky') || path.startsWith('/nr')) && n === 1 ? 503 : 200 });
    stream.end(`${path} try ${n}`);
  });
  env.closers.push(() => { for (const s of hung) s.close(); h2.close(); });
  const peer = await sidecar(env, 'routed', (s) => h2.emit('connection', s), ['h2']);
  const port = await listener('routed', [
    { Match: { HTTP: { PathPrefix: '/slow' } }, Destination: { RequestTimeout: '300ms' } },
    { Match: { HTTP: { PathPrefix: '/flaky' } }, Destination: { NumRetries: 2, RetryOnStatusCodes: [503] } },
    { Match: { HTTP: { PathPrefix: '/nr' } }, Destination: { NumRetries: 2 } },
  ]);
  const [flaky] = await h2get(port, '/flaky/a');
  assert.deepEqual([flaky!.status, flaky!.body], [200, '/flaky/a try 2']);
  // NumRetries alone names no condition: the first 503 is the answer (Envoy with an empty retry_on).
  const [nr] = await h2get(port, '/nr/x');
  assert.deepEqual([nr!.status, tries.get('/nr/x')], [503, 1]);
  const [slow] = await h2get(port, '/slow');
  assert.deepEqual([slow!.status, slow!.body], [504, 'upstream request timeout']);
  const [grpcSlow] = await h2get(port, '/slow/pkg.Svc/M', 1, { 'content-type': 'application/grpc', te: 'trailers' });
  assert.deepEqual([grpcSlow!.status, grpcSlow!.headers['grpc-status'], grpcSlow!.headers['grpc-message'], grpcSlow!.body], [200, '14', 'upstream request timeout', '']);
});
