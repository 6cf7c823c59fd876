// TLS session resumption between sidecars (tlsSessions.ts, tlsMaterial.ts): real sockets on
// loopback, real TLS. A reconnect resumes; a resumed connection is authorized exactly like a full
// handshake (the caller's SPIFFE ID read from the session, intentions asked per connection, the
// server's SPIFFE ID checked by the upstream side); no session outlives a change of leaf or roots.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import tls from 'node:tls';
import { startSidecarProxy, type SidecarProxy } from '../src/index.ts';
import { serialHex } from '../src/inbound.ts';
import { TlsMaterial } from '../src/tlsMaterial.ts';
import { checkResumedServer, sessionKey, TlsSessionCache, type CachedSession } from '../src/tlsSessions.ts';
import { checkServerSpiffe } from '../src/upstream.ts';
import type { LeafCert, ProxyService, ServiceEntry } from '../src/types.ts';
import { FakeAgent } from './support/fakeAgent.ts';
import { makeLeaf, makeRoot, rootsBody, type TestRoot } from './support/testCa.ts';
import { startTestApp, type TestApp } from '../../../test/fixtures/testApp.ts';
import { freePort, waitFor } from '../../../test/support/index.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const DC = 'dc1';
const webUri = `spiffe://${TD}/ns/default/dc/${DC}/svc/web`;
/** A leaf's serial as the public listener sends it to the agent (Consul's colon-separated hex). */
const serialOf = (leaf: LeafCert) => serialHex(new X509Certificate(leaf.CertPEM).serialNumber);

let agent: FakeAgent;
let rootA: TestRoot;
let webLeaf: LeafCert;
let paymentsApp: TestApp;
let webApp: TestApp;
let paymentsProxy: SidecarProxy;
let webProxy: SidecarProxy;
let paymentsPublicPort: number;
let upstreamPort: number;

function proxyService(id: string, dest: string, port: number, appPort: number, upstreams: NonNullable<ProxyService['Proxy']>['Upstreams'] = []): ProxyService {
  return {
    Kind: 'connect-proxy', ID: id, Service: id, Address: '', Port: port,
    Proxy: { DestinationServiceName: dest, DestinationServiceID: dest, LocalServiceAddress: '127.0.0.1', LocalServicePort: appPort, Upstreams: upstreams, Config: { bind_address: '127.0.0.1' } },
  };
}

function healthEntry(id: string, port: number): ServiceEntry {
  return { Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: id, Service: id, Port: port } };
}

interface Visit { reused: boolean; data: string; group?: string; error?: string }

/**
 * One connection to payments' public listener as `leaf` (the web service's caller, as its sidecar
 * would be), offering `session`: sends a GET once TLS is up, reads until the server closes.
 * `onSession` receives the tickets the server sends.
 */
function visit(leaf: LeafCert, session: Buffer | undefined, onSession: (s: Buffer) => void, trust: string[] = [rootA.pem]): Promise<Visit> {
  return new Promise((resolve) => {
    const s = tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: trust, servername: 'payments', checkServerIdentity: () => undefined, session });
    const v: Visit = { reused: false, data: '' };
    s.on('session', onSession);
    s.once('secureConnect', () => {
      v.reused = s.isSessionReused();
      v.group = (s.getEphemeralKeyInfo() as { name?: string } | null)?.name;
      s.write('GET / HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n');
    });
    s.on('data', (c: Buffer) => { v.data += c.toString('latin1'); });
    s.on('error', (e) => { v.error = e.message; });
    s.on('close', () => resolve(v));
    s.setTimeout(5000, () => s.destroy(new Error('visit timed out')));
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

before(async () => {
  agent = await FakeAgent.start();
  rootA = makeRoot(TD);
  agent.setRoots(rootsBody(TD, [{ root: rootA, active: true }]));
  webLeaf = makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'web' });
  agent.setLeaf('web', webLeaf);
  agent.setLeaf('payments', makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'payments' }));
  paymentsPublicPort = await freePort();
  upstreamPort = await freePort();
  paymentsApp = await startTestApp({ name: 'payments' });
  webApp = await startTestApp({ name: 'web', upstreams: [`http://127.0.0.1:${upstreamPort}`] });
  agent.setService(proxyService('payments-sidecar-proxy', 'payments', paymentsPublicPort, paymentsApp.port));
  agent.setService(proxyService('web-sidecar-proxy', 'web', await freePort(), webApp.port, [{ DestinationName: 'payments', LocalBindAddress: '127.0.0.1', LocalBindPort: upstreamPort }]));
  agent.setHealth('payments', [healthEntry('payments-sidecar-proxy', paymentsPublicPort)]);
  // No reuse of intention decisions: every connection, resumed or not, asks the agent.
  paymentsProxy = await startSidecarProxy({ httpAddr: agent.addr, sidecarFor: 'payments', authorizeCacheMs: 0 });
  webProxy = await startSidecarProxy({ httpAddr: agent.addr, sidecarFor: 'web' });
});

after(async () => {
  await webProxy?.stop();
  await paymentsProxy?.stop();
  await webApp?.close();
  await paymentsApp?.close();
  await agent?.close();
});

test('Node gives a TLS 1.3 server the client\'s certificate on a resumed session (what the public listener reads)', async () => {
  const server = makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'payments' });
  const seen: Array<{ reused: boolean; protocol: string | null; uri?: string; x509Uri?: string; serial?: string }> = [];
  const srv = tls.createServer({ key: server.PrivateKeyPEM, cert: server.CertPEM, ca: [rootA.pem], requestCert: true, rejectUnauthorized: true }, (s) => {
    seen.push({ reused: s.isSessionReused(), protocol: s.getProtocol(), uri: s.getPeerCertificate().subjectaltname, x509Uri: s.getPeerX509Certificate()?.subjectAltName, serial: s.getPeerX509Certificate()?.serialNumber });
    s.end('ok'); // OpenSSL sends a TLS 1.3 server's tickets with its first write: a server that writes nothing issues none
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  let session: Buffer | undefined;
  const once = () => new Promise<boolean>((resolve, reject) => {
    const c = tls.connect({ port, host: '127.0.0.1', key: webLeaf.PrivateKeyPEM, cert: webLeaf.CertPEM, ca: [rootA.pem], checkServerIdentity: () => undefined, session });
    let reused = false;
    c.on('session', (s: Buffer) => { session = s; });
    c.once('secureConnect', () => { reused = c.isSessionReused(); });
    c.on('data', () => undefined);
    c.on('close', () => resolve(reused));
    c.on('error', reject);
  });
  try {
    assert.equal(await once(), false);
    assert.equal(await once(), true, 'the second connection resumes');
  } finally {
    srv.close();
  }
  assert.equal(seen.length, 2);
  for (const s of seen) {
    assert.equal(s.protocol, 'TLSv1.3');
    assert.equal(s.uri, `URI:${webUri}`);
    assert.equal(s.x509Uri, `URI:${webUri}`);
    assert.equal(serialHex(s.serial!), serialOf(webLeaf));
  }
  assert.deepEqual(seen.map((s) => s.reused), [false, true]);
});

test('a caller resumes at the public listener; the resumed connection is authorized with its own SPIFFE ID and serial', async () => {
  let session: Buffer | undefined;
  const first = await visit(webLeaf, undefined, (s) => { session = s; });
  assert.equal(first.reused, false);
  assert.match(first.data, /"name":"payments"/);
  assert.ok(session, 'the public listener issued a session ticket');
  const callsBefore = agent.authorizeCalls.length;
  const second = await visit(webLeaf, session, () => undefined);
  assert.equal(second.reused, true, 'the second connection resumed its session');
  assert.match(second.data, /"name":"payments"/);
  const call = agent.authorizeCalls.at(-1)!;
  assert.equal(agent.authorizeCalls.length, callsBefore + 1, 'the resumed connection was authorized');
  assert.deepEqual(call, { Target: 'payments', ClientCertURI: webUri, ClientCertSerial: serialOf(webLeaf) });
  // Key exchange as Envoy's defaults (X25519:P-256), not OpenSSL 3.5's ML-KEM hybrid.
  assert.equal(second.group, 'X25519');
});

test('through the sidecars: the web sidecar\'s reconnects resume', async () => {
  const resumed = () => webProxy.metrics.get('consul_proxy_tls_resumed_total', { upstream: 'payments' });
  assert.equal((await get(webApp.url)).status, 200); // a session to payments' sidecar is cached now
  const before = resumed();
  for (let i = 0; i < 3; i++) assert.equal((await get(webApp.url)).status, 200);
  assert.equal(resumed(), before + 3, webProxy.metrics.text());
});

test('an intention changed to deny denies the next connection even when it resumes; allowed again, it gets through', async () => {
  let session: Buffer | undefined;
  const keep = (s: Buffer) => { session = s; };
  await visit(webLeaf, undefined, keep);
  const denialsBefore = paymentsProxy.metrics.get('consul_proxy_intention_denials_total');
  agent.authorize = (req) => req.ClientCertURI === webUri ? { Authorized: false, Reason: 'Matched L4 intention: web => payments (deny)' } : { Authorized: true, Reason: '' };
  try {
    const denied = await visit(webLeaf, session, keep);
    assert.equal(denied.reused, true, 'the denied connection had resumed its session');
    assert.doesNotMatch(denied.data, /payments/);
    assert.equal(paymentsProxy.metrics.get('consul_proxy_intention_denials_total'), denialsBefore + 1);
  } finally {
    agent.authorize = () => ({ Authorized: true, Reason: 'default allow' });
  }
  const allowed = await visit(webLeaf, session, keep);
  assert.equal(allowed.reused, true);
  assert.match(allowed.data, /"name":"payments"/);
});

test('no session made before a change of the roots, or of the leaf, is resumed after it', async () => {
  let session: Buffer | undefined;
  const keep = (s: Buffer) => { session = s; };
  await visit(webLeaf, undefined, keep);
  const before = session!;
  assert.equal((await visit(webLeaf, before, () => undefined)).reused, true);
  // New roots (the old root still trusted): the public listener has them once a leaf of the new
  // root is accepted.
  const rootB = makeRoot(TD, 'Trellis CA 2');
  agent.setRoots(rootsBody(TD, [{ root: rootA, active: false }, { root: rootB, active: true }]));
  const webLeafB = makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'web' });
  await waitFor('payments\' sidecar trusts the new root', async () => /"name":"payments"/.test((await visit(webLeafB, undefined, () => undefined, [rootA.pem, rootB.pem])).data), 5000);
  for (let i = 0; i < 3; i++) {
    const v = await visit(webLeaf, before, keep);
    assert.equal(v.reused, false, 'a session from before the roots changed is not resumed');
    assert.match(v.data, /"name":"payments"/, 'a full handshake with the old leaf still gets through');
  }
  // The leaf: a renewed payments leaf (new serial) is presented once the sidecar has it.
  const afterRoots = session!;
  assert.equal((await visit(webLeaf, afterRoots, () => undefined)).reused, true);
  const renewed = makeLeaf(rootB, { trustDomain: TD, dc: DC, service: 'payments' });
  agent.setLeaf('payments', renewed);
  await waitFor('payments\' sidecar presents its renewed leaf', () => new Promise<boolean>((resolve) => {
    const s = tls.connect({ port: paymentsPublicPort, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      resolve(serialHex(s.getPeerX509Certificate()?.serialNumber ?? '') === serialOf(renewed));
      s.destroy();
    });
    s.on('error', () => resolve(false));
  }), 5000);
  const v = await visit(webLeaf, afterRoots, () => undefined, [rootA.pem, rootB.pem]);
  assert.equal(v.reused, false, 'a session from before the leaf changed is not resumed');
  assert.match(v.data, /"name":"payments"/);
  // And the sidecars between themselves still work (their own caches were dropped too).
  await waitFor('web -> payments through the sidecars', async () => (await get(webApp.url)).status === 200, 5000);
});

test('upstream session cache: per instance and SNI, dropped when the leaf or the roots change; resumed connections carry the verified server identity', async () => {
  const material = new TlsMaterial();
  material.setRoots(rootsBody(TD, [{ root: rootA, active: true }]));
  material.setLeaf(webLeaf);
  const cache = new TlsSessionCache(material);
  const server = makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'payments' });
  const srv = tls.createServer({ key: server.PrivateKeyPEM, cert: server.CertPEM, ca: [rootA.pem], requestCert: true, rejectUnauthorized: true }, (s) => s.end('ok'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const key = sessionKey('127.0.0.1', port, 'payments.default.dc1.internal.x');
  const payments = (cert: tls.PeerCertificate) => checkServerSpiffe(cert, { service: 'payments', trustDomain: TD });
  const billing = (cert: tls.PeerCertificate) => checkServerSpiffe(cert, { service: 'billing', trustDomain: TD });
  /** Connects as the upstream listener does; resolves once the server closed, with what the checks said. */
  const dial = (gen = material.snapshot!.generation) => new Promise<{ reused: boolean; payments?: Error; billing?: Error; offered?: CachedSession }>((resolve, reject) => {
    const offered = cache.get(key);
    const c = tls.connect({ port, host: '127.0.0.1', secureContext: material.snapshot!.clientContext, servername: 'payments', checkServerIdentity: (_h, cert) => payments(cert), session: offered?.session });
    cache.track(c, key, gen, offered);
    let out: { reused: boolean; payments?: Error; billing?: Error; offered?: CachedSession };
    c.once('secureConnect', () => { out = { reused: c.isSessionReused(), payments: checkResumedServer(c, offered, payments), billing: checkResumedServer(c, offered, billing), offered }; });
    c.on('data', () => undefined);
    c.on('close', () => resolve(out));
    c.on('error', reject);
  });
  try {
    const full = await dial();
    assert.equal(full.reused, false);
    assert.equal(full.billing, undefined, 'a full handshake was checked by Node (checkServerIdentity), not again');
    await waitFor('a session is cached', () => cache.get(key) !== undefined, 5000);
    assert.equal(cache.get(key)!.serverSans, `URI:spiffe://${TD}/ns/default/dc/${DC}/svc/payments`);
    const resumed = await dial();
    assert.equal(resumed.reused, true);
    assert.equal(resumed.payments, undefined, 'the expected server identity passes on the resumed connection');
    assert.match(String(resumed.billing?.message), /does not identify service "billing"/, 'a resumed connection is still checked against the expected identity');
    // Another SNI at the same address has no session.
    assert.equal(cache.get(sessionKey('127.0.0.1', port, 'billing.default.dc1.internal.x')), undefined);
    // A leaf change drops every session, and a session from a connection made before it is not kept.
    const oldGen = material.snapshot!.generation;
    material.setLeaf(makeLeaf(rootA, { trustDomain: TD, dc: DC, service: 'web' }));
    assert.equal(cache.size, 0);
    const late = await dial(oldGen);
    assert.equal(late.reused, false);
    // TLS 1.3 tickets come right after the handshake, before the server's close: read by now.
    assert.equal(cache.get(key), undefined, 'a ticket from a connection made under the old leaf is not kept');
    await dial();
    await waitFor('a session is cached again', () => cache.get(key) !== undefined, 5000);
    // A roots change too.
    material.setRoots(rootsBody(TD, [{ root: rootA, active: true }, { root: makeRoot(TD), active: false }]));
    assert.equal(cache.size, 0);
    assert.equal((await dial()).reused, false, 'the first connection after the roots changed makes a full handshake');
  } finally {
    cache.close();
    srv.close();
  }
});
