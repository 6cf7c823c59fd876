// Certificates of the built-in CA, with node-forge building them (Consul's agent/connect/ca and
// agent/connect: generate, CreateCSR, Sign, CrossSignCA).
//
// Speed: key pairs come from node:crypto (native; measured here ~40 ms for RSA 2048, node-forge's
// own JavaScript is far slower when it cannot delegate), and the signature over the to-be-signed
// bytes node-forge lays out is made by node:crypto too (a native RSA private operation, ~1 ms):
// node-forge's cert.sign only needs an object with sign(md), and the md only needs update(). That
// keeps leaf signing well above the 200/s target on one core.
//
// Keys are RSA (PrivateKeyType "rsa"): node-forge reads and writes RSA keys only. Private keys never
// leave this module's callers except as PEM handed back to whoever made them.
import crypto from 'node:crypto';
import forge from 'node-forge';
import { BACKDATE_MS, colonHex } from '../connect/policy.ts';
import { agentCN, caCN, serviceCN } from '../connect/commonNames.ts';
import { canSign, formatSpiffeId, parseSpiffeId, SpiffeParseError, type SpiffeId } from '../connect/spiffe.ts';

const { pki, asn1 } = forge;

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateError';
  }
}

export interface KeyPair {
  /** PKCS#1 "RSA PRIVATE KEY" PEM (what Consul writes for RSA). */
  privateKeyPem: string;
  publicKeyPem: string;
}

export function generateKeyPair(bits = 2048): KeyPair {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** A node-forge signer whose signature node:crypto makes (see the header). */
function nativeSigner(key: crypto.KeyObject): { md: forge.md.MessageDigest; key: { sign(md: unknown): string } } {
  let data = '';
  const md = {
    algorithm: 'sha256',
    start() { data = ''; return md; },
    update(bytes: string) { data += bytes; return md; },
    digest() { throw new Error('not used'); },
  } as unknown as forge.md.MessageDigest;
  return {
    md,
    key: { sign: () => crypto.sign('sha256', Buffer.from(data, 'binary'), key).toString('binary') },
  };
}

function signCert(cert: forge.pki.Certificate, key: crypto.KeyObject): string {
  const s = nativeSigner(key);
  cert.sign(s.key as unknown as forge.pki.rsa.PrivateKey, s.md);
  return pki.certificateToPem(cert);
}

/** SHA-1 of the public key's PKCS#1 DER: the SubjectKeyId node-forge and Go both derive. */
function keyIdOf(pub: forge.pki.PublicKey): Uint8Array {
  const der = asn1.toDer(pki.publicKeyToRSAPublicKey(pub)).getBytes();
  return new Uint8Array(crypto.createHash('sha1').update(Buffer.from(der, 'binary')).digest());
}

const binary = (b: Uint8Array): string => Buffer.from(b).toString('binary');

function serialHex(serial: Uint8Array): string {
  // A positive INTEGER: clear the top bit, keep at least one non-zero byte.
  const b = Buffer.from(serial);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString('hex');
}

export function randomSerial(bytes = 16): Uint8Array {
  return new Uint8Array(crypto.randomBytes(bytes));
}

/** Consul's CompactUID: 8 base-36 characters from random bytes, for CA common names. */
export function compactUid(): string {
  return crypto.randomBytes(8).readBigUInt64LE().toString(36).slice(0, 8);
}

export interface RootOptions {
  privateKeyPem: string;
  trustDomain: string;
  serialNumber: number;
  /** Default: Consul's CACN, `pri-<uid>.consul.ca.<td8>.consul`, unique per root. */
  commonName?: string;
  ttlMs: number;
  now?: number;
}

/** A self-signed root CA with the URI SAN spiffe://<trust domain> (Consul's GenerateCAChain). */
export function createRoot(o: RootOptions): string {
  const key = crypto.createPrivateKey(o.privateKeyPem);
  const pub = pki.publicKeyFromPem(crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString());
  const now = o.now ?? Date.now();
  const cert = pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = o.serialNumber.toString(16).padStart(2, '0').replace(/^([89a-f])/, '0$1');
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + o.ttlMs);
  const subject = [{ name: 'commonName', value: o.commonName ?? caCN('consul', compactUid(), o.trustDomain) }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const kid = binary(keyIdOf(pub));
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: formatSpiffeId({ kind: 'signing', trustDomain: o.trustDomain }) }] },
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: Buffer.from(kid, 'binary').toString('hex') },
    { name: 'authorityKeyIdentifier', keyIdentifier: kid },
  ]);
  return signCert(cert, key);
}

/**
 * `cert` (a CA) re-issued by the CA `signerCertPem`/`signerKeyPem`: same subject, key and
 * extensions, issuer and AuthorityKeyId of the signer (Consul's CrossSignCA). Peers that trust only
 * the signer then accept leaves of the new CA through it. Valid 7 days as in Consul, or longer when
 * `ttlMs` says so.
 */
export function crossSign(certPem: string, signerCertPem: string, signerKeyPem: string, ttlMs = 7 * 24 * 3_600_000, now = Date.now()): string {
  const src = pki.certificateFromPem(certPem);
  const signer = pki.certificateFromPem(signerCertPem);
  const cert = pki.createCertificate();
  cert.publicKey = src.publicKey;
  cert.serialNumber = serialHex(randomSerial());
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(Math.min(now + ttlMs, src.validity.notAfter.getTime()));
  cert.setSubject(src.subject.attributes);
  cert.setIssuer(signer.subject.attributes);
  const exts = (src.extensions as Array<{ name: string }>).filter((e) => e.name !== 'authorityKeyIdentifier');
  exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: binary(keyIdOf(signer.publicKey)) } as never);
  cert.setExtensions(exts);
  return signCert(cert, crypto.createPrivateKey(signerKeyPem));
}

/** What the roots API shows of a CA certificate. */
export interface CertFacts {
  /** SHA-1 fingerprint of the DER, colon hex (Consul's CalculateCertFingerprint). */
  id: string;
  signingKeyId: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  isCA: boolean;
  uris: string[];
}

export function certFacts(pem: string): CertFacts {
  const cert = pki.certificateFromPem(pem);
  const der = asn1.toDer(pki.certificateToAsn1(cert)).getBytes();
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  const san = cert.getExtension('subjectAltName') as { altNames?: Array<{ type: number; value: string }> } | null;
  return {
    id: colonHex(new Uint8Array(crypto.createHash('sha1').update(Buffer.from(der, 'binary')).digest())),
    signingKeyId: colonHex(keyIdOf(cert.publicKey)),
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    serialNumber: cert.serialNumber,
    isCA: bc?.cA === true,
    uris: (san?.altNames ?? []).filter((a) => a.type === 6).map((a) => a.value),
  };
}

/** Whether a private key PEM is the key of a certificate PEM. */
export function keyMatchesCert(privateKeyPem: string, certPem: string): boolean {
  const pub = crypto.createPublicKey(crypto.createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  const certPub = new crypto.X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.compare(pub, certPub) === 0;
}

/** Consul's CreateCSR: no subject, the SPIFFE ID as the URI SAN, DNS SANs if any. */
export function createCsr(id: SpiffeId, privateKeyPem: string, dnsNames: readonly string[] = []): string {
  const key = crypto.createPrivateKey(privateKeyPem);
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.publicKeyFromPem(crypto.createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject([]);
  const altNames: Array<{ type: number; value: string }> = [{ type: 6, value: formatSpiffeId(id) }];
  for (const d of dnsNames) altNames.push({ type: 2, value: d });
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames }] }]);
  const s = nativeSigner(key);
  csr.sign(s.key as unknown as forge.pki.rsa.PrivateKey, s.md);
  return pki.certificationRequestToPem(csr);
}

export interface SigningCA {
  certPem: string;
  /** The signing key, parsed once (signing many leaves). */
  key: crypto.KeyObject;
  trustDomain: string;
  datacenter: string;
}

export interface ParsedCsr {
  csr: forge.pki.CertificateSigningRequest;
  id: SpiffeId;
  uri: string;
  dnsNames: string[];
}

/**
 * Reads a CSR and checks it as Consul's ConnectCA.Sign does: it parses, its signature holds, it has
 * exactly one URI SAN, a SPIFFE ID this CA may sign (same trust domain, same datacenter, a service
 * or an agent). Throws CertificateError with Consul's texts.
 */
export function checkCsr(csrPem: string, ca: Pick<SigningCA, 'trustDomain' | 'datacenter'>): ParsedCsr {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new CertificateError(`error parsing CSR: ${(err as Error).message}`);
  }
  let valid = false;
  try {
    valid = csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CertificateError('error parsing CSR: the CSR signature does not verify');
  const req = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: Array<{ name: string; altNames?: Array<{ type: number; value: string }> }> } | null;
  const san = req?.extensions?.find((e) => e.name === 'subjectAltName');
  const uris = (san?.altNames ?? []).filter((a) => a.type === 6).map((a) => a.value);
  const dnsNames = (san?.altNames ?? []).filter((a) => a.type === 2).map((a) => a.value);
  if (uris.length !== 1) throw new CertificateError(`CSR SAN contains an invalid number of URIs: ${uris.length}`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (err) {
    if (err instanceof SpiffeParseError) throw new CertificateError(`SAN URI is not a SPIFFE ID: ${err.message}`);
    throw err;
  }
  if (id.kind !== 'service' && id.kind !== 'agent') throw new CertificateError('SPIFFE ID in CSR must be a service or agent ID');
  if (!canSign(ca.trustDomain, id)) {
    throw new CertificateError(`SPIFFE ID in CSR from a different trust domain: ${id.trustDomain}, trust domain for this cluster: ${ca.trustDomain.toLowerCase()}`);
  }
  if (id.datacenter !== ca.datacenter) {
    throw new CertificateError(`SPIFFE ID in CSR from a different datacenter: ${id.datacenter}, registered datacenter: ${ca.datacenter}`);
  }
  return { csr, id, uri: uris[0]!, dnsNames };
}

export interface IssuedLeaf {
  certPem: string;
  /** Colon hex, as Consul shows a leaf's SerialNumber. */
  serialNumber: string;
  validAfter: Date;
  validBefore: Date;
}

/**
 * Consul's provider Sign: CN Consul's ServiceCN (or AgentCN), the CSR's URIs and DNS names, key usage
 * digital signature + key encipherment + data encipherment + key agreement, extended key usage
 * client and server auth, not a CA, valid from a minute ago for `ttlMs`.
 */
export function signLeaf(parsed: ParsedCsr, ca: SigningCA, caCert: forge.pki.Certificate, ttlMs: number, now = Date.now()): IssuedLeaf {
  const cert = pki.createCertificate();
  cert.publicKey = parsed.csr.publicKey!;
  const serial = serialHex(randomSerial());
  cert.serialNumber = serial;
  const validAfter = new Date(now - BACKDATE_MS);
  const validBefore = new Date(now - BACKDATE_MS + ttlMs);
  cert.validity.notBefore = validAfter;
  cert.validity.notAfter = validBefore;
  const id = parsed.id;
  const cn = id.kind === 'service' ? serviceCN(id.service, id.namespace, ca.trustDomain) : id.kind === 'agent' ? agentCN(id.node, ca.trustDomain) : '';
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames: Array<{ type: number; value: string }> = [{ type: 6, value: parsed.uri }];
  for (const d of parsed.dnsNames) altNames.push({ type: 2, value: d });
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, dataEncipherment: true, keyAgreement: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: Buffer.from(keyIdOf(cert.publicKey)).toString('hex') },
    { name: 'authorityKeyIdentifier', keyIdentifier: binary(keyIdOf(caCert.publicKey)) },
  ]);
  const certPem = signCert(cert, ca.key);
  return { certPem, serialNumber: colonHex(Buffer.from(serial, 'hex')), validAfter, validBefore };
}

export function parseCert(pem: string): forge.pki.Certificate {
  return pki.certificateFromPem(pem);
}

/**
 * A secondary datacenter's CSR for its intermediate CA (Consul's secondary CA initialization): the
 * trust domain's signing SPIFFE ID (spiffe://<trust domain>) as the only URI SAN.
 */
export function createCaCsr(trustDomain: string, privateKeyPem: string): string {
  return createCsr({ kind: 'signing', trustDomain }, privateKeyPem);
}

/**
 * The primary's signature on a secondary's CSR: an intermediate CA certificate for the CSR's key,
 * issued by the active root (path length 0: it signs leaves only), CN `sec-<uid>...`, valid `ttlMs`
 * but never beyond the root. The CSR must verify and name exactly this trust domain. Throws
 * CertificateError.
 */
export function signIntermediateCsr(csrPem: string, root: { certPem: string; key: crypto.KeyObject; trustDomain: string }, ttlMs: number, now = Date.now()): string {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new CertificateError(`error parsing CSR: ${(err as Error).message}`);
  }
  let valid = false;
  try {
    valid = csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CertificateError('error parsing CSR: the CSR signature does not verify');
  const req = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: Array<{ name: string; altNames?: Array<{ type: number; value: string }> }> } | null;
  const uris = (req?.extensions?.find((e) => e.name === 'subjectAltName')?.altNames ?? []).filter((a) => a.type === 6).map((a) => a.value);
  const want = formatSpiffeId({ kind: 'signing', trustDomain: root.trustDomain });
  if (uris.length !== 1 || uris[0]!.toLowerCase() !== want.toLowerCase()) {
    throw new CertificateError(`intermediate CSR must name exactly ${want}, it names ${uris.length === 0 ? 'no URI' : uris.join(', ')}`);
  }
  const signer = pki.certificateFromPem(root.certPem);
  const cert = pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = serialHex(randomSerial());
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(Math.min(now + ttlMs, signer.validity.notAfter.getTime()));
  cert.setSubject([{ name: 'commonName', value: caCN('consul', compactUid(), root.trustDomain, false) }]);
  cert.setIssuer(signer.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: want }] },
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: Buffer.from(keyIdOf(cert.publicKey)).toString('hex') },
    { name: 'authorityKeyIdentifier', keyIdentifier: binary(keyIdOf(signer.publicKey)) },
  ]);
  return signCert(cert, root.key);
}
