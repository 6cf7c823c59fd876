// The agent's leaf cache (ca/leaves.ts) against a fake server API backed by a real CA: the key stays
// here (only a CSR goes out), one CSR per service while cached, renewal at the policy's point of the
// lifetime (waking a blocking read), retries while the server rate-limits, and a change of active
// root renewing at once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { LeafCerts, type CAServerApi } from '../../src/ca/leaves.ts';
import { checkCsr, createRoot, generateKeyPair, parseCert, signLeaf, type SigningCA } from '../../src/ca/certs.ts';
import type { CARootsResponse, IssuedCert } from '../../src/ca/types.ts';
import type { CARoot } from '../../src/state/types.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';

function makeRoot(serial: number): { signing: SigningCA; row: CARoot } {
  const k = generateKeyPair();
  const certPem = createRoot({ privateKeyPem: k.privateKeyPem, trustDomain: TD, serialNumber: serial, ttlMs: 87_600 * 3_600_000 });
  const id = new crypto.X509Certificate(certPem).fingerprint.toLowerCase();
  return {
    signing: { certPem, key: crypto.createPrivateKey(k.privateKeyPem), trustDomain: TD, datacenter: 'dc1' },
    row: {
      ID: id, Name: 'Consul CA Primary Cert', SerialNumber: serial, SigningKeyID: '', ExternalTrustDomain: TD, NotBefore: '', NotAfter: '',
      RootCert: certPem, IntermediateCerts: null, Active: true, RotatedOutAt: '0001-01-01T00:00:00Z', PrivateKeyType: 'rsa', PrivateKeyBits: 2048, CreateIndex: 1, ModifyIndex: 1,
    },
  };
}

/** A fake server: signs with the current root; leaves live `lifeMs`; the roots read blocks until a change. */
class FakeServer implements CAServerApi {
  root = makeRoot(1);
  index = 1;
  lifeMs = 3_600_000;
  csrs: string[] = [];
  limitNext = 0;
  private wake: (() => void)[] = [];

  rotate(): void {
    this.root = makeRoot(this.root.row.SerialNumber + 1);
    this.index++;
    for (const w of this.wake.splice(0)) w();
  }

  async roots(minIndex: number, signal: AbortSignal): Promise<{ index: number; value: CARootsResponse }> {
    if (minIndex >= this.index) {
      await new Promise<void>((resolve) => {
        this.wake.push(resolve);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    return { index: this.index, value: { ActiveRootID: this.root.row.ID, TrustDomain: TD, Roots: [this.root.row] } };
  }

  async sign(csrPem: string): Promise<IssuedCert> {
    if (this.limitNext > 0) {
      this.limitNext--;
      throw Object.assign(new Error('Rate limit reached, try again later'), { code: 'ERR_RATE_LIMITED' });
    }
    this.csrs.push(csrPem);
    const leaf = signLeaf(checkCsr(csrPem, this.root.signing), this.root.signing, parseCert(this.root.signing.certPem), this.lifeMs);
    return {
      SerialNumber: leaf.serialNumber, CertPEM: leaf.certPem, PrivateKeyPEM: '', ValidAfter: leaf.validAfter.toISOString(), ValidBefore: leaf.validBefore.toISOString(),
      CreateIndex: this.index, ModifyIndex: this.index,
    };
  }
}

describe('agent leaf cache', () => {
  test('the key is made here and only a CSR is sent; a cached leaf is served without another CSR', async () => {
    const srv = new FakeServer();
    const leaves = new LeafCerts({ api: srv, datacenter: 'dc1' });
    try {
      const a = await leaves.get('web', 0, 0, AbortSignal.timeout(30_000));
      assert.equal(srv.csrs.length, 1);
      assert.ok(!srv.csrs[0]!.includes('PRIVATE KEY'));
      assert.ok(new crypto.X509Certificate(a.CertPEM).checkPrivateKey(crypto.createPrivateKey(a.PrivateKeyPEM)));
      assert.equal(a.ServiceURI, `spiffe://${TD}/ns/default/dc/dc1/svc/web`);
      const b = await leaves.get('web', 0, 0, AbortSignal.timeout(30_000));
      assert.equal(b.SerialNumber, a.SerialNumber);
      assert.equal(srv.csrs.length, 1);
    } finally {
      leaves.close();
    }
  });

  test('renewal comes at the policy point (random 0 → 60% of the lifetime) and wakes a blocking read', async () => {
    const srv = new FakeServer();
    // The leaf is back-dated a minute, so its lifetime starts a minute ago: 60% of 102 s after
    // ValidAfter is ~1.2 s from now.
    srv.lifeMs = 102_000;
    const leaves = new LeafCerts({ api: srv, datacenter: 'dc1', random: () => 0 });
    try {
      const first = await leaves.get('web', 0, 0, AbortSignal.timeout(30_000));
      const due = Date.parse(first.ValidAfter) + 0.6 * (Date.parse(first.ValidBefore) - Date.parse(first.ValidAfter));
      assert.ok(due > Date.now(), 'the renewal point is still ahead when the blocking read starts');
      const next = await leaves.get('web', first.ModifyIndex, 30_000, AbortSignal.timeout(30_000));
      assert.notEqual(next.SerialNumber, first.SerialNumber);
      assert.ok(next.ModifyIndex > first.ModifyIndex);
      assert.ok(Date.now() >= due - 5, `renewed ${due - Date.now()} ms before the 60% point`);
    } finally {
      leaves.close();
    }
  });

  test('a rate-limited sign is retried with backoff until it succeeds', async () => {
    const srv = new FakeServer();
    srv.limitNext = 2;
    const leaves = new LeafCerts({ api: srv, datacenter: 'dc1', random: () => 0 });
    try {
      const leaf = await leaves.get('web', 0, 0, AbortSignal.timeout(30_000));
      assert.equal(srv.limitNext, 0);
      assert.equal(srv.csrs.length, 1);
      assert.ok(leaf.CertPEM.includes('BEGIN CERTIFICATE'));
    } finally {
      leaves.close();
    }
  });

  test('a new active root renews every cached leaf at once, signed by the new root', async () => {
    const srv = new FakeServer();
    const leaves = new LeafCerts({ api: srv, datacenter: 'dc1' });
    try {
      const web = await leaves.get('web', 0, 0, AbortSignal.timeout(30_000));
      const api = await leaves.get('api', 0, 0, AbortSignal.timeout(30_000));
      srv.rotate();
      const [web2, api2] = await Promise.all([
        leaves.get('web', web.ModifyIndex, 30_000, AbortSignal.timeout(30_000)),
        leaves.get('api', api.ModifyIndex, 30_000, AbortSignal.timeout(30_000)),
      ]);
      for (const l of [web2, api2]) assert.ok(new crypto.X509Certificate(l.CertPEM).checkIssued(new crypto.X509Certificate(srv.root.row.RootCert)));
      assert.equal(leaves.activeRootId(), srv.root.row.ID);
    } finally {
      leaves.close();
    }
  });
});
