// The built-in CA end to end (issue 13, part 1) with real processes: a server and a client agent.
// The first leader makes the CA; the client agent fetches leaves for two services registered on it
// (keys made on the client, CSRs signed by the server through the forwarded sign endpoint); the
// leaves complete a real mTLS handshake with Node's tls against the roots, and a leaf of another CA
// is refused. A rotation through `trellis connect ca set-config`: the new root is active, the old
// one kept inactive, a leaf issued before still completes a handshake, the renewed leaf chains to
// the old root through the cross-signed certificate, and the agent's cached leaf is renewed at once
// (a blocking read wakes) to one signed by the new root. Bad configurations: 400 with Consul's text.
// A server restart keeps the CA (replayed from its Raft log): same trust domain and root, no new one.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, waitFor, startServerAndClient } from '../support/index.ts';
import { checkCsr, createCsr, createRoot, generateKeyPair, parseCert, signLeaf } from '../../packages/agent/src/ca/certs.ts';
import { serviceId } from '../../packages/agent/src/connect/spiffe.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-ca-'));
let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
after(async () => {
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

interface Root { ID: string; Active: boolean; RootCert: string; IntermediateCerts: string[] | null; RotatedOutAt: string; PrivateKeyBits: number }
interface Roots { ActiveRootID: string; TrustDomain: string; Roots: Root[] }
interface Leaf { SerialNumber: string; CertPEM: string; PrivateKeyPEM: string; Service: string; ServiceURI: string; ModifyIndex: number }

/** One mTLS handshake on 127.0.0.1 between two certificate holders; true when both sides accept. */
async function handshake(srv: { key: string; cert: string; ca: string[] }, cli: { key: string; cert: string; ca: string[] }): Promise<{ ok: boolean; why: string; peer?: string }> {
  let serverWhy = '';
  const s = tls.createServer({ ...srv, requestCert: true, rejectUnauthorized: true }, (sock) => sock.end('ok'));
  s.on('tlsClientError', (e) => { serverWhy = e.message; });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  try {
    return await new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, ...cli, checkServerIdentity: () => undefined }, () => {
        const peer = c.getPeerX509Certificate()?.subjectAltName;
        c.once('data', () => { c.end(); resolve({ ok: true, why: '', ...(peer ? { peer } : {}) }); });
      });
      c.on('error', (e) => resolve({ ok: false, why: e.message }));
      c.on('close', () => resolve({ ok: false, why: `closed (server: ${serverWhy})` }));
      c.setTimeout(10_000, () => c.destroy(new Error('handshake timed out')));
    });
  } finally {
    s.close();
  }
}

test('CA roots, leaves on a client agent, mTLS between leaves, rotation with cross-signing and leaf renewal', { timeout: 240_000 }, async (t) => {
  ({ server, client } = await startServerAndClient('ca'));
  const viaClient = ['-http-addr', client.httpAddr];
  const trellis = (...args: string[]) => runTrellis(args, { timeoutMs: 30_000 });
  const roots = async (): Promise<Roots> => (await client!.request('GET', '/v1/connect/ca/roots')).json<Roots>();

  // The first leader made the CA; the client agent forwards the read.
  const r1 = await waitFor('the CA roots through the client agent', async () => {
    const r = await client!.request('GET', '/v1/connect/ca/roots');
    return r.status === 200 && r.json<Roots>().ActiveRootID !== '' ? r.json<Roots>() : undefined;
  }, 30_000, 200);
  assert.equal(r1.Roots.length, 1);
  assert.match(r1.TrustDomain, /^[0-9a-f-]{36}\.consul$/);
  const agentRoots = (await client.request('GET', '/v1/agent/connect/ca/roots')).json<Roots>();
  assert.equal(agentRoots.ActiveRootID, r1.ActiveRootID);

  for (const svc of ['web', 'api']) {
    const reg = await client.request('PUT', '/v1/agent/service/register', { body: { Name: svc, Port: svc === 'web' ? 8080 : 9090 } });
    assert.equal(reg.status, 200, reg.text);
  }
  const leafOf = async (svc: string): Promise<{ leaf: Leaf; index: number }> => {
    const r = await client!.request('GET', `/v1/agent/connect/ca/leaf/${svc}`, { timeoutMs: 60_000 });
    assert.equal(r.status, 200, r.text);
    return { leaf: r.json<Leaf>(), index: r.index };
  };
  const { leaf: web1, index: webIndex } = await leafOf('web');
  const { leaf: api1 } = await leafOf('api');
  assert.equal(web1.ServiceURI, `spiffe://${r1.TrustDomain}/ns/default/dc/dc1/svc/web`);
  assert.equal(webIndex, web1.ModifyIndex);
  assert.equal((await leafOf('web')).leaf.SerialNumber, web1.SerialNumber, 'the leaf is cached on the agent');
  const x = new crypto.X509Certificate(web1.CertPEM);
  assert.ok(x.checkPrivateKey(crypto.createPrivateKey(web1.PrivateKeyPEM)));
  assert.ok(x.checkIssued(new crypto.X509Certificate(r1.Roots[0]!.RootCert)));
  // The private key is the client agent's: the server has never seen it.
  assert.ok(!fs.readFileSync(server.logFile, 'utf8').includes('PRIVATE KEY'));
  assert.ok(!fs.readFileSync(client.logFile, 'utf8').includes('PRIVATE KEY'));

  // A real mTLS handshake between the two services' leaves, trusting the roots.
  const bundle1 = r1.Roots.map((r) => r.RootCert);
  const hs = await handshake({ key: api1.PrivateKeyPEM, cert: api1.CertPEM, ca: bundle1 }, { key: web1.PrivateKeyPEM, cert: web1.CertPEM, ca: bundle1 });
  assert.equal(hs.ok, true, hs.why);
  assert.equal(hs.peer, `URI:spiffe://${r1.TrustDomain}/ns/default/dc/dc1/svc/api`);
  // A leaf from another CA is refused.
  const otherKey = generateKeyPair();
  const otherRoot = createRoot({ privateKeyPem: otherKey.privateKeyPem, trustDomain: r1.TrustDomain, serialNumber: 1, ttlMs: 87_600 * 3_600_000 });
  const strangerKey = generateKeyPair();
  const signing = { certPem: otherRoot, key: crypto.createPrivateKey(otherKey.privateKeyPem), trustDomain: r1.TrustDomain, datacenter: 'dc1' };
  const stranger = signLeaf(checkCsr(createCsr(serviceId(r1.TrustDomain, 'dc1', 'web'), strangerKey.privateKeyPem), signing), signing, parseCert(otherRoot), 3_600_000);
  const bad = await handshake({ key: api1.PrivateKeyPEM, cert: api1.CertPEM, ca: bundle1 }, { key: strangerKey.privateKeyPem, cert: stranger.certPem, ca: bundle1 });
  assert.equal(bad.ok, false);

  // The CLI shows the configuration in Consul's api.CAConfig shape.
  let r = await trellis('connect', 'ca', 'get-config', ...viaClient);
  assert.equal(r.code, 0, r.stderr);
  const shown = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(shown), ['Provider', 'Config', 'State', 'ForceWithoutCrossSigning', 'CreateIndex', 'ModifyIndex']);
  assert.equal(shown.Provider, 'consul');
  assert.deepEqual(Object.keys(shown.Config as object), ['CSRMaxConcurrent', 'CSRMaxPerSecond', 'IntermediateCertTTL', 'LeafCertTTL', 'PrivateKeyBits', 'PrivateKeyType', 'RootCertTTL']);

  // Bad configuration: Consul's text, exit 1, nothing changed.
  const badFile = path.join(tmp, 'bad.json');
  fs.writeFileSync(badFile, JSON.stringify({ Provider: 'consul', Config: { LeafCertTTL: '10m' } }));
  r = await trellis('connect', 'ca', 'set-config', ...viaClient, '-config-file', badFile);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error setting CA configuration: .*400.*leaf cert TTL must be greater or equal than 1h0m0s/);
  r = await trellis('connect', 'ca', 'set-config', ...viaClient);
  assert.deepEqual([r.code, r.stderr.trim()], [1, 'The -config-file flag is required']);
  assert.equal((await roots()).ActiveRootID, r1.ActiveRootID);

  // Rotation: a new key size means a new root, cross-signed by the old one.
  const waiting = client.request('GET', `/v1/agent/connect/ca/leaf/web?index=${webIndex}&wait=60s`, { timeoutMs: 90_000 });
  const file = path.join(tmp, 'ca.json');
  fs.writeFileSync(file, JSON.stringify({ Provider: 'consul', Config: { LeafCertTTL: '72h', PrivateKeyType: 'rsa', PrivateKeyBits: 4096 } }));
  const rotatedAt = performance.now();
  r = await trellis('connect', 'ca', 'set-config', ...viaClient, '-config-file', file);
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'Configuration updated!\n', '']);
  const r2 = await roots();
  assert.equal(r2.Roots.length, 2);
  const active = r2.Roots.find((x) => x.Active)!;
  const old = r2.Roots.find((x) => !x.Active)!;
  assert.equal(old.ID, r1.ActiveRootID);
  assert.notEqual(old.RotatedOutAt, '0001-01-01T00:00:00Z');
  assert.equal(r2.ActiveRootID, active.ID);
  assert.equal(active.PrivateKeyBits, 4096);
  assert.equal(active.IntermediateCerts?.length, 1);

  // The agent's cached leaf is renewed at once: the blocking read wakes with a leaf of the new root.
  const renewedRes = await waiting;
  assert.equal(renewedRes.status, 200, renewedRes.text);
  const web2 = renewedRes.json<Leaf>();
  t.diagnostic(`renewed leaf seen ${Math.round(performance.now() - rotatedAt)} ms after set-config started`);
  assert.notEqual(web2.SerialNumber, web1.SerialNumber);
  assert.ok(web2.ModifyIndex > web1.ModifyIndex);
  assert.ok(new crypto.X509Certificate(web2.CertPEM).checkIssued(new crypto.X509Certificate(active.RootCert)));
  // api's leaf follows too (renewed in the background).
  const api2 = await waitFor('the api leaf to be renewed', async () => {
    const l = (await leafOf('api')).leaf;
    return l.SerialNumber !== api1.SerialNumber ? l : undefined;
  }, 30_000, 200);

  const bundle2 = r2.Roots.map((x) => x.RootCert);
  // A leaf issued before the rotation still works with peers that have the new bundle.
  let h = await handshake({ key: api2.PrivateKeyPEM, cert: api2.CertPEM, ca: bundle2 }, { key: web1.PrivateKeyPEM, cert: web1.CertPEM, ca: bundle2 });
  assert.equal(h.ok, true, `old leaf with the new bundle: ${h.why}`);
  // A renewed leaf works with a peer that still trusts only the old root, through the cross-signed root.
  h = await handshake({ key: web2.PrivateKeyPEM, cert: web2.CertPEM, ca: bundle2 }, { key: api1.PrivateKeyPEM, cert: api1.CertPEM, ca: [old.RootCert] });
  assert.equal(h.ok, true, `new leaf with an old-root-only peer: ${h.why}`);
  // Both renewed.
  h = await handshake({ key: api2.PrivateKeyPEM, cert: api2.CertPEM, ca: bundle2 }, { key: web2.PrivateKeyPEM, cert: web2.CertPEM, ca: bundle2 });
  assert.equal(h.ok, true, h.why);

  r = await trellis('connect', 'ca', 'get-config', ...viaClient);
  assert.equal((JSON.parse(r.stdout) as { Config: { PrivateKeyBits: number } }).Config.PrivateKeyBits, 4096);
  // No answer and no log line carries a private key of the CA.
  const cfg = await client.request('GET', '/v1/connect/ca/configuration');
  assert.ok(!cfg.text.includes('PRIVATE KEY') && !JSON.stringify(r2).includes('PRIVATE KEY'));
  assert.ok(!fs.readFileSync(server.logFile, 'utf8').includes('PRIVATE KEY'));
});

test('the CA survives a server restart: same cluster id, same root, no second initialization', { timeout: 120_000 }, async () => {
  const solo = await AgentProcess.start({ name: 'ca-restart', mode: 'server' });
  try {
    const before = await waitFor('the CA', async () => {
      const r = await solo.request('GET', '/v1/connect/ca/roots');
      return r.status === 200 && r.json<Roots>().ActiveRootID !== '' ? r.json<Roots>() : undefined;
    }, 30_000, 200);
    await solo.restart();
    const after = await waitFor('the CA after the restart', async () => {
      const r = await solo.request('GET', '/v1/connect/ca/roots');
      return r.status === 200 && r.json<Roots>().ActiveRootID !== '' ? r.json<Roots>() : undefined;
    }, 30_000, 200);
    assert.equal(after.TrustDomain, before.TrustDomain);
    assert.deepEqual(after.Roots.map((x) => x.ID), before.Roots.map((x) => x.ID));
    // It still signs with the key it kept: a leaf verifies against the same root.
    const leaf = await solo.request('GET', '/v1/agent/connect/ca/leaf/db', { timeoutMs: 60_000 });
    assert.equal(leaf.status, 200, leaf.text);
    assert.ok(new crypto.X509Certificate(leaf.json<Leaf>().CertPEM).checkIssued(new crypto.X509Certificate(before.Roots[0]!.RootCert)));
    assert.equal((fs.readFileSync(solo.logFile, 'utf8').match(/initialized primary datacenter CA/g) ?? []).length, 1);
  } finally {
    await solo.dispose();
  }
});
