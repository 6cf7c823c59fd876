// The mesh gateway's ClientHello peeker: real ClientHellos from Node's TLS client, hand-built ones,
// any split across TCP segments and TLS records (property tests), truncation, garbage, mutations,
// oversized hellos, and the SNI names it routes.

import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { ClientHelloPeeker, DEFAULT_MAX_HELLO_BYTES, MAX_RECORDS, peekClientHello, type PeekResult } from '../../src/meshGateway/clientHello.ts';
import { parseMeshSni, targetId } from '../../src/meshGateway/sniNames.ts';

/** The first bytes Node's TLS client sends (its ClientHello), captured by a plain TCP server. */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) { resolve(buf); s.destroy(); }
      });
    });
  });
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ...opts });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

/** A ClientHello built by hand: `names` as server_name entries, `padding` bytes of extension 21. */
function buildHello(names: string[] | undefined, padding = 0, extra: Buffer[] = []): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
  const exts: Buffer[] = [];
  if (names) {
    const entries = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n, 'latin1')])));
    const body = Buffer.concat([u16(entries.length), entries]);
    exts.push(Buffer.concat([u16(0), u16(body.length), body]));
  }
  if (padding > 0) exts.push(Buffer.concat([u16(21), u16(padding), Buffer.alloc(padding)]));
  exts.push(...extra);
  const extBytes = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([3, 3]), Buffer.alloc(32, 7), // legacy_version, random
    Buffer.from([0]), // session_id
    u16(4), Buffer.from([0x13, 0x01, 0x13, 0x02]), // cipher_suites
    Buffer.from([1, 0]), // compression
    u16(extBytes.length), extBytes,
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 255, body.length & 255]), body]);
  return records(hs, [hs.length]);
}

/** The handshake bytes `hs` cut into TLS records of the given sizes (the rest in a last one). */
function records(hs: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= hs.length) break;
    const part = hs.subarray(at, Math.min(hs.length, at + Math.max(1, Math.min(size, 16_384))));
    out.push(Buffer.from([22, 3, 1, part.length >> 8, part.length & 255]), part);
    at += part.length;
  }
  while (at < hs.length) {
    const part = hs.subarray(at, Math.min(hs.length, at + 16_384));
    out.push(Buffer.from([22, 3, 1, part.length >> 8, part.length & 255]), part);
    at += part.length;
  }
  return Buffer.concat(out);
}

/** The handshake message inside single-record `hello`. */
const handshakeOf = (hello: Buffer) => hello.subarray(5, 5 + hello.readUInt16BE(3));

/** Feeds `bytes` to a fresh peeker cut at `cuts`; every result before the last must be `more`. */
function feed(bytes: Buffer, cuts: number[]): { results: PeekResult[] } {
  const p = new ClientHelloPeeker();
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const results: PeekResult[] = [];
  let prev = 0;
  for (const c of [...points, bytes.length]) {
    results.push(p.push(bytes.subarray(prev, c)));
    prev = c;
    if (results.at(-1)!.state !== 'more') break;
  }
  return { results };
}

const TD = '11111111-2222-3333-4444-555555555555.consul';
const SNI = `payments.default.dc1.internal.${TD}`;

describe('ClientHello peeker', () => {
  let tls13: Buffer;
  let tls12: Buffer;
  let noSni: Buffer;
  before(async () => {
    tls13 = await captureHello({ servername: SNI });
    tls12 = await captureHello({ servername: `v2.${SNI}`, maxVersion: 'TLSv1.2' });
    // Node sends no server_name for an IP address.
    noSni = await captureHello({});
  });

  test("Node's TLS 1.3 and 1.2 ClientHellos: the server name", () => {
    assert.deepEqual(peekClientHello(tls13), { state: 'sni', sni: SNI });
    assert.deepEqual(peekClientHello(tls12), { state: 'sni', sni: `v2.${SNI}` });
  });

  test('a ClientHello without server_name is refused as no_sni', () => {
    assert.equal((peekClientHello(noSni) as { cause?: string }).cause, 'no_sni');
    assert.equal((peekClientHello(buildHello(undefined)) as { cause?: string }).cause, 'no_sni');
  });

  test('every proper prefix of a ClientHello asks for more, never refuses', () => {
    for (const hello of [tls13, tls12]) {
      for (let n = 0; n < hello.length; n++) assert.deepEqual(peekClientHello(hello.subarray(0, n)), { state: 'more' }, `prefix of ${n} bytes`);
    }
  });

  test('any split across TCP segments gives the same name (property)', () => {
    fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 40 }), fc.boolean(), (cuts, use12) => {
      const hello = use12 ? tls12 : tls13;
      const { results } = feed(hello, cuts);
      assert.ok(results.slice(0, -1).every((r) => r.state === 'more'));
      assert.equal((results.at(-1) as { sni?: string }).sni, use12 ? `v2.${SNI}` : SNI);
    }), { numRuns: 300 });
  });

  test('any fragmentation across TLS records and TCP segments gives the same name (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: MAX_RECORDS - 1 }), fc.array(fc.nat(), { maxLength: 20 }), (sizes, cuts) => {
      const hs = handshakeOf(tls13);
      // At most MAX_RECORDS records: the last size takes the rest.
      const bytes = records(hs, sizes.slice(0, MAX_RECORDS - 1).concat([hs.length]));
      const { results } = feed(bytes, cuts);
      assert.equal((results.at(-1) as { sni?: string }).sni, SNI);
    }), { numRuns: 300 });
  });

  test('bytes after the ClientHello (early data, a second record) do not matter', () => {
    const more = Buffer.concat([tls13, Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5])]);
    assert.deepEqual(peekClientHello(more), { state: 'sni', sni: SNI });
  });

  test('hand-built names: lower-cased; any DNS name comes back as sent (property)', () => {
    assert.deepEqual(peekClientHello(buildHello(['Web.Default.DC1.internal.X.consul'])), { state: 'sni', sni: 'web.default.dc1.internal.x.consul' });
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    fc.assert(fc.property(fc.array(label, { minLength: 1, maxLength: 8 }), (labels) => {
      const name = labels.join('.');
      assert.deepEqual(peekClientHello(buildHello([name])), { state: 'sni', sni: name });
    }), { numRuns: 200 });
  });

  test('not TLS: refused from the first byte (HTTP, SSH banner, a TLS alert record)', () => {
    for (const s of ['G', 'GET / HTTP/1.1\r\n\r\n', 'SSH-2.0-OpenSSH_9.2\r\n', 'PRI * HTTP/2.0']) {
      assert.equal((peekClientHello(Buffer.from(s)) as { cause?: string }).cause, 'not_tls', s);
    }
    assert.equal((peekClientHello(Buffer.from([21, 3, 3, 0, 2, 2, 40])) as { cause?: string }).cause, 'not_tls');
    assert.equal((peekClientHello(Buffer.from([22, 2, 0])) as { cause?: string }).cause, 'not_tls', 'SSL 2-style version');
  });

  test('malformed: wrong handshake type, a record of another type mid-hello, empty record, bad lengths, two names', () => {
    const cause = (b: Buffer) => (peekClientHello(b) as { cause?: string }).cause;
    const serverHello = Buffer.from(tls13); serverHello[5] = 2;
    assert.equal(cause(serverHello), 'malformed');
    const hs = handshakeOf(tls13);
    const split = records(hs, [10]);
    const withAlert = Buffer.concat([split.subarray(0, 15), Buffer.from([21, 3, 3, 0, 2, 2, 40]), split.subarray(15)]);
    assert.equal(cause(withAlert), 'malformed');
    assert.equal(cause(Buffer.from([22, 3, 1, 0, 0])), 'malformed');
    assert.equal(cause(Buffer.from([22, 3, 1, 0x40, 0x01])), 'malformed', 'record over 2^14');
    assert.equal(cause(buildHello(['a.example', 'b.example'])), 'malformed');
    assert.equal(cause(buildHello(['bad name'])), 'malformed');
    assert.equal(cause(buildHello(['x'], 0, [Buffer.from([0, 0, 0, 0])])), 'malformed', 'two server_name extensions');
    const badExtLen = buildHello(['a.example']); badExtLen[5 + 4 + 2 + 32 + 1 + 2 + 4 + 2 + 1] ^= 0x01;
    assert.equal(cause(badExtLen), 'malformed');
  });

  test('too many records for one ClientHello: refused', () => {
    const bytes = records(handshakeOf(tls13), new Array(MAX_RECORDS + 5).fill(1));
    const { results } = feed(bytes, []);
    assert.equal((results.at(-1) as { cause?: string }).cause, 'malformed');
  });

  test('oversized: refused as soon as the handshake header says so, without waiting for the bytes', () => {
    const big = buildHello(['a.example'], DEFAULT_MAX_HELLO_BYTES);
    assert.equal((peekClientHello(big.subarray(0, 9)) as { cause?: string }).cause, 'too_large');
    // Just under the cap is fine.
    const fits = buildHello(['a.example'], DEFAULT_MAX_HELLO_BYTES - 200);
    assert.deepEqual(peekClientHello(fits), { state: 'sni', sni: 'a.example' });
    // A smaller cap.
    assert.equal((peekClientHello(tls13, 64) as { cause?: string }).cause, 'too_large');
  });

  test('random bytes and random mutations of real hellos never throw (fuzz)', () => {
    const ok = new Set(['more', 'sni', 'refused']);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => { assert.ok(ok.has(peekClientHello(b).state)); }), { numRuns: 2000 });
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (flips, cuts) => {
      const b = Buffer.from(tls13);
      for (const [at, v] of flips) b[at % b.length] = v;
      const { results } = feed(b, cuts);
      assert.ok(ok.has(results.at(-1)!.state));
      const r = results.at(-1)!;
      if (r.state === 'sni') assert.match(r.sni, /^[a-z0-9_.-]+$/);
    }), { numRuns: 2000 });
  });

  test('a byte-at-a-time sender: bounded by the raw-byte cap', () => {
    const p = new ClientHelloPeeker(1024);
    // A header that promises a 1000-byte hello, then one-byte records forever.
    let r = p.push(Buffer.from([22, 3, 1, 0, 4, 1, 0, 3, 0xe8]));
    let sent = 0;
    while (r.state === 'more' && sent < 100_000) { r = p.push(Buffer.from([22, 3, 1, 0, 1, 0])); sent++; }
    assert.equal(r.state, 'refused');
    assert.ok(p.bytes <= 2 * 1024 + 6, `buffered ${p.bytes}`);
  });
});

describe('mesh SNI names', () => {
  test('targets, subsets and datacenters', () => {
    assert.deepEqual(parseMeshSni(SNI, TD), { kind: 'target', service: 'payments', namespace: 'default', datacenter: 'dc1' });
    assert.deepEqual(parseMeshSni(`v2.${SNI}`, TD), { kind: 'target', subset: 'v2', service: 'payments', namespace: 'default', datacenter: 'dc1' });
    assert.deepEqual(parseMeshSni(`cloud.internal.${TD}`, TD), { kind: 'datacenter', datacenter: 'cloud' });
    assert.equal(targetId({ kind: 'target', subset: 'v2', service: 'payments', namespace: 'default', datacenter: 'dc1' }), 'v2.payments.default.dc1');
  });
  test('the trust domain is compared without case', () => {
    assert.equal((parseMeshSni(SNI, TD.toUpperCase()) as { kind?: string }).kind, 'target');
  });
  test('refusals: another trust domain, not a mesh name, wrong label counts', () => {
    assert.equal((parseMeshSni('payments.default.dc1.internal.other.consul', TD) as { refused?: string }).refused, 'wrong_trust_domain');
    assert.equal((parseMeshSni('www.example.com', TD) as { refused?: string }).refused, 'unknown_name');
    assert.equal((parseMeshSni(`a.b.internal.${TD}`, TD) as { refused?: string }).refused, 'unknown_name');
    assert.equal((parseMeshSni(`a.b.c.d.e.internal.${TD}`, TD) as { refused?: string }).refused, 'unknown_name');
    assert.equal((parseMeshSni(`.internal.${TD}`, TD) as { refused?: string }).refused, 'unknown_name');
  });
});
