// Two sidecar proxies and two test apps against a fake agent (real sockets on loopback, real TLS):
// web -> web's upstream listener -> mTLS -> payments' proxy -> payments app, and every way that
// path must refuse: intentions, callers without a mesh certificate or from another CA, a server
// with the wrong identity; and a CA rotation under load without a failed request.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { startSidecarProxy, type SidecarProxy } from '../src/index.ts';
import type { ProxyService, ServiceEntry } from '../src/types.ts';
import { FakeAgent } from './support/fakeAgent.ts';
import { crossSign, makeLeaf, makeRoot, rootsBody, type TestRoot } from './support/testCa.ts';
import { startTestApp, type TestApp, type TestAppAnswer } from '../../../test/fixtures/testApp.ts';
import { freePort, waitFor } from '../../../test/support/index.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const DC = 'dc1';

let agent: FakeAgent;
let rootA: TestRoot;
let webApp: TestApp;
let paymentsApp: TestApp;
let webProxy: SidecarProxy;
let paymentsProxy: SidecarProxy;
let upstreamPort: number;
let paymentsPublicPort: number;
const extraProxies: SidecarProxy[] = [];

function proxyService(id: string, dest: string, port: number, appPort: number, upstreams: ProxyService['Proxy'] extends infer P ? P extends { Upstreams?: infer U } ? U : never : never = []): ProxyService {
  return {
    Kind: 'connect-proxy', ID: id, Service: id, Address: '', Port: port,
    Proxy: { DestinationServiceName: dest, DestinationServiceID: dest, LocalServiceAddress: '127.0.0.1', LocalServicePort: appPort, Upstreams: upstreams, Config: { bind_address: '127.0.0.1' } },
  };
}

function healthEntry(id: string, port: number): ServiceEntry {
  return { Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: id, Service: id, Port: port } };
}

function get(url: string): Promise<{ status: number; body: TestAppAnswer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as TestAppAnswer }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const upstreamUri = () => `http://127.0.0.1:${upstreamPort}`;

before(async () => {
  agent = await FakeAgent.start();
  rootA = makeRoot(TD);
  agent.setRoots(rootsBody(TD, [{ root: rootA, active: true }]));
  agent.setLeaf('web', makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'web' }));
  agent.setLeaf('payments', makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'payments' }));
  upstreamPort = await freePort();
  paymentsPublicPort = await freePort();
  const webPublicPort = await freePort();
  paymentsApp = await startTestApp({ name: 'payments v1 (onprem)' });
  webApp = await startTestApp({ name: 'web (onprem)', upstreams: [upstreamUri()] });
  agent.setService(proxyService('payments-sidecar-proxy', 'payments', paymentsPublicPort, paymentsApp.port));
  agent.setService(proxyService('web-sidecar-proxy', 'web', webPublicPort, webApp.port, [{ DestinationName: 'payments', LocalBindAddress: '127.0.0.1', LocalBindPort: upstreamPort }]));
  agent.setHealth('payments', [healthEntry('payments-sidecar-proxy', paymentsPublicPort)]);
  paymentsProxy = await startSidecarProxy({ httpAddr: agent.addr, sidecarFor: 'payments', metricsAddr: '127.0.0.1:0' });
  webProxy = await startSidecarProxy({ httpAddr: agent.addr, proxyServiceId: 'web-sidecar-proxy' });
});

after(async () => {
  for (const p of [webProxy, paymentsProxy, ...extraProxies]) await p?.stop();
  await webApp?.close();
  await paymentsApp?.close();
  await agent?.close();
});

test('web -> payments through both sidecars over mTLS; the intention check names caller and target', async () => {
  assert.equal(paymentsProxy.proxyId, 'payments-sidecar-proxy');
  assert.equal(webProxy.upstreamAddress('payments')?.port, upstreamPort);
  const r = await get(webApp.url + '/pay');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.name, 'web (onprem)');
  const call = r.body.upstream_calls?.[upstreamUri()];
  assert.equal(call?.name, 'payments v1 (onprem)');
  assert.equal(call?.uri, upstreamUri());
  assert.equal(call?.code, 200);
  // Later connections resume the TLS session instead of a full handshake.
  for (let i = 0; i < 3; i++) assert.equal((await get(webApp.url)).status, 200);
  assert.ok(webProxy.metrics.get('consul_proxy_tls_resumed_total', { upstream: 'payments' }) >= 2, webProxy.metrics.text());
  const auth = agent.authorizeCalls.at(-1)!;
  assert.equal(auth.Target, 'payments');
  assert.equal(auth.ClientCertURI, `spiffe://${TD}/ns/default/dc/${DC}/svc/web`);
  assert.match(auth.ClientCertSerial, /^[0-9a-f]{2}(:[0-9a-f]{2})*$/);
});

test('an intention deny refuses new connections within 2 s (the app sees a connection error); allow again works', async () => {
  await get(webApp.url); // a decision is cached now: the deny must still win within 2 s
  const denyAt = Date.now();
  agent.authorize = (req) => req.ClientCertURI.endsWith('/svc/web') ? { Authorized: false, Reason: 'Matched L4 intention: web => payments (deny)' } : { Authorized: true, Reason: '' };
  const refused = await waitFor('web -> payments refused', async () => {
    const r = await get(webApp.url);
    return r.status === 500 ? r : undefined;
  }, 5000);
  const elapsed = Date.now() - denyAt;
  assert.ok(elapsed <= 2000, `refused after ${elapsed} ms`);
  const call = refused.body.upstream_calls?.[upstreamUri()];
  assert.equal(call?.code, -1);
  assert.ok(call?.error, 'a connection error is reported');
  // Every new connection from now on is refused, not just one.
  for (let i = 0; i < 3; i++) assert.equal((await get(webApp.url)).status, 500);
  assert.ok(paymentsProxy.metrics.get('consul_proxy_intention_denials_total') >= 4);
  agent.authorize = () => ({ Authorized: true, Reason: 'allowed' });
  await waitFor('web -> payments allowed again', async () => (await get(webApp.url)).status === 200, 5000);
});

/** Sends an HTTP request over `socket` once connected; resolves with what came back and how it ended. */
function probe(socket: net.Socket | tls.TLSSocket, connectEvent: 'connect' | 'secureConnect'): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    socket.on(connectEvent, () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', (c: Buffer) => { data += c.toString('latin1'); });
    socket.on('error', (e) => { error = e.message; });
    socket.on('close', () => resolve({ data, error }));
    socket.setTimeout(5000, () => socket.destroy(new Error('probe timed out')));
  });
}

test('a plain TCP client and a TLS client without a mesh certificate cannot reach the public listener', async () => {
  const before = paymentsProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'inbound' });
  const plain = await probe(net.connect(paymentsPublicPort, '127.0.0.1'), 'connect');
  assert.doesNotMatch(plain.data, /payments v1/);
  assert.doesNotMatch(plain.data, /^HTTP\//);
  const noCert = await probe(tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', ca: [rootA.pem], servername: 'payments', rejectUnauthorized: false }), 'secureConnect');
  assert.doesNotMatch(noCert.data, /payments v1/);
  assert.ok(noCert.error, 'the TLS client is refused with an error');
  const after = paymentsProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'inbound' });
  assert.ok(after >= before + 2, `handshake failures ${before} -> ${after}`);
});

test('a certificate from another CA is refused; the same caller with a leaf of this CA gets through', async () => {
  const other = makeRoot(TD, 'Another CA');
  const foreign = makeLeaf(other, { trustDomain: TD, dc: DC, service: 'web' });
  const failuresBefore = paymentsProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'inbound' });
  const refused = await probe(tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', key: foreign.PrivateKeyPEM, cert: foreign.CertPEM, ca: [rootA.pem], rejectUnauthorized: false }), 'secureConnect');
  assert.doesNotMatch(refused.data, /payments v1/);
  // The server ends the handshake (TLS 1.3: after the client thinks it is done, so the client may
  // see an alert or a plain close): what matters is that nothing reaches the app.
  assert.ok(paymentsProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'inbound' }) > failuresBefore);
  const good = makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'web' });
  const ok = await probe(tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', key: good.PrivateKeyPEM, cert: good.CertPEM, ca: [rootA.pem], rejectUnauthorized: false }), 'secureConnect');
  assert.match(ok.data, /payments v1 \(onprem\)/);
});

test('a valid leaf for the wrong service is refused by the upstream side\'s identity check', async () => {
  // An impostor: a proxy with a good leaf of this CA, but for "billing", listed as a payments instance.
  const impostorApp = await startTestApp({ name: 'impostor' });
  const impostorPort = await freePort();
  agent.setLeaf('billing', makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'billing' }));
  agent.setService(proxyService('billing-sidecar-proxy', 'billing', impostorPort, impostorApp.port));
  const impostor = await startSidecarProxy({ httpAddr: agent.addr, proxyServiceId: 'billing-sidecar-proxy' });
  extraProxies.push(impostor);
  try {
    const before = webProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'upstream' });
    agent.setHealth('payments', [healthEntry('billing-sidecar-proxy', impostorPort)]);
    const r = await waitFor('the impostor is tried and refused', async () => {
      const res = await get(webApp.url);
      return res.status === 500 ? res : undefined;
    }, 5000);
    assert.equal(r.body.upstream_calls?.[upstreamUri()]?.code, -1);
    assert.doesNotMatch(JSON.stringify(r.body), /impostor/);
    assert.ok(webProxy.metrics.get('consul_proxy_tls_handshake_failures_total', { direction: 'upstream' }) > before);
  } finally {
    agent.setHealth('payments', [healthEntry('payments-sidecar-proxy', paymentsPublicPort)]);
    await impostorApp.close();
  }
  await waitFor('payments reachable again', async () => (await get(webApp.url)).status === 200, 5000);
});

test('leaf renewal and root rotation (cross-signed) under constant load: zero failed requests', async () => {
  let ok = 0;
  const failures: string[] = [];
  let running = true;
  const load = async () => {
    // Bounded: the loop ends when the rotation is over (or after 2,000 requests).
    for (let i = 0; running && i < 2000; i++) {
      try {
        const r = await get(webApp.url);
        if (r.status === 200 && r.body.upstream_calls?.[upstreamUri()]?.name === 'payments v1 (onprem)') ok++;
        else failures.push(JSON.stringify(r.body));
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const workers = [load(), load()];
  const served = async (n: number) => { const target = ok + n; await waitFor(`${n} more requests`, () => ok >= target, 20_000); };
  await served(5);
  // 1. A new root, cross-signed by the old one. Leaves are renewed first (chains carry the
  //    cross-signed certificate), while every proxy still trusts only the old root.
  const rootB = makeRoot(TD, 'Trellis CA 2');
  const cross = crossSign(rootB, rootA);
  agent.setLeaf('payments', makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'payments', chain: [cross] }));
  await served(5);
  agent.setLeaf('web', makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'web', chain: [cross] }));
  await served(5);
  // 2. Roots: both, the new one active.
  agent.setRoots(rootsBody(TD, [{ root: rootA, active: false }, { root: rootB, active: true }]));
  await served(5);
  // 3. Leaves renewed again without the cross-signed certificate, then the old root is gone.
  agent.setLeaf('payments', makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'payments' }));
  agent.setLeaf('web', makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'web' }));
  await served(5);
  agent.setRoots(rootsBody(TD, [{ root: rootB, active: true }]));
  await served(10);
  running = false;
  await Promise.all(workers);
  assert.deepEqual(failures, []);
  assert.ok(ok >= 35, `${ok} requests served`);
  // payments' proxy now presents its rootB leaf, and no longer trusts the old CA.
  const presented = await new Promise<tls.PeerCertificate>((resolve, reject) => {
    const s = tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', rejectUnauthorized: false }, () => { resolve(s.getPeerCertificate()); s.destroy(); });
    s.on('error', reject);
  });
  assert.equal(presented.issuer.CN, 'Trellis CA 2');
  const oldLeaf = makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'web' });
  const refused = await probe(tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', key: oldLeaf.PrivateKeyPEM, cert: oldLeaf.CertPEM, rejectUnauthorized: false }), 'secureConnect');
  assert.doesNotMatch(refused.data, /payments v1/);
});

test('GET /metrics on -metrics-addr serves Prometheus text with the connection counters', async () => {
  const addr = paymentsProxy.metricsAddress()!;
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: addr.port, path: '/metrics', agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  assert.match(text, /# TYPE consul_proxy_conns_total counter/);
  const inbound = /consul_proxy_conns_total\{direction="inbound"\} (\d+)/.exec(text);
  assert.ok(inbound && Number(inbound[1]) > 0, text);
  assert.match(text, /consul_proxy_rx_bytes_total\{direction="inbound"\} [1-9]/);
  assert.match(text, /consul_proxy_intention_denials_total [1-9]/);
});

test('a changed proxy definition opens and closes upstream listeners without a restart', async () => {
  const svc = agent.services.get('web-sidecar-proxy')!;
  const extraPort = await freePort();
  const withExtra: ProxyService = { ...svc, Proxy: { ...svc.Proxy!, Upstreams: [...(svc.Proxy!.Upstreams ?? []), { DestinationName: 'payments', Datacenter: DC, LocalBindAddress: '127.0.0.1', LocalBindPort: extraPort }] } };
  agent.setService(withExtra);
  const answer = await waitFor('the new upstream listener answers', async () => {
    const app = await startTestApp({ name: 'probe', upstreams: [`http://127.0.0.1:${extraPort}`] });
    try {
      const r = await get(app.url);
      return r.status === 200 ? r : undefined;
    } finally {
      await app.close();
    }
  }, 5000);
  assert.equal(answer.body.upstream_calls?.[`http://127.0.0.1:${extraPort}`]?.name, 'payments v1 (onprem)');
  agent.setService(svc);
  await waitFor('the removed upstream listener is closed', () => new Promise<boolean>((resolve) => {
    const s = net.connect(extraPort, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  }), 5000);
  assert.equal((await get(webApp.url)).status, 200);
});

test('an instance that refuses connections is skipped for a healthy one: no request fails', async () => {
  const dead = await freePort(); // reserved, nothing listens on it
  agent.setHealth('payments', [healthEntry('gone-sidecar-proxy', dead), healthEntry('payments-sidecar-proxy', paymentsPublicPort)]);
  try {
    const before = webProxy.metrics.get('consul_proxy_upstream_dial_failures_total', { upstream: 'payments' });
    await waitFor('the dead instance is tried', async () => {
      assert.equal((await get(webApp.url)).status, 200);
      return webProxy.metrics.get('consul_proxy_upstream_dial_failures_total', { upstream: 'payments' }) > before;
    }, 5000);
    for (let i = 0; i < 6; i++) assert.equal((await get(webApp.url)).status, 200);
  } finally {
    agent.setHealth('payments', [healthEntry('payments-sidecar-proxy', paymentsPublicPort)]);
  }
});
