// The CA's certificates built with node-forge, checked with Node's own X.509 and TLS (OpenSSL):
// a root, CSRs, leaves, a real mTLS handshake, and cross-signing for rotation.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  CertificateError, certFacts, checkCsr, createCsr, createRoot, crossSign, generateKeyPair, keyMatchesCert, parseCert, signLeaf,
  type SigningCA,
} from '../../src/ca/certs.ts';
import { serviceId } from '../../src/connect/spiffe.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const HOUR = 3_600_000;

interface Ca { certPem: string; keyPem: string; signing: SigningCA }
function makeCa(trustDomain = TD, serial = 1): Ca {
  const k = generateKeyPair(2048);
  const certPem = createRoot({ privateKeyPem: k.privateKeyPem, trustDomain, serialNumber: serial, ttlMs: 87_600 * HOUR });
  return { certPem, keyPem: k.privateKeyPem, signing: { certPem, key: crypto.createPrivateKey(k.privateKeyPem), trustDomain, datacenter: 'dc1' } };
}

function leafFor(ca: Ca, service: string, signer: Ca = ca): { cert: string; key: string } {
  const k = generateKeyPair(2048);
  const csr = createCsr(serviceId(ca.signing.trustDomain, 'dc1', service), k.privateKeyPem);
  const issued = signLeaf(checkCsr(csr, signer.signing), signer.signing, parseCert(signer.certPem), 72 * HOUR);
  return { cert: issued.certPem, key: k.privateKeyPem };
}

/** One mTLS handshake on 127.0.0.1: resolves with what each side saw. */
async function handshake(server: { cert: string; key: string; ca: string[] }, client: { cert: string; key: string; ca: string[] }): Promise<{ ok: boolean; error?: string; peerUri?: string }> {
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.end('hi');
  });
  let serverError = '';
  srv.on('tlsClientError', (e) => { serverError = e.message; });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, ...client, checkServerIdentity: () => undefined }, () => {
        const peer = c.getPeerX509Certificate();
        c.once('data', () => {
          c.end();
          resolve({ ok: true, peerUri: peer?.subjectAltName });
        });
      });
      c.on('error', (e) => resolve({ ok: false, error: e.message }));
      c.on('close', () => resolve({ ok: false, error: `closed (server: ${serverError})` }));
      c.setTimeout(10_000, () => c.destroy(new Error('timeout')));
    });
  } finally {
    srv.close();
  }
}

let ca: Ca;
before(() => {
  ca = makeCa();
});

describe('root', () => {
  test('a self-signed CA with the signing SPIFFE URI, key usage for signing, valid from a minute ago', () => {
    const x = new crypto.X509Certificate(ca.certPem);
    assert.equal(x.ca, true);
    assert.equal(x.subjectAltName, `URI:spiffe://${TD}`);
    assert.match(x.subject, /^CN=pri-[0-9a-z]{1,8}\.consul\.ca\.11111111\.consul$/);
    assert.ok(x.verify(x.publicKey));
    const facts = certFacts(ca.certPem);
    assert.match(facts.id, /^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);
    assert.equal(facts.id, x.fingerprint.toLowerCase());
    assert.match(facts.signingKeyId, /^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);
    assert.equal(facts.isCA, true);
    assert.ok(Date.now() - facts.notBefore.getTime() >= 59_000);
    assert.ok(keyMatchesCert(ca.keyPem, ca.certPem));
    assert.equal(keyMatchesCert(generateKeyPair(2048).privateKeyPem, ca.certPem), false);
  });
});

describe('leaf signing', () => {
  test('a leaf carries the service SPIFFE URI, CN the service, server and client auth, and chains to the root', () => {
    const { cert } = leafFor(ca, 'web');
    const x = new crypto.X509Certificate(cert);
    assert.equal(x.subjectAltName, `URI:spiffe://${TD}/ns/default/dc/dc1/svc/web`);
    assert.equal(x.subject, 'CN=web.svc.default.11111111.consul');
    assert.equal(x.ca, false);
    assert.deepEqual([...(x.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.ok(x.checkIssued(new crypto.X509Certificate(ca.certPem)));
    assert.ok(x.verify(new crypto.X509Certificate(ca.certPem).publicKey));
    const life = Date.parse(x.validTo) - Date.parse(x.validFrom);
    assert.equal(life, 72 * HOUR);
  });

  test('CSRs for another trust domain or datacenter, without a URI, or tampered are refused with a reason', () => {
    const k = generateKeyPair(2048);
    const other = createCsr(serviceId('other.consul', 'dc1', 'web'), k.privateKeyPem);
    assert.throws(() => checkCsr(other, ca.signing), (e: Error) => e instanceof CertificateError && e.message === `SPIFFE ID in CSR from a different trust domain: other.consul, trust domain for this cluster: ${TD}`);
    const dc2 = createCsr(serviceId(TD, 'dc2', 'web'), k.privateKeyPem);
    assert.throws(() => checkCsr(dc2, ca.signing), (e: Error) => e.message === 'SPIFFE ID in CSR from a different datacenter: dc2, registered datacenter: dc1');
    assert.throws(() => checkCsr('not a csr', ca.signing), (e: Error) => e instanceof CertificateError && e.message.startsWith('error parsing CSR:'));
    const good = createCsr(serviceId(TD, 'dc1', 'web'), k.privateKeyPem);
    const der = Buffer.from(good.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 5] ^= 0xff; // inside the signature
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => checkCsr(tampered, ca.signing), CertificateError);
    assert.throws(() => checkCsr(createCsr({ kind: 'signing', trustDomain: TD }, k.privateKeyPem), ca.signing), /must be a service or agent ID/);
  });
});

describe('TLS with issued leaves', () => {
  test('two leaves of one CA complete a real mTLS handshake; a leaf of another CA is refused', async () => {
    const web = leafFor(ca, 'web');
    const api = leafFor(ca, 'api');
    const ok = await handshake({ ...api, ca: [ca.certPem] }, { ...web, ca: [ca.certPem] });
    assert.equal(ok.ok, true, ok.error);
    assert.equal(ok.peerUri, `URI:spiffe://${TD}/ns/default/dc/dc1/svc/api`);
    const stranger = makeCa('99999999-0000-0000-0000-000000000000.consul');
    const bad = await handshake({ ...api, ca: [ca.certPem] }, { ...leafFor(stranger, 'web'), ca: [ca.certPem] });
    assert.equal(bad.ok, false);
  });

  test('rotation: a new leaf chains to the old root through the cross-signed new root; old leaves verify against the old root', async () => {
    const next = makeCa(TD, 2);
    const cross = crossSign(next.certPem, ca.certPem, ca.keyPem);
    const x = new crypto.X509Certificate(cross);
    assert.equal(x.subject, new crypto.X509Certificate(next.certPem).subject);
    assert.equal(x.issuer, new crypto.X509Certificate(ca.certPem).subject);
    assert.notEqual(x.subject, x.issuer);
    assert.ok(x.verify(new crypto.X509Certificate(ca.certPem).publicKey));
    const newLeaf = leafFor(next, 'api');
    const oldLeaf = leafFor(ca, 'web');
    // A peer that still trusts only the old root accepts the new leaf sent with the cross-signed cert.
    const r1 = await handshake({ key: newLeaf.key, cert: newLeaf.cert + cross, ca: [ca.certPem, next.certPem] }, { ...oldLeaf, ca: [ca.certPem] });
    assert.equal(r1.ok, true, `r1 ${r1.error}`);
    // Without the cross-signed cert it does not.
    const r2 = await handshake({ ...newLeaf, ca: [ca.certPem, next.certPem] }, { ...oldLeaf, ca: [ca.certPem] });
    assert.equal(r2.ok, false);
    // Peers with the new bundle (both roots) accept an old leaf not yet renewed.
    const r3 = await handshake({ ...oldLeaf, ca: [ca.certPem, next.certPem] }, { ...newLeaf, ca: [ca.certPem, next.certPem] });
    assert.equal(r3.ok, true, `r3 ${r3.error}`);
  });
});

