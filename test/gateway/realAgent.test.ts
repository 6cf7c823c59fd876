// The sidecar proxy against a real agent (`trellis agent -dev`): services registered with
// `Connect.SidecarService`, the agent's CA issuing the leaves, its intentions deciding, and
// `trellis connect proxy -sidecar-for` processes carrying web -> payments. A deny intention
// written with `trellis intention create -deny` refuses new connections within 2 s (the app sees a
// connection error); deleting it lets them through again.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startTestApp, type TestApp, type TestAppAnswer } from '../fixtures/testApp.ts';
import { makeLeaf, makeRoot } from '../../packages/gateway/test/support/testCa.ts';
import { AgentProcess, freePort, launcher, printLogsIfFailed, runTrellis, trellisEnv, waitFor } from '../support/index.ts';

let agent: AgentProcess;
let webApp: TestApp;
let paymentsApp: TestApp;
let upstreamPort: number;
const proxies: Array<{ child: ChildProcess; out: () => string }> = [];

function get(url: string): Promise<{ status: number; body: TestAppAnswer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(s) as TestAppAnswer }));
    }).on('error', reject);
  });
}

function startProxy(sidecarFor: string) {
  const child = spawn(launcher, ['connect', 'proxy', '-sidecar-for', sidecarFor, '-http-addr', agent.httpAddr], { env: trellisEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const p = { child, out: () => out };
  proxies.push(p);
  return p;
}

before(async () => {
  agent = await AgentProcess.start({ name: 'connect-proxy' });
  upstreamPort = await freePort();
  paymentsApp = await startTestApp({ name: 'payments v1 (onprem)' });
  webApp = await startTestApp({ name: 'web (onprem)', upstreams: [`http://127.0.0.1:${upstreamPort}`] });
  const register = async (body: unknown) => {
    const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
    assert.equal(r.status, 200, r.text);
  };
  // Sidecar ports from the shared allocator (not Consul's 21000-21255 range, which parallel suites share).
  await register({ Name: 'payments', Port: paymentsApp.port, Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' } } } } });
  await register({
    Name: 'web', Port: webApp.port,
    Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: [{ DestinationName: 'payments', LocalBindPort: upstreamPort }] } } },
  });
});

afterEach((t) => {
  printLogsIfFailed(t, agent);
  if ((t as { passed?: boolean }).passed === false) for (const p of proxies) process.stdout.write(`# proxy output:\n${p.out()}\n`);
});

after(async () => {
  for (const p of proxies) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await webApp?.close();
  await paymentsApp?.close();
  await agent?.dispose();
});

test('web -> payments through two `trellis connect proxy -sidecar-for` processes, with the agent\'s CA and intentions', async () => {
  startProxy('payments');
  startProxy('web');
  // The payments proxy becomes a passing instance once the agent's TCP check of it passes.
  const r = await waitFor('web -> payments through the sidecars', async () => {
    const res = await get(webApp.url + '/pay');
    return res.status === 200 ? res : undefined;
  }, 60_000, 250);
  assert.equal(r.body.name, 'web (onprem)');
  assert.equal(r.body.upstream_calls?.[`http://127.0.0.1:${upstreamPort}`]?.name, 'payments v1 (onprem)');
  assert.equal(r.body.upstream_calls?.[`http://127.0.0.1:${upstreamPort}`]?.uri, `http://127.0.0.1:${upstreamPort}`);
});

test('an intention deny refuses new web -> payments connections within 2 s; deleting it allows them again', async () => {
  const env = { CONSUL_HTTP_ADDR: agent.httpAddr };
  const created = await runTrellis(['intention', 'create', '-deny', 'web', 'payments'], { env });
  assert.equal(created.code, 0, created.stderr);
  const deniedAt = Date.now();
  const refused = await waitFor('web -> payments refused', async () => {
    const res = await get(webApp.url);
    return res.status === 500 ? res : undefined;
  }, 10_000);
  const elapsed = Date.now() - deniedAt;
  assert.ok(elapsed <= 2000, `refused ${elapsed} ms after the deny was written`);
  assert.equal(refused.body.upstream_calls?.[`http://127.0.0.1:${upstreamPort}`]?.code, -1);
  for (let i = 0; i < 3; i++) assert.equal((await get(webApp.url)).status, 500);
  const deleted = await runTrellis(['intention', 'delete', 'web', 'payments'], { env });
  assert.equal(deleted.code, 0, deleted.stderr);
  await waitFor('web -> payments allowed again', async () => (await get(webApp.url)).status === 200, 10_000);
});

test('a CA root rotation (cross-signed) under constant load through the proxies: zero failed requests', async () => {
  const env = { CONSUL_HTTP_ADDR: agent.httpAddr };
  const rootsBefore = (await agent.request('GET', '/v1/agent/connect/ca/roots')).json() as { ActiveRootID: string };
  let ok = 0;
  const failures: string[] = [];
  let running = true;
  const load = async () => {
    for (let i = 0; running && i < 5000; i++) { // bounded; ends when the rotation has been seen through
      try {
        const r = await get(webApp.url);
        if (r.status === 200) ok++;
        else failures.push(JSON.stringify(r.body));
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const workers = [load(), load()];
  const served = async (n: number) => { const target = ok + n; await waitFor(`${n} more requests`, () => ok >= target || failures.length > 0, 30_000); };
  await served(10);
  // A new key size means a new root, cross-signed by the old one (Consul's provider rules).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-ca-'));
  const file = path.join(dir, 'ca.json');
  fs.writeFileSync(file, JSON.stringify({ Provider: 'consul', Config: { PrivateKeyType: 'rsa', PrivateKeyBits: 4096 } }));
  const set = await runTrellis(['connect', 'ca', 'set-config', '-config-file', file], { env });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(set.code, 0, set.stderr);
  const newRoot = await waitFor('a new active root', async () => {
    const r = (await agent.request('GET', '/v1/agent/connect/ca/roots')).json() as { ActiveRootID: string };
    return r.ActiveRootID !== rootsBefore.ActiveRootID ? r.ActiveRootID : undefined;
  }, 20_000);
  const roots = (await agent.request('GET', '/v1/agent/connect/ca/roots')).json() as { Roots: Array<{ ID: string; RootCert: string }> };
  const newRootCert = new X509Certificate(roots.Roots.find((r) => r.ID === newRoot)!.RootCert);
  // The agent renews every leaf at once on a new root; the proxies pick them up by blocking query.
  for (const svc of ['payments', 'web']) {
    await waitFor(`${svc}'s leaf signed by the new root`, async () => {
      const leaf = (await agent.request('GET', `/v1/agent/connect/ca/leaf/${svc}`)).json() as { CertPEM: string };
      return new X509Certificate(leaf.CertPEM).checkIssued(newRootCert) || undefined;
    }, 20_000);
  }
  // The payments proxy serves the agent's current leaf (issued under the new root) while the load runs.
  const current = (await agent.request('GET', '/v1/agent/connect/ca/leaf/payments')).json() as { SerialNumber: string };
  const paymentsPort = ((await agent.request('GET', '/v1/agent/service/payments-sidecar-proxy')).json() as { Port: number }).Port;
  await waitFor('the payments proxy presents its renewed leaf', () => new Promise<boolean>((resolve) => {
    const s = tls.connect({ port: paymentsPort, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase().match(/../g)!.join(':');
      s.destroy();
      resolve(serial === current.SerialNumber.toLowerCase());
    });
    s.on('error', () => resolve(false));
  }), 10_000);
  await served(20);
  running = false;
  await Promise.all(workers);
  assert.deepEqual(failures, [], `root ${rootsBefore.ActiveRootID} -> ${newRoot}`);
  assert.ok(ok >= 30, `${ok} requests served`);
});

test('only mesh callers reach the public listener: plain TCP, TLS without a certificate and another CA\'s leaf are refused', async () => {
  const port = ((await agent.request('GET', '/v1/agent/service/payments-sidecar-proxy')).json() as { Port: number }).Port;
  const probe = (socket: net.Socket, ev: 'connect' | 'secureConnect') => new Promise<string>((resolve) => {
    let data = '';
    socket.on(ev, () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', (c: Buffer) => { data += c.toString('latin1'); });
    socket.on('error', () => { /* refused: what is checked is that nothing came back */ });
    socket.on('close', () => resolve(data));
    socket.setTimeout(5000, () => socket.destroy());
  });
  const td = ((await agent.request('GET', '/v1/agent/connect/ca/roots')).json() as { TrustDomain: string }).TrustDomain;
  const other = makeRoot(td, 'Another CA');
  const foreign = makeLeaf(other, { trustDomain: td, dc: 'dc1', service: 'web' });
  const mine = (await agent.request('GET', '/v1/agent/connect/ca/leaf/web')).json() as { CertPEM: string; PrivateKeyPEM: string };
  assert.doesNotMatch(await probe(net.connect(port, '127.0.0.1'), 'connect'), /payments/);
  assert.doesNotMatch(await probe(tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }), 'secureConnect'), /payments/);
  assert.doesNotMatch(await probe(tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, key: foreign.PrivateKeyPEM, cert: foreign.CertPEM }), 'secureConnect'), /payments/);
  // The control: web's own leaf from the agent gets through.
  assert.match(await probe(tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, key: mine.PrivateKeyPEM, cert: mine.CertPEM }), 'secureConnect'), /payments v1 \(onprem\)/);
});

test('a payments instance presenting a valid leaf of another service is refused by web\'s proxy', async () => {
  // The impostor: a TLS server with the agent's own (valid) leaf for "billing", registered as a
  // connect-proxy for payments, so it appears among payments' healthy proxies.
  const billing = (await agent.request('GET', '/v1/agent/connect/ca/leaf/billing')).json() as { CertPEM: string; PrivateKeyPEM: string };
  let appBytes = 0;
  const impostor = tls.createServer({ key: billing.PrivateKeyPEM, cert: billing.CertPEM }, (s) => {
    s.on('data', (c: Buffer) => { appBytes += c.length; });
    s.on('error', () => s.destroy());
  });
  let handshakes = 0;
  impostor.on('connection', () => { handshakes++; });
  impostor.on('tlsClientError', () => { /* web's proxy aborts the handshake: expected */ });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  const impostorPort = (impostor.address() as net.AddressInfo).port;
  const reg = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify({
    Kind: 'connect-proxy', ID: 'impostor', Name: 'payments-sidecar-proxy', Address: '127.0.0.1', Port: impostorPort,
    Proxy: { DestinationServiceName: 'payments', DestinationServiceID: 'payments', LocalServicePort: 1 },
  }) });
  assert.equal(reg.status, 200, reg.text);
  try {
    const refused = await waitFor('a request routed to the impostor fails', async () => {
      const r = await get(webApp.url);
      return r.status === 500 ? r : undefined;
    }, 20_000);
    assert.equal(refused.body.upstream_calls?.[`http://127.0.0.1:${upstreamPort}`]?.code, -1);
    assert.ok(handshakes > 0, 'web\'s proxy did dial the impostor');
    assert.equal(appBytes, 0, 'no application byte reached the impostor');
  } finally {
    await agent.request('PUT', '/v1/agent/service/deregister/impostor');
    impostor.close();
  }
  await waitFor('all requests succeed again', async () => {
    for (let i = 0; i < 4; i++) if ((await get(webApp.url)).status !== 200) return false;
    return true;
  }, 20_000);
});
