// Fitting responses to 512 bytes / EDNS sizes / 64 KiB (RFC 1035 §4.2.1, RFC 6891, RFC 7766).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodingLength, TRUNCATED_RESPONSE, type Answer, type Packet } from 'dns-packet';
import { fitResponse, udpPayloadLimit } from '../../src/dns/truncate.ts';

function srvResponse(n: number, opts: { withSoa?: boolean; withOpt?: boolean } = {}): Packet {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  for (let i = 0; i < n; i++) {
    const target = `node-with-a-fairly-long-name-${i}.node.dc1.consul`;
    answers.push({ name: 'web.service.consul', type: 'SRV', ttl: 0, data: { priority: 1, weight: 1, port: 8000 + i, target } });
    additionals.push({ name: target, type: 'A', ttl: 0, data: `10.0.0.${i}` });
  }
  if (opts.withOpt) additionals.push({ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0, options: [] });
  const authorities: Answer[] = opts.withSoa
    ? [{ name: 'consul', type: 'SOA', ttl: 0, data: { mname: 'ns.consul', rname: 'hostmaster.consul', serial: 1 } }]
    : [];
  return { id: 1, type: 'response', flags: 0x400, questions: [{ name: 'web.service.consul', type: 'SRV' }], answers, authorities, additionals };
}

const targets = (p: Packet) => (p.answers ?? []).map((a) => (a.data as { target: string }).target);

describe('response fitting', () => {
  test('a response that fits is untouched', () => {
    const p = srvResponse(2);
    const fit = fitResponse(p, { maxBytes: 512, setTruncated: true });
    assert.equal(fit.truncated, false);
    assert.equal(fit.packet.flags, 0x400);
    assert.equal(fit.packet.answers?.length, 2);
  });

  test('over 512 bytes: answers dropped from the tail, extras follow, TC set, size within limit', () => {
    const p = srvResponse(20, { withSoa: true });
    assert.ok(encodingLength(p) > 512);
    const fit = fitResponse(p, { maxBytes: 512, setTruncated: true });
    assert.ok(fit.truncated);
    assert.ok((fit.packet.flags ?? 0) & TRUNCATED_RESPONSE);
    assert.ok(encodingLength(fit.packet) <= 512);
    const kept = targets(fit.packet);
    assert.ok(kept.length >= 1 && kept.length < 20);
    assert.deepEqual(kept, targets(p).slice(0, kept.length));
    assert.deepEqual((fit.packet.additionals ?? []).map((a) => a.name), kept);
    assert.deepEqual(fit.packet.authorities, []);
    // The largest prefix that fits: one more answer (and its extra) would not.
    const oneMore = { ...fit.packet, answers: p.answers!.slice(0, kept.length + 1), additionals: p.additionals!.slice(0, kept.length + 1) };
    assert.ok(encodingLength(oneMore) > 512);
  });

  test('without setTruncated the answers are still cut but TC stays clear (Consul\'s default)', () => {
    const fit = fitResponse(srvResponse(20), { maxBytes: 512, setTruncated: false });
    assert.ok(fit.truncated);
    assert.equal((fit.packet.flags ?? 0) & TRUNCATED_RESPONSE, 0);
  });

  test('the answer limit applies to 512-byte (non-EDNS) UDP only', () => {
    const small = srvResponse(5);
    const limited = fitResponse(small, { maxBytes: 512, answerLimit: 3, setTruncated: true });
    assert.equal(limited.packet.answers?.length, 3);
    assert.equal(limited.packet.additionals?.length, 3);
    assert.ok(limited.truncated);
    const edns = fitResponse(small, { maxBytes: 4096, answerLimit: 3, setTruncated: true });
    assert.equal(edns.packet.answers?.length, 5);
    assert.equal(edns.truncated, false);
  });

  test('the OPT record survives trimming', () => {
    const fit = fitResponse(srvResponse(20, { withOpt: true }), { maxBytes: 512, setTruncated: true });
    assert.equal(fit.packet.additionals?.at(-1)?.type, 'OPT');
  });

  test('a single answer too big for the limit goes, rather than overflow', () => {
    const huge: Packet = {
      id: 1, type: 'response', flags: 0, questions: [{ name: 'x.consul', type: 'TXT' }],
      answers: [{ name: 'x.consul', type: 'TXT', ttl: 0, data: ['a'.repeat(250), 'b'.repeat(250), 'c'.repeat(250)] }],
    };
    const fit = fitResponse(huge, { maxBytes: 512, setTruncated: true });
    assert.equal(fit.packet.answers?.length, 0);
    assert.ok((fit.packet.flags ?? 0) & TRUNCATED_RESPONSE);
  });

  test('UDP payload limits', () => {
    assert.equal(udpPayloadLimit(undefined), 512);
    assert.equal(udpPayloadLimit(100), 512);
    assert.equal(udpPayloadLimit(1232), 1232);
    assert.equal(udpPayloadLimit(65535), 65535 - 68);
  });
});
