// Fuzzing the message handler (bytes in, bytes out) without sockets. Set FC_SEED to replay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode } from 'dns-packet';
import { createMessageHandler } from '../../src/dns/handler.ts';
import { DEFAULT_SOA, domainLabels } from '../../src/dns/index.ts';
import { ednsOpt, FakeLookup, question, seededRandom } from './helpers.ts';

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() ^ (Math.random() * 2 ** 31);
const params = { seed, numRuns: 1500 };

const lookup = new FakeLookup().addNode('node-a', '10.0.0.1').addNode('node-6', '2001:db8::1').addNode('ext', 'host.example.com');
for (let i = 0; i < 12; i++) lookup.addNode(`n${i}`, `10.1.0.${i}`).addService('web', `n${i}`, 80 + i, { tags: ['t'] });
lookup.addService('web', 'node-6', 443).addService('web', 'ext', 5000).addService('svc', 'node-a', 1, { serviceAddress: '10.2.2.2' });

const errors: string[] = [];
const handle = createMessageHandler({
  ctx: { config: { domain: domainLabels('consul.'), datacenter: 'dc1', ttlSeconds: 0, soa: DEFAULT_SOA }, lookup, random: seededRandom(seed), now: Date.now },
  udpAnswerLimit: 3,
  setTruncated: true,
  log: { debug() {}, warn() {}, error: (o) => void errors.push(JSON.stringify(o)) },
  nodeName: 'fuzz',
});

async function checkReply(input: Buffer, transport: 'udp' | 'tcp'): Promise<void> {
  const reply = await handle(input, transport, 'fuzz');
  if (reply === undefined) return;
  assert.ok(reply.length >= 12);
  assert.equal(reply.readUInt16BE(0), input.readUInt16BE(0), 'reply carries the query id');
  assert.ok(reply.readUInt16BE(2) & 0x8000, 'QR set');
  decode(reply); // every reply must itself be a valid message
  if (transport === 'udp' && reply.length > 512) {
    // Only a client that advertised EDNS may get more than 512 bytes.
    assert.ok(decode(input).additionals.some((a) => a.type === 'OPT'), `${reply.length}-byte UDP reply without EDNS`);
  }
}

const labels = fc.constantFrom('web', 'WEB', 't', 'nope', 'service', 'node', 'addr', 'query', 'dc1', 'dc2', 'dc', '_web', '_tcp', '_t', 'node-a', 'n3', 'ext', 'consul', '0a020202', 'x'.repeat(63), '');
const types = fc.constantFrom('A', 'AAAA', 'SRV', 'ANY', 'SOA', 'NS', 'TXT', 'CNAME', 'AXFR', 'PTR', 'MX');
// Mostly names in Consul's shapes (so most queries reach the catalog and build real answers),
// some label soup for the odd corners.
const dcPart = fc.constantFrom('', '.dc1', '.DC1', '.dc2', '.dc1.dc');
const names = fc.oneof(
  fc.tuple(fc.constantFrom('', 't.', 'nope.', 'T.'), fc.constantFrom('web', 'Web', 'svc', 'none'), dcPart).map(([t, s, d]) => `${t}${s}.service${d}.consul`),
  fc.tuple(fc.constantFrom('_web', '_svc', '_none'), fc.constantFrom('_tcp', '_t', '_x'), fc.constantFrom('.service', ''), dcPart).map((p) => `${p.join('.').replace('..', '.')}.consul`),
  fc.tuple(fc.constantFrom('node-a', 'NODE-6', 'ext', 'n3', 'ghost'), dcPart).map(([n, d]) => `${n}.node${d}.consul`),
  fc.constantFrom('0a020202.addr.dc1.consul', '20010db8000000000000000000000001.addr.consul', 'consul', 'example.com'),
  fc.array(labels, { maxLength: 6 }).map((ls) => [...ls, 'consul'].join('.')),
);
const queries = fc
  .record({
    name: names,
    type: types,
    edns: fc.option(fc.integer({ min: 0, max: 65535 })),
    // Mostly a standard query with RD; sometimes any header bits (other opcodes, TC, Z...).
    flags: fc.oneof({ weight: 4, arbitrary: fc.constant(0x0100) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7fff }) }),
  })
  .map(({ name, type, edns, flags }) => ({ ...question(name, type, edns === null ? {} : { additionals: ednsOpt(edns) }), flags }));

test('well-formed queries of every shape get a valid reply that fits the transport', async () => {
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(queries, async (q) => {
      let wire: Buffer;
      try {
        wire = encode(q);
      } catch {
        return; // the generator made a name dns-packet itself cannot write (an empty label)
      }
      await checkReply(wire, 'udp');
      await checkReply(wire, 'tcp');
      const r = await handle(wire, 'tcp', 'fuzz');
      if (r && decode(r).answers.length > 0) answered++;
    }),
    params,
  );
  assert.deepEqual(errors, []);
  assert.ok(answered > params.numRuns / 20, `only ${answered} of ${params.numRuns} queries had answers: the generator is too weak`);
});

test('random bytes never throw; a reply, if any, is a valid message', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => checkReply(Buffer.from(bytes), 'udp')), params);
});

test('mutated valid queries never throw', async () => {
  const base = [
    encode(question('web.service.consul', 'SRV', { additionals: ednsOpt(1232) })),
    encode(question('t.web.service.dc1.consul', 'A')),
    encode(question('node-a.node.consul', 'AAAA')),
  ];
  const mutation = fc.record({
    which: fc.nat(base.length - 1),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
    cut: fc.option(fc.nat()),
    tail: fc.uint8Array({ maxLength: 20 }),
  });
  await fc.assert(
    fc.asyncProperty(mutation, async ({ which, flips, cut, tail }) => {
      const buf = Buffer.from(base[which]!);
      for (const [pos, val] of flips) buf[pos % buf.length] = val;
      const cutBuf = cut === null ? buf : buf.subarray(0, cut % (buf.length + 1));
      const input = Buffer.concat([cutBuf, Buffer.from(tail)]);
      await checkReply(input, 'udp');
      await checkReply(input, 'tcp');
    }),
    params,
  );
});

test('a label holding a "." byte is answered FORMERR, not echoed as an unencodable name (fuzz finding)', async () => {
  const buf = Buffer.from(encode(question('web.service.consul', 'SRV', { additionals: ednsOpt(1232) })));
  buf[15] = 0x2e; // "web" → "we."
  const reply = (await handle(buf, 'udp', 'fuzz'))!;
  assert.equal(decode(reply).rcode, 'FORMERR');
});
