// The mesh gateway end to end (issue 15 items 3-4): a real dev agent, test apps with real
// `trellis connect proxy` sidecars, a `trellis connect gateway -register` process, and two
// in-process gateways chained for a second datacenter.
//
// Until ?dc= forwarding exists, the second datacenter is stood in on the one agent: gateway B
// serves the names of "dc2" (MeshGatewayOptions.datacenter) and finds its instances on the same
// agent; gateway A knows B as dc2's gateway by a static address. The sidecar in mode local dials A
// (the registered mesh-gateway of dc1) with the target's dc2 SNI; A forwards to B, B to api's
// sidecar. The TLS session is web's sidecar <-> api's sidecar throughout.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { startTestApp, type TestApp, type TestAppAnswer } from '../fixtures/testApp.ts';
import { AgentProcess, freePort, launcher, printLogsIfFailed, trellisEnv, waitFor } from '../support/index.ts';
import { startMeshGateway, type MeshGateway } from '../../packages/gateway/src/index.ts';

let agent: AgentProcess;
let td: string;
const apps: TestApp[] = [];
let web: TestApp;
let upstreamUri: string;
let shop: TestApp;
let shopUpstreamUri: string;
const children: Array<{ name: string; child: ChildProcess; out: () => string }> = [];
let gatewayAddr: string;
let gatewayMetrics: string;
const gatewayAgentPaths: string[] = [];
let recorder: http.Server;
let gwA: MeshGateway;
let gwB: MeshGateway;
let webLeaf: { CertPEM: string; PrivateKeyPEM: string };
let ca: string[];

function spawnTrellis(name: string, args: string[]) {
  const child = spawn(launcher, args, { env: trellisEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  children.push({ name, child, out: () => out });
  return children.at(-1)!;
}

async function metric(addr: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`http://${addr}/metrics`, { agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

const sni = (service: string, dc = 'dc1', subset?: string) => `${subset ? `${subset}.` : ''}${service}.default.${dc}.internal.${td}`;
const spiffe = (service: string, dc = 'dc1') => `spiffe://${td}/ns/default/dc/${dc}/svc/${service}`;

/** Opens mTLS as `web` through `addr` to the service `name` names; resolves with the socket once the handshake is done. */
function dialAsWeb(addr: string, name: string): Promise<tls.TLSSocket> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host, port: Number(port), servername: name, key: webLeaf.PrivateKeyPEM, cert: webLeaf.CertPEM, ca,
      checkServerIdentity: () => undefined, // the test checks the URI SAN itself, below
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before the handshake finished')));
  });
}

/** One HTTP/1.1 GET over `s`, half-closing the write side after the request: the whole answer. */
function getOver(s: tls.TLSSocket, halfClose = true): Promise<{ status: number; body: TestAppAnswer }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer within 10 s (closed: ${s.destroyed}, got ${JSON.stringify(buf.slice(0, 200))})`)); }, 10_000);
    s.once('close', () => clearTimeout(timer));
    if (s.readableEnded || s.destroyed) { reject(new Error('the connection was already closed')); return; }
    s.on('data', (c: Buffer) => { buf += c.toString(); });
    s.once('end', () => {
      const m = /^HTTP\/1\.1 (\d+)[^]*?\r\n\r\n([^]*)$/.exec(buf);
      if (!m) { reject(new Error(`no HTTP answer: ${JSON.stringify(buf.slice(0, 200))}`)); return; }
      resolve({ status: Number(m[1]), body: JSON.parse(m[2]!) as TestAppAnswer });
    });
    s.once('error', reject);
    s.write('GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
    if (halfClose) s.end();
  });
}

/** Resolves when `s` is closed by the other side (or rejects after `ms`). */
function closedWithin(s: net.Socket, ms: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    if (s.destroyed) { resolve(0); return; }
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    s.on('error', () => undefined);
    s.once('close', () => { clearTimeout(timer); resolve(performance.now() - t0); });
  });
}

async function register(name: string, id: string, app: TestApp, meta: Record<string, string>, upstreams: unknown[] = []) {
  const body = { Name: name, ID: id, Port: app.port, Meta: meta,
    Connect: { SidecarService: { Port: await freePort(), Meta: meta, Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: upstreams } } } };
  const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
  assert.equal(r.status, 200, r.text);
}

before(async () => {
  agent = await AgentProcess.start({ name: 'mesh-gateway' });
  // A fresh leader makes its CA just after it is elected: until then the roots are empty and a leaf
  // request answers Consul's 500 "CA provider is nil" (a clean-clone run hit that window).
  const roots = await waitFor('the CA roots', async () => {
    const r = await agent.getJson<{ TrustDomain: string; Roots: Array<{ RootCert: string; IntermediateCerts?: string[] | null }> }>('/v1/agent/connect/ca/roots');
    return r.Roots.length > 0 ? r : undefined;
  }, 30_000, 100);
  td = roots.TrustDomain;
  ca = roots.Roots.flatMap((r) => [r.RootCert, ...(r.IntermediateCerts ?? [])]);
  // The test process plays `web` for the direct checks: it asks for web's leaf, as web's sidecar does.
  webLeaf = await agent.getJson('/v1/agent/connect/ca/leaf/web');

  const v1 = await startTestApp({ name: 'api v1' });
  const v2 = await startTestApp({ name: 'api v2' });
  const upstreamPort = await freePort();
  upstreamUri = `http://127.0.0.1:${upstreamPort}`;
  web = await startTestApp({ name: 'web', upstreams: [upstreamUri] });
  const shopUpstreamPort = await freePort();
  shopUpstreamUri = `http://127.0.0.1:${shopUpstreamPort}`;
  shop = await startTestApp({ name: 'shop', upstreams: [shopUpstreamUri] });
  apps.push(v1, v2, web, shop);
  await register('api', 'api-1', v1, { version: '1' });
  await register('api', 'api-2', v2, { version: '2' });
  await register('web', 'web-1', web, { version: '1' }, [{ DestinationName: 'api', Datacenter: 'dc2', LocalBindPort: upstreamPort, MeshGateway: { Mode: 'local' } }]);
  // shop's upstream names no datacenter and no mode: the chain (a resolver redirect, service-defaults) decides.
  await register('shop', 'shop-1', shop, { version: '1' }, [{ DestinationName: 'api', LocalBindPort: shopUpstreamPort }]);
  for (const id of ['api-1', 'api-2', 'web-1', 'shop-1']) spawnTrellis(`proxy ${id}`, ['connect', 'proxy', '-sidecar-for', id, '-http-addr', agent.httpAddr]);

  // The CLI gateway talks to the agent through a recorder, so the test sees every path it asked for.
  recorder = http.createServer((req, res) => {
    gatewayAgentPaths.push(`${req.method} ${req.url}`);
    const up = http.request(`${agent.url}${req.url}`, { method: req.method, headers: req.headers, agent: false }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  const recorderAddr = `127.0.0.1:${(recorder.address() as net.AddressInfo).port}`;
  gatewayAddr = `127.0.0.1:${await freePort()}`;
  gatewayMetrics = `127.0.0.1:${await freePort()}`;
  const wan = `127.0.0.1:${await freePort()}`;
  spawnTrellis('gateway', ['connect', 'gateway', '-register', '-service', 'edge-gateway', '-address', gatewayAddr, '-wan-address', wan,
    '-http-addr', recorderAddr, '-metrics-addr', gatewayMetrics, '-hello-timeout', '1s']);

  // dc1's registered mesh gateway (A) and the stand-in for dc2's (B).
  const bAddr = `127.0.0.1:${await freePort()}`;
  gwB = await startMeshGateway({ httpAddr: agent.httpAddr, address: bAddr, datacenter: 'dc2' });
  gwA = await startMeshGateway({ httpAddr: agent.httpAddr, address: `127.0.0.1:${await freePort()}`, wanAddress: `127.0.0.1:${await freePort()}`, register: true, staticRemotes: { dc2: [bAddr] } });

  await waitFor('the CLI gateway listening', async () => {
    const [h, p] = gatewayAddr.split(':');
    return new Promise<boolean>((r) => { const s = net.connect(Number(p), h!, () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
  }, 60_000, 200);
  await waitFor('api reachable through the CLI gateway', async () => {
    try { return (await getOver(await dialAsWeb(gatewayAddr, sni('api')))).status === 200; } catch { return false; }
  }, 60_000, 250);
});

afterEach((t) => {
  printLogsIfFailed(t, agent);
  if ((t as { passed?: boolean }).passed === false) for (const c of children) process.stdout.write(`# ${c.name} output:\n${c.out().slice(-4000)}\n`);
});

after(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await gwA?.stop();
  await gwB?.stop();
  recorder?.close();
  for (const a of apps) await a.close();
  await agent?.dispose();
});

test('registration: Kind mesh-gateway with lan and wan tagged addresses and a passing TCP check', async () => {
  // The launcher's Node has the bindings the raw transport checks for: the CLI gateway runs on it.
  assert.match(children.find((c) => c.name === 'gateway')!.out(), /Transport: raw \(libuv TCP handles\)/);
  assert.equal(gwA.transport, 'raw');
  const [svc] = await agent.getJson<Array<{ ServiceKind: string; ServiceID: string; ServicePort: number; ServiceTaggedAddresses: Record<string, { Address: string; Port: number }> }>>('/v1/catalog/service/edge-gateway');
  assert.equal(svc!.ServiceKind, 'mesh-gateway');
  assert.equal(svc!.ServiceID, 'edge-gateway');
  assert.equal(`127.0.0.1:${svc!.ServiceTaggedAddresses['lan']!.Port}`, gatewayAddr);
  assert.equal(svc!.ServiceTaggedAddresses['wan']!.Address, '127.0.0.1');
  assert.notEqual(svc!.ServiceTaggedAddresses['wan']!.Port, svc!.ServicePort);
  await waitFor('the TCP check passing', async () => {
    const checks = await agent.getJson<Array<{ Status: string; Type: string; Name: string }>>('/v1/health/checks/edge-gateway');
    return checks.length === 1 && checks[0]!.Status === 'passing' && checks[0]!.Type === 'tcp' && checks[0]!.Name === 'Mesh Gateway Listening';
  }, 30_000, 250);
});

test('mTLS end to end through the gateway: the caller sees api\'s certificate; the gateway never asked for a leaf', async () => {
  const before = await metric(gatewayMetrics, 'consul_mesh_gateway_conns_total', { target: 'api.default.dc1', route: 'local' });
  const s = await dialAsWeb(gatewayAddr, sni('api'));
  const peer = s.getPeerCertificate();
  assert.ok(s.authorized, `not authorized: ${String(s.authorizationError)}`);
  assert.equal(peer.subjectaltname, `URI:${spiffe('api')}`);
  const r = await getOver(s);
  assert.equal(r.status, 200);
  assert.match(r.body.name, /^api v[12]$/);
  assert.equal(await metric(gatewayMetrics, 'consul_mesh_gateway_conns_total', { target: 'api.default.dc1', route: 'local' }), before + 1);
  assert.ok(gatewayAgentPaths.length > 0);
  assert.deepEqual(gatewayAgentPaths.filter((p) => /\/leaf\b|connect\/ca\/leaf|authorize/.test(p)), [], 'the gateway asked for a leaf or an authorization');
  assert.ok(gatewayAgentPaths.some((p) => p.startsWith('GET /v1/health/connect/api')), gatewayAgentPaths.join('\n'));
});

test("the destination authorizes the caller's identity through the gateway (intention deny web -> api)", async () => {
  const put = await agent.request('PUT', '/v1/connect/intentions/exact?source=web&destination=api', { body: JSON.stringify({ Action: 'deny' }) });
  assert.equal(put.status, 200, put.text);
  try {
    await waitFor('web denied at api', async () => {
      try { await getOver(await dialAsWeb(gatewayAddr, sni('api'))); return false; } catch { return true; }
    }, 15_000, 200);
  } finally {
    await agent.request('DELETE', '/v1/connect/intentions/exact?source=web&destination=api');
  }
  await waitFor('web allowed again', async () => {
    try { return (await getOver(await dialAsWeb(gatewayAddr, sni('api')))).status === 200; } catch { return false; }
  }, 15_000, 200);
});

test('subset names: v2.api.default.dc1... reaches only the v2 instance (filters from the chain, else the resolver)', async () => {
  // DefaultSubset v1 puts the v1 target in api's compiled chain; v2 is only in the resolver entry.
  const r = await agent.request('PUT', '/v1/config', { body: JSON.stringify({ Kind: 'service-resolver', Name: 'api', DefaultSubset: 'v1', Subsets: {
    v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } }) });
  assert.equal(r.status, 200, r.text);
  try {
    await waitFor('the v2 subset routed', async () => {
      try { return (await getOver(await dialAsWeb(gatewayAddr, sni('api', 'dc1', 'v2')))).body.name === 'api v2'; } catch { return false; }
    }, 15_000, 200);
    for (let i = 0; i < 6; i++) assert.equal((await getOver(await dialAsWeb(gatewayAddr, sni('api', 'dc1', 'v2')))).body.name, 'api v2');
    // The v1 name is new to the gateway: its first lookup may still see api's chain from before the
    // resolver change (a blocking query in flight), so wait for it as for v2, then every answer counts.
    await waitFor('the v1 subset routed', async () => {
      try { return (await getOver(await dialAsWeb(gatewayAddr, sni('api', 'dc1', 'v1')))).body.name === 'api v1'; } catch { return false; }
    }, 15_000, 200);
    for (let i = 0; i < 6; i++) assert.equal((await getOver(await dialAsWeb(gatewayAddr, sni('api', 'dc1', 'v1')))).body.name, 'api v1');
    await assert.rejects(dialAsWeb(gatewayAddr, sni('api', 'dc1', 'v9')));
  } finally {
    await agent.request('DELETE', '/v1/config/service-resolver/api');
  }
});

test('bad input is closed promptly, counted and logged once per cause; a connection already open is unaffected', async () => {
  // A good connection first, its request sent only after all the bad ones.
  const good = await dialAsWeb(gatewayAddr, sni('api'));
  const [host, port] = gatewayAddr.split(':');
  const raw = (bytes: Buffer | string | undefined) => new Promise<net.Socket>((resolve) => {
    const s = net.connect(Number(port), host!, () => { if (bytes !== undefined) s.write(bytes); resolve(s); });
    s.on('error', () => undefined);
  });
  const tlsTo = (name: string | undefined) => {
    const s = tls.connect({ host, port: Number(port), servername: name, rejectUnauthorized: false });
    s.on('error', () => undefined);
    return s;
  };
  const causes: Record<string, Array<() => net.Socket | Promise<net.Socket>>> = {
    not_tls: [() => raw('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), () => raw('SSH-2.0-x\r\n'), () => raw(Buffer.from([0, 1, 2, 3]))],
    no_sni: [() => tlsTo(undefined)],
    wrong_trust_domain: [() => tlsTo('api.default.dc1.internal.other.consul')],
    unknown_name: [() => tlsTo('www.example.com'), () => tlsTo(`a.b.internal.${td}`)],
    unknown_service: [() => tlsTo(sni('nosuch'))],
    unknown_datacenter: [() => tlsTo(sni('api', 'nowhere'))],
    timeout: [() => raw(Buffer.from([22, 3, 1, 0, 200, 1, 0]))], // a slowloris: a hello that never completes
  };
  const before: Record<string, number> = {};
  for (const c of Object.keys(causes)) before[c] = await metric(gatewayMetrics, 'consul_mesh_gateway_refused_total', { cause: c });
  const watchesBefore = gatewayAgentPaths.filter((p) => /nosuch|nowhere/.test(p)).length;
  for (const [cause, makers] of Object.entries(causes)) {
    for (const make of makers) {
      const s = await make();
      // Closed promptly: at once for what the first bytes tell, after the 1 s hello timeout for a slowloris.
      const ms = await closedWithin(s, cause === 'timeout' ? 5000 : 3000);
      if (cause === 'timeout') assert.ok(ms >= 800, `slowloris closed after ${ms} ms, before the timeout`);
    }
  }
  for (const [cause, makers] of Object.entries(causes)) {
    await waitFor(`refusals counted for ${cause}`, async () => (await metric(gatewayMetrics, 'consul_mesh_gateway_refused_total', { cause })) === before[cause]! + makers.length, 5000, 100);
  }
  // Made-up names opened no watches on the agent.
  assert.equal(gatewayAgentPaths.filter((p) => /nosuch|nowhere/.test(p)).length, watchesBefore);
  // Logged once per cause (3 not_tls connections, one line).
  const gwOut = children.find((c) => c.name === 'gateway')!.out();
  assert.equal(gwOut.split('\n').filter((l) => l.includes('connection refused') && l.includes('cause=not_tls')).length, 1, gwOut.slice(-3000));
  // The connection opened before still works.
  const r = await getOver(good);
  assert.equal(r.status, 200);
  assert.match(r.body.name, /^api v[12]$/);
});

test('half-close and a long-lived connection: several requests on one connection, the answer after the caller ends its side', async () => {
  const s = await dialAsWeb(gatewayAddr, sni('api'));
  // Keep-alive requests on one TLS session through the gateway.
  for (let i = 0; i < 3; i++) {
    const text = await new Promise<string>((resolve) => {
      let buf = '';
      const on = (c: Buffer) => { buf += c.toString(); const m = /content-length: (\d+)\r\n[^]*?\r\n\r\n/i.exec(buf); if (m && buf.length >= m.index + m[0].length + Number(m[1])) { s.off('data', on); resolve(buf); } };
      s.on('data', on);
      s.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n');
    });
    assert.match(text, /^HTTP\/1\.1 200/);
  }
  const r = await getOver(s, true);
  assert.equal(r.status, 200);
});

test('sidecar in mesh gateway mode local: web -> dc1 gateway -> dc2 gateway -> api, mTLS end to end, both gateways count it', async () => {
  const aBefore = gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' });
  const bBefore = gwB.metrics.get('consul_mesh_gateway_conns_total', { target: 'api.default.dc2', route: 'local' });
  await waitFor('web reaches api through the gateways', async () => {
    const r = await new Promise<{ body: TestAppAnswer }>((resolve, reject) => {
      http.get(web.url, { agent: false }, (res) => { let s = ''; res.on('data', (c: Buffer) => { s += c.toString(); }); res.on('end', () => resolve({ body: JSON.parse(s) as TestAppAnswer })); }).on('error', reject);
    });
    return r.body.upstream_calls?.[upstreamUri]?.code === 200 && /^api v[12]$/.test(r.body.upstream_calls[upstreamUri]!.name);
  }, 30_000, 250);
  assert.ok(gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' }) > aBefore);
  assert.ok(gwB.metrics.get('consul_mesh_gateway_conns_total', { target: 'api.default.dc2', route: 'local' }) > bBefore);
  // Deny web -> api: api's sidecar refuses web's identity, which it could only see end to end.
  await agent.request('PUT', '/v1/connect/intentions/exact?source=web&destination=api', { body: JSON.stringify({ Action: 'deny' }) });
  try {
    await waitFor('web denied at api through the gateways', async () => {
      const r = await new Promise<{ body: TestAppAnswer }>((resolve, reject) => {
        http.get(web.url, { agent: false }, (res) => { let s = ''; res.on('data', (c: Buffer) => { s += c.toString(); }); res.on('end', () => resolve({ body: JSON.parse(s) as TestAppAnswer })); }).on('error', reject);
      });
      return r.body.upstream_calls?.[upstreamUri]?.code !== 200;
    }, 15_000, 200);
  } finally {
    await agent.request('DELETE', '/v1/connect/intentions/exact?source=web&destination=api');
  }
});

/** What `app`'s upstream call answered: the app's name, or the failure. */
async function upstreamAnswer(app: TestApp, uri: string): Promise<string> {
  const r = await new Promise<TestAppAnswer>((resolve, reject) => {
    http.get(app.url, { agent: false }, (res) => { let s = ''; res.on('data', (c: Buffer) => { s += c.toString(); }); res.on('end', () => resolve(JSON.parse(s) as TestAppAnswer)); }).on('error', reject);
  });
  const call = r.upstream_calls?.[uri];
  return call?.code === 200 ? call.name : `code ${call?.code} ${call?.error ?? ''}`;
}

test('HTTP chain: a resolver redirect to dc2 with service-defaults MeshGateway local goes through the gateways; removing it comes back to dc1 directly', async () => {
  const put = async (e: Record<string, unknown>) => { const r = await agent.request('PUT', '/v1/config', { body: JSON.stringify(e) }); assert.equal(r.status, 200, r.text); };
  await waitFor('shop reaches api in dc1', async () => /^api v[12]$/.test(await upstreamAnswer(shop, shopUpstreamUri)), 30_000, 250);
  await put({ Kind: 'service-defaults', Name: 'api', Protocol: 'http', MeshGateway: { Mode: 'local' } });
  await put({ Kind: 'service-resolver', Name: 'api', Redirect: { Datacenter: 'dc2' } });
  try {
    const aBefore = gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' });
    await waitFor('shop reaches api through the gateways', async () =>
      /^api v[12]$/.test(await upstreamAnswer(shop, shopUpstreamUri)) && gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' }) > aBefore, 30_000, 250);
    const bBefore = gwB.metrics.get('consul_mesh_gateway_conns_total', { target: 'api.default.dc2', route: 'local' });
    // The sidecar keeps connections alive: more requests, each answered by api through B.
    for (let i = 0; i < 5; i++) assert.match(await upstreamAnswer(shop, shopUpstreamUri), /^api v[12]$/);
    assert.ok(gwB.metrics.get('consul_mesh_gateway_conns_total', { target: 'api.default.dc2', route: 'local' }) >= bBefore);
    // Stopping the redirect: back to dc1's instances, no longer through gateway A.
    await agent.request('DELETE', '/v1/config/service-resolver/api');
    await waitFor('shop back on dc1 directly', async () => {
      const before = gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' });
      const ok = /^api v[12]$/.test(await upstreamAnswer(shop, shopUpstreamUri));
      return ok && gwA.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' }) === before;
    }, 30_000, 250);
  } finally {
    await agent.request('DELETE', '/v1/config/service-resolver/api');
    await agent.request('DELETE', '/v1/config/service-defaults/api');
  }
});
