// A tiny Connect CA for the gateway's tests: roots, cross-signed roots and SPIFFE leaves made the
// way Consul's CA makes them (connect/ca: URI SAN, CA:TRUE roots, client+server leaves). RSA keys
// come from node:crypto (native, fast); node-forge builds and signs the certificates.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import type { CARoot, CARoots, LeafCert } from '../../src/types.ts';

const pki = forge.pki;

function newKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const priv = pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey: priv, publicKey: pki.setRsaPublicKey(priv.n, priv.e), pem };
}

function serial(): string {
  const b = randomBytes(8);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

export interface TestRoot {
  id: string;
  cert: forge.pki.Certificate;
  key: ReturnType<typeof newKeys>;
  pem: string;
}

const ONE_DAY = 24 * 3600 * 1000;

function validity(c: forge.pki.Certificate): void {
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + ONE_DAY);
}

export function makeRoot(trustDomain: string, name = `Trellis CA ${serial().slice(0, 6)}`): TestRoot {
  const key = newKeys();
  const cert = pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = serial();
  validity(cert);
  const attrs = [{ name: 'commonName', value: name }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://${trustDomain}` }] },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  return { id: serial(), cert, key, pem: pki.certificateToPem(cert) };
}

/** `next`'s certificate re-issued by `prev` (same subject and key): old trust reaches new leaves. */
export function crossSign(next: TestRoot, prev: TestRoot): string {
  const c = pki.createCertificate();
  c.publicKey = next.key.publicKey;
  c.serialNumber = serial();
  validity(c);
  c.setSubject(next.cert.subject.attributes);
  c.setIssuer(prev.cert.subject.attributes);
  c.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  c.sign(prev.key.privateKey, forge.md.sha256.create());
  return pki.certificateToPem(c);
}

export function makeLeaf(root: TestRoot, opts: { trustDomain: string; dc: string; service: string; chain?: string[] }): LeafCert {
  const key = newKeys();
  const c = pki.createCertificate();
  c.publicKey = key.publicKey;
  c.serialNumber = serial();
  validity(c);
  const uri = `spiffe://${opts.trustDomain}/ns/default/dc/${opts.dc}/svc/${opts.service}`;
  c.setSubject([{ name: 'commonName', value: opts.service }]);
  c.setIssuer(root.cert.subject.attributes);
  c.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyAgreement: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: uri }] },
  ]);
  c.sign(root.key.privateKey, forge.md.sha256.create());
  return {
    SerialNumber: c.serialNumber.match(/../g)!.join(':'),
    CertPEM: pki.certificateToPem(c) + (opts.chain ?? []).join(''),
    PrivateKeyPEM: key.pem,
    Service: opts.service,
    ServiceURI: uri,
    ValidAfter: c.validity.notBefore.toISOString(),
    ValidBefore: c.validity.notAfter.toISOString(),
  };
}

export function rootsBody(trustDomain: string, roots: Array<{ root: TestRoot; active: boolean; intermediates?: string[] }>): CARoots {
  const list: CARoot[] = roots.map((r) => ({ ID: r.root.id, RootCert: r.root.pem, IntermediateCerts: r.intermediates ?? [], Active: r.active }));
  return { ActiveRootID: roots.find((r) => r.active)?.root.id ?? '', TrustDomain: trustDomain, Roots: list };
}
