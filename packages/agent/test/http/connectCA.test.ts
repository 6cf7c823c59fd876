// The CA's HTTP API on a server (in-process store, real ServerCA): roots and configuration in
// Consul's shapes, rotation through PUT configuration, the sign endpoint's checks and rate limit,
// and the agent's cached, blocking, renewed leaf endpoint.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import pino from 'pino';
import { harness, type Harness } from './helpers.ts';
import { ServerCA } from '../../src/server/connectCA.ts';
import { createCsr, createRoot, generateKeyPair } from '../../src/ca/certs.ts';
import { serviceId } from '../../src/connect/spiffe.ts';

interface Roots { ActiveRootID: string; TrustDomain: string; Roots: Array<Record<string, unknown> & { ID: string; Active: boolean; RootCert: string; IntermediateCerts: string[] | null }> }
interface Leaf { SerialNumber: string; CertPEM: string; PrivateKeyPEM: string; Service: string; ServiceURI: string; ValidAfter: string; ValidBefore: string; CreateIndex: number; ModifyIndex: number }

let h: Harness;
let ca: ServerCA;
before(async () => {
  h = harness();
  ca = new ServerCA({ store: h.store, apply: h.backend.apply, datacenter: 'dc1', logger: pino({ level: 'silent' }) });
  h.backend.connectCA = ca;
});
after(async () => {
  await h.close();
});

const roots = async (): Promise<Roots> => (await h.json<Roots>('GET', '/v1/connect/ca/roots')).body;

describe('CA over HTTP', () => {
  test('before the first leader made a CA the roots are empty and the configuration is a 500', async () => {
    const r = await h.json<Roots>('GET', '/v1/connect/ca/roots');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ActiveRootID: '', TrustDomain: '', Roots: [] });
    const c = await h.req('GET', '/v1/connect/ca/configuration');
    assert.equal(c.statusCode, 500);
  });

  test('initialize makes one root in Consul shape for <cluster-id>.consul; a second call changes nothing', async () => {
    await ca.initialize();
    await ca.initialize();
    const r = await h.json<Roots>('GET', '/v1/connect/ca/roots');
    assert.equal(r.body.Roots.length, 1);
    const root = r.body.Roots[0]!;
    assert.deepEqual(Object.keys(root), ['ID', 'Name', 'SerialNumber', 'SigningKeyID', 'ExternalTrustDomain', 'NotBefore', 'NotAfter', 'RootCert', 'IntermediateCerts', 'Active', 'RotatedOutAt', 'PrivateKeyType', 'PrivateKeyBits', 'CreateIndex', 'ModifyIndex']);
    assert.equal(r.body.ActiveRootID, root.ID);
    assert.equal(root.ID, new crypto.X509Certificate(root.RootCert).fingerprint.toLowerCase());
    const cfg = (await h.json<Record<string, unknown>>('GET', '/v1/connect/ca/configuration')).body;
    assert.match(String(cfg.ClusterID), /^[0-9a-f-]{36}$/);
    assert.equal(r.body.TrustDomain, `${cfg.ClusterID}.consul`);
    assert.equal(root.ExternalTrustDomain, r.body.TrustDomain);
    assert.equal(new crypto.X509Certificate(root.RootCert).subjectAltName, `URI:spiffe://${r.body.TrustDomain}`);
    assert.equal(root.PrivateKeyType, 'rsa');
    assert.equal(root.PrivateKeyBits, 2048);
    assert.equal(r.headers['x-consul-index'], String(root.ModifyIndex));
    assert.equal(cfg.Provider, 'consul');
    assert.deepEqual(cfg.Config, { LeafCertTTL: '72h', IntermediateCertTTL: '8760h', RootCertTTL: '87600h', PrivateKeyType: 'rsa', PrivateKeyBits: 2048, CSRMaxPerSecond: 50, CSRMaxConcurrent: 0 });
    const agentRoots = await h.json<Roots>('GET', '/v1/agent/connect/ca/roots');
    assert.deepEqual(agentRoots.body, r.body);
    const pem = await h.req('GET', '/v1/connect/ca/roots?pem');
    assert.equal(pem.headers['content-type'], 'application/pem-certificate-chain');
    assert.equal(pem.body, root.RootCert);
  });

  test('bad configurations are 400 with Consul texts and change nothing', async () => {
    const before = await h.json('GET', '/v1/connect/ca/configuration');
    for (const [config, text] of [
      [{ LeafCertTTL: '30m' }, 'leaf cert TTL must be greater or equal than 1h0m0s'],
      [{ LeafCertTTL: '9000h' }, 'leaf cert TTL must be less than 8760h0m0s'],
      [{ LeafCertTTL: '72h', IntermediateCertTTL: '100h' }, 'Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=216h0m0s).'],
      [{ PrivateKeyType: 'rsa', PrivateKeyBits: 1024 }, 'RSA key length must be 2048 or 4096 bits'],
      [{ PrivateKeyType: 'dsa' }, "private key type must be either 'ec' or 'rsa'"],
      [{ RootCertTTL: '100h' }, 'root cert TTL is set and is not greater than intermediate cert ttl. root cert ttl: 100h0m0s, intermediate cert ttl: 8760h0m0s'],
    ] as const) {
      const res = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: config });
      assert.equal(res.statusCode, 400, JSON.stringify(config));
      assert.equal(res.body, text);
    }
    const vault = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'vault', Config: {} });
    assert.equal(vault.statusCode, 400);
    assert.equal(vault.body, 'unknown CA provider "vault"');
    const junk = await h.req('PUT', '/v1/connect/ca/configuration', '{"Config":');
    assert.equal(junk.statusCode, 400);
    assert.match(junk.body, /^Request decode failed: /);
    // The bodies and the index, not the whole responses: the Date header moves with the clock.
    const afterAll = await h.json('GET', '/v1/connect/ca/configuration') as unknown as { status: number; body: unknown; headers: Record<string, string> };
    const was = before as unknown as typeof afterAll;
    assert.deepEqual([afterAll.status, afterAll.body, afterAll.headers['x-consul-index']], [was.status, was.body, was.headers['x-consul-index']]);
  });

  test('the sign endpoint signs a CSR of this trust domain and refuses others with 400', async () => {
    const r = await roots();
    const k = generateKeyPair();
    const ok = await h.json<Leaf>('PUT', '/v1/internal/connect/ca/sign', { CSR: createCsr(serviceId(r.TrustDomain, 'dc1', 'web'), k.privateKeyPem) });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.Service, 'web');
    assert.equal(ok.body.ServiceURI, `spiffe://${r.TrustDomain}/ns/default/dc/dc1/svc/web`);
    assert.equal(ok.body.PrivateKeyPEM, '');
    assert.ok(new crypto.X509Certificate(ok.body.CertPEM).verify(new crypto.X509Certificate(r.Roots[0]!.RootCert).publicKey));
    const other = await h.req('PUT', '/v1/internal/connect/ca/sign', { CSR: createCsr(serviceId('other.consul', 'dc1', 'web'), k.privateKeyPem) });
    assert.equal(other.statusCode, 400);
    assert.equal(other.body, `SPIFFE ID in CSR from a different trust domain: other.consul, trust domain for this cluster: ${r.TrustDomain}`);
    const garbage = await h.req('PUT', '/v1/internal/connect/ca/sign', { CSR: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    assert.equal(garbage.statusCode, 400);
    assert.match(garbage.body, /^error parsing CSR: /);
    assert.equal((await h.req('PUT', '/v1/internal/connect/ca/sign', { CSR: 5 })).statusCode, 400);
  });

  test('CSRMaxPerSecond limits signing with 429 "Rate limit reached, try again later"', async () => {
    const put = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: { CSRMaxPerSecond: 1 } });
    assert.equal(put.statusCode, 200, put.body);
    const r = await roots();
    const csr = createCsr(serviceId(r.TrustDomain, 'dc1', 'web'), generateKeyPair().privateKeyPem);
    const statuses: number[] = [];
    let limited = '';
    for (let i = 0; i < 3; i++) {
      const res = await h.req('PUT', '/v1/internal/connect/ca/sign', { CSR: csr });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) limited = res.body;
    }
    assert.ok(statuses.includes(429), statuses.join(','));
    assert.equal(limited, 'Rate limit reached, try again later');
    // A TTL-only change keeps the root.
    assert.equal((await roots()).ActiveRootID, r.ActiveRootID);
    assert.equal((await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: { CSRMaxPerSecond: 0 } })).statusCode, 200);
  });

  test('the agent leaf: key with the agent, cached, and renewed at once (blocking read wakes) when a rotation makes a new root', async () => {
    const first = await h.json<Leaf>('GET', '/v1/agent/connect/ca/leaf/web');
    assert.equal(first.status, 200);
    const r1 = await roots();
    assert.equal(first.body.Service, 'web');
    assert.equal(first.body.ServiceURI, `spiffe://${r1.TrustDomain}/ns/default/dc/dc1/svc/web`);
    assert.equal(first.headers['x-consul-index'], String(first.body.ModifyIndex));
    const x = new crypto.X509Certificate(first.body.CertPEM);
    assert.ok(x.checkPrivateKey(crypto.createPrivateKey(first.body.PrivateKeyPEM)));
    assert.ok(x.checkIssued(new crypto.X509Certificate(r1.Roots[0]!.RootCert)));
    const again = await h.json<Leaf>('GET', '/v1/agent/connect/ca/leaf/web');
    assert.equal(again.body.SerialNumber, first.body.SerialNumber);

    const waiting = h.json<Leaf>('GET', `/v1/agent/connect/ca/leaf/web?index=${first.body.ModifyIndex}&wait=30s`);
    const put = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: { PrivateKeyBits: 4096 } });
    assert.equal(put.statusCode, 200, put.body);
    const r2 = await roots();
    assert.equal(r2.Roots.length, 2);
    const active = r2.Roots.find((r) => r.Active)!;
    const old = r2.Roots.find((r) => !r.Active)!;
    assert.equal(old.ID, r1.ActiveRootID);
    assert.notEqual(old.RotatedOutAt, '0001-01-01T00:00:00Z');
    assert.equal(active.IntermediateCerts!.length, 1);
    assert.equal(active.PrivateKeyBits, 4096);
    const renewed = await waiting;
    assert.equal(renewed.status, 200);
    assert.ok(renewed.body.ModifyIndex > first.body.ModifyIndex);
    assert.notEqual(renewed.body.SerialNumber, first.body.SerialNumber);
    assert.ok(new crypto.X509Certificate(renewed.body.CertPEM).checkIssued(new crypto.X509Certificate(active.RootCert)));
    // The leaf comes with the cross-signed root, for peers that still trust only the old root.
    assert.ok(renewed.body.CertPEM.includes(active.IntermediateCerts![0]!.trim()));
  });

  test('bring your own root: the given root becomes active; its key is never in an answer', async () => {
    const k = generateKeyPair();
    const td = (await roots()).TrustDomain;
    const mine = createRoot({ privateKeyPem: k.privateKeyPem, trustDomain: td, serialNumber: 42, ttlMs: 87_600 * 3_600_000 });
    const put = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: { PrivateKey: k.privateKeyPem, RootCert: mine } });
    assert.equal(put.statusCode, 200, put.body);
    const r = await roots();
    const active = r.Roots.find((x) => x.Active)!;
    assert.equal(active.RootCert.trim(), mine.trim());
    const cfg = await h.req('GET', '/v1/connect/ca/configuration');
    for (const body of [cfg.body, JSON.stringify(r)]) assert.ok(!body.includes('PRIVATE KEY'));
    const mismatch = await h.req('PUT', '/v1/connect/ca/configuration', { Provider: 'consul', Config: { PrivateKey: generateKeyPair().privateKeyPem, RootCert: mine } });
    assert.equal(mismatch.statusCode, 400);
    assert.equal(mismatch.body, 'the PrivateKey does not match the RootCert');
  });
});
