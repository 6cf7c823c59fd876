// Unit tests of the proxy's pieces: names, the proxy config with Consul's defaults, the
// -sidecar-for lookup, intention decision caching, the HTTP codec, blocking watches, metrics text.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { parseServiceUri, serviceUri, upstreamSni, uriSans } from '../src/spiffe.ts';
import { AuthorizeCache, InboundListener, serialHex } from '../src/inbound.ts';
import { checkServerSpiffe, instanceAddress } from '../src/upstream.ts';
import { lookupProxyIdForSidecar, resolveProxyConfig, startSidecarProxy, ProxyConfigError } from '../src/sidecarProxy.ts';
import { makeLeaf, makeRoot, rootsBody } from './support/testCa.ts';
import { AgentApi, parseHttpAddr, watch } from '../src/agentApi.ts';
import { decodeChunked, parseResponse, request } from '../src/httpLite.ts';
import { Metrics } from '../src/metrics.ts';
import type { ProxyService } from '../src/types.ts';
import { FakeAgent } from './support/fakeAgent.ts';
import type tls from 'node:tls';

describe('SPIFFE IDs and SNI', () => {
  const cases: Array<[string, string, ReturnType<typeof parseServiceUri>]> = [
    ['a service', 'spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web',
      { trustDomain: '11111111-2222-3333-4444-555555555555.consul', namespace: 'default', datacenter: 'dc1', service: 'web' }],
    ['upper-case trust domain is lower-cased', 'spiffe://ABC.consul/ns/default/dc/dc1/svc/web', { trustDomain: 'abc.consul', namespace: 'default', datacenter: 'dc1', service: 'web' }],
    ['an escaped service name', 'spiffe://td.consul/ns/default/dc/dc1/svc/a%20b', { trustDomain: 'td.consul', namespace: 'default', datacenter: 'dc1', service: 'a b' }],
    ['a client agent is no service', 'spiffe://td.consul/agent/client/dc/dc1/id/node1', undefined],
    ['the signing ID is no service', 'spiffe://td.consul', undefined],
    ['another scheme', 'https://td.consul/ns/default/dc/dc1/svc/web', undefined],
    ['extra path segments', 'spiffe://td.consul/ns/default/dc/dc1/svc/web/x', undefined],
    ['not a URI', 'web', undefined],
    ['a bad escape', 'spiffe://td.consul/ns/default/dc/dc1/svc/%zz', undefined],
  ];
  for (const [name, uri, want] of cases) test(name, () => assert.deepEqual(parseServiceUri(uri), want));

  test('format and parse agree', () => {
    const id = { trustDomain: 'td.consul', namespace: 'default', datacenter: 'dc-2', service: 'pay ments' };
    assert.deepEqual(parseServiceUri(serviceUri(id)), id);
  });
  test('upstream SNI is <service>.default.<dc>.internal.<td>', () => {
    assert.equal(upstreamSni('payments', 'dc1', 'abc.consul'), 'payments.default.dc1.internal.abc.consul');
  });
  test('URI SANs from Node\'s subjectaltname', () => {
    assert.deepEqual(uriSans('DNS:a.b, URI:spiffe://td/ns/default/dc/dc1/svc/web, IP Address:127.0.0.1'), ['spiffe://td/ns/default/dc/dc1/svc/web']);
    assert.deepEqual(uriSans(undefined), []);
  });
});

describe('server identity check (upstream side)', () => {
  const cert = (san: string) => ({ subjectaltname: san }) as tls.PeerCertificate;
  const want = { service: 'payments', trustDomain: 'td.consul' };
  const rows: Array<[string, string, boolean]> = [
    ['the expected service', 'URI:spiffe://td.consul/ns/default/dc/dc1/svc/payments', true],
    ['the expected service in another datacenter', 'URI:spiffe://td.consul/ns/default/dc/dc2/svc/payments', true],
    ['another service', 'URI:spiffe://td.consul/ns/default/dc/dc1/svc/billing', false],
    ['another trust domain', 'URI:spiffe://other.consul/ns/default/dc/dc1/svc/payments', false],
    ['another namespace', 'URI:spiffe://td.consul/ns/team/dc/dc1/svc/payments', false],
    ['no URI SAN', 'DNS:payments', false],
    ['two URI SANs', 'URI:spiffe://td.consul/ns/default/dc/dc1/svc/payments, URI:spiffe://td.consul/ns/default/dc/dc1/svc/billing', false],
  ];
  for (const [name, san, ok] of rows) test(name, () => assert.equal(checkServerSpiffe(cert(san), want) === undefined, ok));
});

test('serialHex: Consul\'s colon-separated lower-case hex', () => {
  assert.equal(serialHex('0A1B2C'), '0a:1b:2c');
  assert.equal(serialHex('A1B2C'), '0a:1b:2c');
});

test('AuthorizeCache forgets a decision after its TTL', () => {
  let now = 1000;
  const c = new AuthorizeCache(500, () => now);
  c.set('u', { Authorized: true, Reason: 'x' });
  now = 1499;
  assert.equal(c.get('u')?.Authorized, true);
  now = 1500;
  assert.equal(c.get('u'), undefined);
});

test('InboundListener.authorize: one agent call for callers arriving together; refreshed ahead of expiry without waiting; an expired answer is never used', async () => {
  let calls = 0;
  let answer = true;
  let release: () => void = () => {};
  const api = { post: async () => { calls++; await new Promise<void>((r) => { release = r; }); return { status: 200, body: { Authorized: answer, Reason: 'r' } }; } };
  const logs: string[] = [];
  const inbound = new InboundListener({
    api: api as never, tls: { onRotate: () => () => {} } as never, metrics: {} as never,
    logger: { error: (m: string) => logs.push(m) } as never, target: () => 'shop', localApp: () => ({ host: '127.0.0.1', port: 1 }), authorizeCacheMs: 2000,
  });
  // Three requests before the agent answered: one POST, the same answer for all.
  const first = [inbound.authorize('spiffe://x/svc/web', '01'), inbound.authorize('spiffe://x/svc/web', '01'), inbound.authorize('spiffe://x/svc/web', '01')];
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 1);
  release();
  assert.deepEqual((await Promise.all(first)).map((x) => x.Authorized), [true, true, true]);
  // Fresh: from the cache, no call.
  assert.equal((await inbound.authorize('spiffe://x/svc/web', '01')).Authorized, true);
  assert.equal(calls, 1);
  // In the last half of its life: the cached answer at once, a refresh in the background.
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await inbound.authorize('spiffe://x/svc/web', '01')).Authorized, true);
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 2);
  answer = false;
  release();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await inbound.authorize('spiffe://x/svc/web', '01')).Authorized, false, 'the refreshed answer replaces the cached one');
  // Expired (no request for a whole TTL): the next caller waits for the agent.
  await new Promise((r) => setTimeout(r, 2100));
  const late = inbound.authorize('spiffe://x/svc/web', '01');
  let settled = false;
  void late.then(() => { settled = true; });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, 'an expired answer is not used');
  assert.equal(calls, 3);
  answer = true;
  release();
  assert.equal((await late).Authorized, true);
  assert.deepEqual(logs, []);
});

test('instanceAddress: the service address, else the node\'s', () => {
  assert.deepEqual(instanceAddress({ Node: { Address: '10.0.0.1' }, Service: { ID: 'p', Service: 'p', Port: 21000 } }), { host: '10.0.0.1', port: 21000 });
  assert.deepEqual(instanceAddress({ Node: { Address: '10.0.0.1' }, Service: { ID: 'p', Service: 'p', Address: '10.0.0.2', Port: 21000 } }), { host: '10.0.0.2', port: 21000 });
});

describe('resolveProxyConfig: Consul\'s built-in proxy defaults', () => {
  const svc = (over: Partial<NonNullable<ProxyService['Proxy']>> = {}, rest: Partial<ProxyService> = {}): ProxyService => ({
    Kind: 'connect-proxy', ID: 'web-sidecar-proxy', Service: 'web-sidecar-proxy', Port: 21000,
    Proxy: { DestinationServiceName: 'web', LocalServicePort: 8080, ...over }, ...rest,
  });
  test('defaults: bind 0.0.0.0 on the service port, app on 127.0.0.1', () => {
    const c = resolveProxyConfig(svc());
    assert.deepEqual([c.bind, c.localApp, c.destinationName, c.upstreams], [{ host: '0.0.0.0', port: 21000 }, { host: '127.0.0.1', port: 8080 }, 'web', []]);
  });
  test('Config.bind_address/bind_port/local_service_address override', () => {
    const c = resolveProxyConfig(svc({ Config: { bind_address: '127.0.0.2', bind_port: '9000', local_service_address: '127.0.0.3:7000' } }));
    assert.deepEqual([c.bind, c.localApp], [{ host: '127.0.0.2', port: 9000 }, { host: '127.0.0.3', port: 7000 }]);
  });
  test('prepared-query upstreams are not served (service upstreams only)', () => {
    const c = resolveProxyConfig(svc({ Upstreams: [{ DestinationName: 'a', LocalBindPort: 1 }, { DestinationType: 'prepared_query', DestinationName: 'q', LocalBindPort: 2 }] }));
    assert.deepEqual(c.upstreams.map((u) => u.DestinationName), ['a']);
  });
  test('not a connect-proxy: an error naming the service', () => {
    assert.throws(() => resolveProxyConfig(svc({}, { Kind: '' })), (e: Error) => e instanceof ProxyConfigError && /"web-sidecar-proxy" is not a connect-proxy/.test(e.message));
  });
  test('no local service port: an error', () => {
    assert.throws(() => resolveProxyConfig(svc({ LocalServicePort: 0 })), /LocalServicePort is not set/);
  });
  test('a bad local_service_address: an error naming it', () => {
    assert.throws(() => resolveProxyConfig(svc({ Config: { local_service_address: 'nope' } })), /Config.local_service_address "nope": want host:port/);
  });
});

describe('with a fake agent', () => {
  test('lookupProxyIdForSidecar: one, none, several (Consul\'s texts)', async () => {
    const agent = await FakeAgent.start();
    try {
      const api = new AgentApi({ httpAddr: agent.addr });
      const proxy = (id: string, dest: string): ProxyService => ({ Kind: 'connect-proxy', ID: id, Service: id, Port: 1, Proxy: { DestinationServiceName: dest, DestinationServiceID: dest } });
      agent.setService(proxy('web-sidecar-proxy', 'web'));
      agent.setService({ ID: 'web', Service: 'web', Port: 2 });
      assert.equal(await lookupProxyIdForSidecar(api, 'web'), 'web-sidecar-proxy');
      await assert.rejects(lookupProxyIdForSidecar(api, 'db'), { message: 'No sidecar proxy registered for db' });
      agent.setService(proxy('web-proxy-2', 'web'));
      await assert.rejects(lookupProxyIdForSidecar(api, 'web'), { message: 'More than one sidecar proxy registered for web.\n    Start proxy with -proxy-id and one of the following IDs: web-proxy-2, web-sidecar-proxy' });
    } finally {
      await agent.close();
    }
  });

  test('watch: the first answer, then each change by index; a blocking query waits for it', async () => {
    const agent = await FakeAgent.start();
    const stop = new AbortController();
    try {
      agent.setHealth('db', []);
      const seen: number[] = [];
      const done = watch<unknown[]>({ api: new AgentApi({ httpAddr: agent.addr }), path: '/v1/health/connect/db?passing=1', signal: stop.signal, onChange: (v) => seen.push(v.length) });
      const until = async (n: number) => { for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10)); };
      await until(1);
      assert.deepEqual(seen, [0]);
      agent.setHealth('db', [{ Node: { Address: '127.0.0.1' }, Service: { ID: 'a', Service: 'a', Port: 1 } }]);
      await until(2);
      assert.deepEqual(seen, [0, 1]);
      stop.abort();
      await done;
    } finally {
      stop.abort();
      await agent.close();
    }
  });

  test('watch: errors are reported and retried with backoff; the watch recovers', async () => {
    // A server that fails the first two requests, then answers.
    let calls = 0;
    const server = net.createServer((s) => {
      s.once('data', () => {
        calls++;
        if (calls <= 2) s.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom');
        else s.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 7\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stop = new AbortController();
    const errors: string[] = [];
    let value: unknown;
    const done = watch<unknown>({
      api: new AgentApi({ httpAddr: `127.0.0.1:${(server.address() as net.AddressInfo).port}` }), path: '/v1/x', signal: stop.signal,
      minBackoffMs: 10, maxBackoffMs: 20, onError: (e) => errors.push(e.message), onChange: (v) => { value = v; stop.abort(); },
    });
    await done;
    server.close();
    assert.deepEqual(value, []);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /agent API \/v1\/x: 500 boom/);
  });
});

describe('httpLite', () => {
  test('a Content-Length answer', () => {
    const r = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nX-Consul-Index: 5\r\nContent-Length: 3\r\n\r\nabc'));
    assert.deepEqual([r.status, r.headers.get('x-consul-index'), r.body.toString()], [200, '5', 'abc']);
  });
  test('a chunked answer', () => {
    assert.equal(decodeChunked(Buffer.from('3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n')).toString(), 'abcde');
    const r = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n1\r\n]\r\n0\r\n\r\n'));
    assert.equal(r.body.toString(), '[]');
  });
  test('truncated and malformed answers are errors', () => {
    assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')), /shorter than Content-Length/);
    assert.throws(() => parseResponse(Buffer.from('SSH-2.0\r\n\r\n')), /bad status line/);
    assert.throws(() => decodeChunked(Buffer.from('5\r\nab')), /truncated/);
  });
  test('a refused connection is an error, an abort rejects at once', async () => {
    const server = net.createServer(() => { /* never answers */ });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const ac = new AbortController();
    const p = request({ host: '127.0.0.1', port, method: 'GET', path: '/', signal: ac.signal });
    ac.abort(new Error('stopped'));
    await assert.rejects(p, /stopped/);
    server.close();
    await new Promise((r) => server.once('close', r));
    await assert.rejects(request({ host: '127.0.0.1', port, method: 'GET', path: '/' }), /ECONNREFUSED/);
  });
  test('parseHttpAddr', () => {
    assert.deepEqual(parseHttpAddr('127.0.0.1:8500'), { host: '127.0.0.1', port: 8500 });
    assert.deepEqual(parseHttpAddr('http://[::1]:8501'), { host: '::1', port: 8501 });
    assert.throws(() => parseHttpAddr('https://x:1'), /only http/);
  });
});

test('Metrics: Prometheus text with HELP, TYPE and labels', () => {
  const m = new Metrics();
  m.add('consul_proxy_conns_total', 'Connections.', { direction: 'inbound' });
  m.add('consul_proxy_conns_total', 'Connections.', { direction: 'inbound' }, 2);
  m.add('consul_proxy_conns', 'Open.', { direction: 'upstream' }, 1, 'gauge');
  m.add('consul_proxy_conns', 'Open.', { direction: 'upstream' }, -1, 'gauge');
  const text = m.text();
  assert.match(text, /# HELP consul_proxy_conns_total Connections\.\n# TYPE consul_proxy_conns_total counter\nconsul_proxy_conns_total\{direction="inbound"\} 3\n/);
  assert.match(text, /consul_proxy_conns\{direction="upstream"\} 0\n/);
  assert.match(text, /# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes \d+/);
  assert.equal(m.get('consul_proxy_conns_total', { direction: 'inbound' }), 3);
});

test('a public port already taken: startSidecarProxy fails naming the address and the cause', async () => {
  const agent = await FakeAgent.start();
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const root = makeRoot('td.consul');
    agent.setRoots(rootsBody('td.consul', [{ root, active: true }]));
    agent.setLeaf('web', makeLeaf(root, { trustDomain: 'td.consul', dc: 'dc1', service: 'web' }));
    agent.setService({ Kind: 'connect-proxy', ID: 'web-sidecar-proxy', Service: 'web-sidecar-proxy', Port: port, Proxy: { DestinationServiceName: 'web', LocalServicePort: 1, Config: { bind_address: '127.0.0.1' } } });
    await assert.rejects(startSidecarProxy({ httpAddr: agent.addr, proxyServiceId: 'web-sidecar-proxy' }),
      (e: Error) => e instanceof ProxyConfigError && e.message.includes(`127.0.0.1:${port}`) && /EADDRINUSE/.test(e.message));
  } finally {
    taken.close();
    await agent.close();
  }
});
