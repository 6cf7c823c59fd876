// The answering rules without sockets: requests go through encode/decode exactly as on the wire,
// and so do responses (so every answer here is also proven encodable).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, type DecodedPacket, type Packet, type SoaData, type SrvData } from 'dns-packet';
import { DEFAULT_SOA, domainLabels, RCODE, resolve, type DnsLookup, type ResolveContext } from '../../src/dns/index.ts';
import { ednsOpt, FakeLookup, question, rcodeOf, seededRandom } from './helpers.ts';

function ctxFor(lookup: FakeLookup, over: Partial<ResolveContext['config']> = {}): ResolveContext {
  return {
    config: { domain: domainLabels('consul.'), datacenter: 'dc1', ttlSeconds: 0, soa: DEFAULT_SOA, ...over },
    lookup,
    random: seededRandom(7),
    now: () => 1_700_000_000_123,
  };
}

async function ask(ctx: ResolveContext, packet: Packet): Promise<DecodedPacket> {
  const req = decode(encode(packet));
  return decode(encode((await resolve(req, ctx)).response));
}

function catalog(): FakeLookup {
  return new FakeLookup()
    .addNode('node-a', '10.0.0.1')
    .addNode('node-b', '10.0.0.2')
    .addNode('node-v6', '2001:db8::6')
    .addNode('ext', 'db.example.com')
    .addService('web', 'node-a', 8080, { tags: ['primary', 'v1'] })
    .addService('web', 'node-b', 8081, { tags: ['v1'] })
    .addService('api', 'node-a', 9000, { serviceAddress: '10.9.9.9' })
    .addService('v6', 'node-v6', 7000)
    .addService('legacy', 'ext', 5432)
    .addService('cname-svc', 'node-a', 80, { serviceAddress: 'lb.example.com' })
    .addService('consul', 'node-a', 8300);
}

describe('DNS resolver: services', () => {
  test('SRV: port, priority 1, weight 1, node target, A record in the additional section', async () => {
    const r = await ask(ctxFor(catalog()), question('web.service.consul', 'SRV'));
    assert.equal(rcodeOf(r), RCODE.NOERROR);
    assert.ok(r.flag_aa);
    const srv = r.answers.map((a) => a.data as SrvData).sort((x, y) => x.port - y.port);
    assert.deepEqual(srv, [
      { priority: 1, weight: 1, port: 8080, target: 'node-a.node.dc1.consul' },
      { priority: 1, weight: 1, port: 8081, target: 'node-b.node.dc1.consul' },
    ]);
    assert.ok(r.answers.every((a) => a.name === 'web.service.consul' && a.ttl === 0 && a.type === 'SRV'));
    const extra = Object.fromEntries(r.additionals.map((a) => [a.name, [a.type, a.data]]));
    assert.deepEqual(extra, { 'node-a.node.dc1.consul': ['A', '10.0.0.1'], 'node-b.node.dc1.consul': ['A', '10.0.0.2'] });
  });

  test('SRV for a service with its own IP targets <hex>.addr.<dc>.<domain>, which resolves', async () => {
    const ctx = ctxFor(catalog());
    const r = await ask(ctx, question('api.service.consul', 'SRV'));
    assert.deepEqual(r.answers.map((a) => a.data), [{ priority: 1, weight: 1, port: 9000, target: '0a090909.addr.dc1.consul' }]);
    assert.deepEqual(r.additionals.map((a) => [a.name, a.type, a.data]), [['0a090909.addr.dc1.consul', 'A', '10.9.9.9']]);
    const addr = await ask(ctx, question('0a090909.addr.dc1.consul', 'A'));
    assert.deepEqual(addr.answers.map((a) => a.data), ['10.9.9.9']);
  });

  test('A: the service address when it has one, else the node address', async () => {
    const ctx = ctxFor(catalog());
    assert.deepEqual((await ask(ctx, question('api.service.consul', 'A'))).answers.map((a) => [a.name, a.type, a.data]), [['api.service.consul', 'A', '10.9.9.9']]);
    assert.deepEqual((await ask(ctx, question('web.service.consul', 'A'))).answers.map((a) => a.data).sort(), ['10.0.0.1', '10.0.0.2']);
  });

  test('AAAA for IPv6 addresses; A of an IPv6-only service is NODATA with the SOA', async () => {
    const ctx = ctxFor(catalog());
    const aaaa = await ask(ctx, question('v6.service.consul', 'AAAA'));
    assert.deepEqual(aaaa.answers.map((a) => [a.type, a.data]), [['AAAA', '2001:db8::6']]);
    const a = await ask(ctx, question('v6.service.consul', 'A'));
    assert.equal(rcodeOf(a), RCODE.NOERROR);
    assert.equal(a.answers.length, 0);
    assert.equal(a.authorities[0]?.type, 'SOA');
    const srv = await ask(ctx, question('v6.service.consul', 'SRV'));
    assert.deepEqual(srv.additionals.map((x) => [x.name, x.type]), [['node-v6.node.dc1.consul', 'AAAA']]);
  });

  test('tag filter, both forms, and RFC 2782', async () => {
    const ctx = ctxFor(catalog());
    for (const name of ['primary.web.service.consul', '_web._primary.service.consul']) {
      assert.deepEqual((await ask(ctx, question(name, 'SRV'))).answers.map((a) => (a.data as SrvData).port), [8080], name);
    }
    assert.equal((await ask(ctx, question('_web._tcp.service.consul', 'SRV'))).answers.length, 2);
    assert.equal((await ask(ctx, question('v1.web.service.consul', 'A'))).answers.length, 2);
    assert.equal(rcodeOf(await ask(ctx, question('nope.web.service.consul', 'A'))), RCODE.NXDOMAIN);
  });

  test('names are case-insensitive and answers keep the asker\'s case', async () => {
    const lookup = catalog();
    const r = await ask(ctxFor(lookup), question('WeB.SerVice.CONSUL', 'A'));
    assert.equal(r.answers.length, 2);
    assert.ok(r.answers.every((a) => a.name === 'WeB.SerVice.CONSUL'));
    assert.deepEqual(lookup.calls.at(-1), ['web', undefined]);
  });

  test('host-name addresses: CNAME for A questions, the host name as SRV target', async () => {
    const ctx = ctxFor(catalog());
    const a = await ask(ctx, question('legacy.service.consul', 'A'));
    assert.deepEqual(a.answers.map((x) => [x.type, x.data]), [['CNAME', 'db.example.com']]);
    const srv = await ask(ctx, question('cname-svc.service.consul', 'SRV'));
    assert.deepEqual(srv.answers.map((x) => (x.data as SrvData).target), ['lb.example.com']);
    assert.equal(srv.additionals.length, 0);
  });

  test('no passing instance is NXDOMAIN with Consul\'s SOA in the authority section', async () => {
    const r = await ask(ctxFor(catalog()), question('missing.service.consul', 'SRV'));
    assert.equal(rcodeOf(r), RCODE.NXDOMAIN);
    assert.equal(r.answers.length, 0);
    assert.equal(r.authorities.length, 1);
    const soa = r.authorities[0]!;
    assert.equal(soa.name, 'consul');
    assert.equal(soa.type, 'SOA');
    assert.deepEqual(soa.data as SoaData, {
      mname: 'ns.consul', rname: 'hostmaster.consul', serial: 1_700_000_000, refresh: 3600, retry: 600, expire: 86400, minimum: 0,
    });
  });

  test('the local datacenter by name answers; another datacenter is NXDOMAIN without a remote lookup', async () => {
    const lookup = catalog();
    lookup.dcs = ['dc1', 'dc2'];
    const ctx = ctxFor(lookup);
    assert.equal((await ask(ctx, question('web.service.dc1.consul', 'A'))).answers.length, 2);
    assert.equal((await ask(ctx, question('web.service.DC1.consul', 'A'))).answers.length, 2);
    for (const name of ['web.service.dc2.consul', 'web.service.nowhere.consul', 'node-a.node.dc2.consul']) {
      const r = await ask(ctx, question(name, 'A'));
      assert.equal(rcodeOf(r), RCODE.NXDOMAIN, name);
      assert.equal(r.authorities[0]?.type, 'SOA', name);
    }
    const res = await resolve(decode(encode(question('web.service.dc2.consul', 'A'))), ctx);
    assert.match(res.note ?? '', /remote: not forwarded/);
  });

  test('another known datacenter is answered by the lookup\'s remote(dc); an unknown one is NXDOMAIN', async () => {
    const dc2 = new FakeLookup().addNode('far', '10.2.0.1').addService('web', 'far', 9090);
    const lookup = Object.assign(catalog(), { remote: (dc: string) => { assert.equal(dc, 'dc2'); return dc2; } });
    lookup.dcs = ['dc1', 'dc2'];
    const ctx = ctxFor(lookup);
    const srv = await ask(ctx, question('web.service.dc2.consul', 'SRV'));
    assert.equal(rcodeOf(srv), RCODE.NOERROR);
    assert.deepEqual(srv.answers.map((a) => (a.data as SrvData).port), [9090]);
    const a = await ask(ctx, question('far.node.dc2.consul', 'A'));
    assert.deepEqual(a.answers.map((x) => x.data), ['10.2.0.1']);
    assert.equal(rcodeOf(await ask(ctx, question('web.service.dc3.consul', 'SRV'))), RCODE.NXDOMAIN);
  });

  test('consul.service answers from the lookup like any service', async () => {
    const r = await ask(ctxFor(catalog()), question('consul.service.consul', 'SRV'));
    assert.deepEqual(r.answers.map((a) => (a.data as SrvData).port), [8300]);
  });

  test('duplicate instances (same node, address, port) give one SRV', async () => {
    const lookup = catalog().addService('web', 'node-a', 8080);
    assert.equal((await ask(ctxFor(lookup), question('web.service.consul', 'SRV'))).answers.length, 2);
  });

  test('a custom domain and TTL', async () => {
    const ctx = ctxFor(catalog(), { domain: domainLabels('trellis.internal.'), ttlSeconds: 30 });
    const r = await ask(ctx, question('web.service.trellis.internal', 'SRV'));
    assert.ok(r.answers.every((a) => a.ttl === 30));
    assert.ok(r.answers.every((a) => (a.data as SrvData).target.endsWith('.node.dc1.trellis.internal')));
    assert.equal(rcodeOf(await ask(ctx, question('web.service.consul', 'A'))), RCODE.REFUSED);
  });

  test('instances are shuffled by the injected random source', async () => {
    const lookup = new FakeLookup();
    for (let i = 0; i < 6; i++) lookup.addNode(`n${i}`, `10.0.1.${i}`).addService('many', `n${i}`, 1000 + i);
    const orders = new Set<string>();
    for (let seed = 1; seed <= 30; seed++) {
      const ctx = { ...ctxFor(lookup), random: seededRandom(seed) };
      orders.add((await ask(ctx, question('many.service.consul', 'A'))).answers.map((a) => a.data).join(','));
    }
    assert.ok(orders.size > 10, `only ${orders.size} distinct orders`);
    // Same seed, same order: a failure can be replayed.
    const once = async () => (await ask({ ...ctxFor(lookup), random: seededRandom(99) }, question('many.service.consul', 'A'))).answers.map((a) => a.data);
    assert.deepEqual(await once(), await once());
  });
});

describe('DNS resolver: nodes, zone records, errors', () => {
  test('node A, dotted datacenter form, and unknown node', async () => {
    const ctx = ctxFor(catalog());
    assert.deepEqual((await ask(ctx, question('node-a.node.consul', 'A'))).answers.map((a) => [a.name, a.type, a.data]), [['node-a.node.consul', 'A', '10.0.0.1']]);
    assert.deepEqual((await ask(ctx, question('node-b.node.dc1.consul', 'ANY'))).answers.map((a) => a.data), ['10.0.0.2']);
    assert.deepEqual((await ask(ctx, question('NODE-A.node.consul', 'A'))).answers.map((a) => a.data), ['10.0.0.1']);
    const missing = await ask(ctx, question('ghost.node.consul', 'A'));
    assert.equal(rcodeOf(missing), RCODE.NXDOMAIN);
    assert.equal(missing.authorities[0]?.type, 'SOA');
    assert.deepEqual((await ask(ctx, question('ext.node.consul', 'A'))).answers.map((a) => [a.type, a.data]), [['CNAME', 'db.example.com']]);
  });

  test('SOA and NS for the domain: servers from the consul service, with glue', async () => {
    const ctx = ctxFor(catalog());
    const soa = await ask(ctx, question('consul', 'SOA'));
    assert.deepEqual(soa.answers.map((a) => a.type), ['SOA']);
    assert.deepEqual(soa.authorities.map((a) => [a.type, a.data]), [['NS', 'node-a.node.dc1.consul']]);
    const ns = await ask(ctx, question('consul', 'NS'));
    assert.deepEqual(ns.answers.map((a) => [a.name, a.data]), [['consul', 'node-a.node.dc1.consul']]);
    assert.deepEqual(ns.additionals.map((a) => [a.name, a.data]), [['node-a.node.dc1.consul', '10.0.0.1']]);
  });

  test('the apex asked for A is NODATA, not NXDOMAIN (which would deny the whole zone)', async () => {
    const r = await ask(ctxFor(catalog()), question('consul', 'A'));
    assert.equal(rcodeOf(r), RCODE.NOERROR);
    assert.equal(r.authorities[0]?.type, 'SOA');
  });

  test('names outside the domain are REFUSED without authority', async () => {
    const r = await ask(ctxFor(catalog()), question('example.com', 'A'));
    assert.equal(rcodeOf(r), RCODE.REFUSED);
    assert.equal(r.flag_aa, false);
    assert.equal(r.authorities.length, 0);
  });

  test('malformed names inside the domain are NXDOMAIN', async () => {
    for (const name of ['web.consul', 'a.b.c.service.x.y.consul', 'q.query.consul', 'zz.addr.consul']) {
      assert.equal(rcodeOf(await ask(ctxFor(catalog()), question(name, 'A'))), RCODE.NXDOMAIN, name);
    }
  });

  test('header rules: opcode, question count, zone transfer, EDNS', async () => {
    const ctx = ctxFor(catalog());
    assert.equal(rcodeOf(await ask(ctx, { ...question('web.service.consul', 'A'), flags: 2 << 11 })), RCODE.NOTIMP);
    assert.equal(rcodeOf(await ask(ctx, { id: 9, type: 'query', questions: [] })), RCODE.FORMERR);
    assert.equal(rcodeOf(await ask(ctx, { id: 9, type: 'query', questions: [{ name: 'a.service.consul', type: 'A' }, { name: 'b.service.consul', type: 'A' }] })), RCODE.FORMERR);
    assert.equal(rcodeOf(await ask(ctx, question('consul', 'AXFR'))), RCODE.NOTIMP);
    const edns = await ask(ctx, question('web.service.consul', 'A', { additionals: ednsOpt(4096) }));
    assert.deepEqual(edns.additionals.map((a) => [a.type, a.udpPayloadSize]), [['OPT', 4096]]);
    const badvers = await ask(ctx, question('web.service.consul', 'A', { additionals: ednsOpt(4096, 1) }));
    assert.equal(badvers.additionals[0]?.extendedRcode, 1);
    assert.equal(badvers.answers.length, 0);
  });

  test('a question name with bytes beyond printable ASCII is FORMERR, not echoed', async () => {
    const req = question('x.service.consul', 'A');
    const wire = encode(req);
    wire[13] = 0xff; // the label "x" becomes an invalid UTF-8 byte
    const r = decode(encode((await resolve(decode(wire), ctxFor(catalog()))).response));
    assert.equal(rcodeOf(r), RCODE.FORMERR);
    assert.equal(r.questions.length, 0);
  });

  test('the response echoes id, question and RD', async () => {
    const req = question('web.service.consul', 'A');
    const r = await ask(ctxFor(catalog()), req);
    assert.equal(r.id, req.id);
    assert.equal(r.type, 'response');
    assert.ok(r.flag_rd);
    assert.equal(r.flag_ra, false);
    assert.deepEqual(r.questions, [{ name: 'web.service.consul', type: 'A', class: 'IN' }]);
  });

  test('a failing lookup is SERVFAIL with the cause handed back for the log', async () => {
    const lookup = catalog();
    lookup.serviceInstances = () => {
      throw new Error('store closed');
    };
    const out = await resolve(decode(encode(question('web.service.consul', 'A'))), ctxFor(lookup));
    assert.equal((out.response.flags ?? 0) & 0xf, RCODE.SERVFAIL);
    assert.match(String(out.error), /store closed/);
  });

  test('a lookup that answers later (a client agent\'s) gives the same answers as one that answers now', async () => {
    const now = catalog();
    now.dcs = ['dc1', 'dc2'];
    const later: DnsLookup = {
      serviceInstances: async (service, tag) => now.serviceInstances(service, tag),
      node: async (name) => now.node(name),
      datacenters: async () => now.datacenters(),
    };
    const cases: Array<[string, string]> = [
      ['web.service.consul', 'SRV'], ['primary.web.service.consul', 'A'], ['node-a.node.consul', 'A'], ['ghost.node.consul', 'A'],
      ['consul', 'NS'], ['consul', 'SOA'], ['web.service.dc2.consul', 'A'], ['missing.service.consul', 'SRV'],
    ];
    for (const [name, type] of cases) {
      const q = question(name, type);
      const want = await ask(ctxFor(now), q);
      assert.deepEqual(await ask({ ...ctxFor(now), lookup: later }, q), want, `${name} ${type}`);
    }
    assert.equal((await ask({ ...ctxFor(now), lookup: later }, question('web.service.consul', 'SRV'))).answers.length, 2);
  });

  test('a lookup that rejects is SERVFAIL with the cause, and nothing half-built in the answer', async () => {
    const failing: DnsLookup = {
      serviceInstances: () => Promise.reject(new Error('No known Consul servers')),
      node: () => Promise.reject(new Error('server answered 500')),
      datacenters: () => ['dc1'],
    };
    for (const [name, type, cause] of [['web.service.consul', 'SRV', /No known Consul servers/], ['consul', 'SOA', /No known Consul servers/], ['node-a.node.consul', 'A', /server answered 500/]] as const) {
      const out = await resolve(decode(encode(question(name, type))), { ...ctxFor(catalog()), lookup: failing });
      assert.equal((out.response.flags ?? 0) & 0xf, RCODE.SERVFAIL, name);
      assert.match(String(out.error), cause);
      assert.deepEqual([out.response.answers, out.response.authorities], [[], []], name);
    }
  });

  test('node names DNS cannot carry: SRV falls back to the address target', async () => {
    const long = 'n'.repeat(70);
    const lookup = new FakeLookup().addNode(long, '10.0.0.7').addService('odd', long, 1);
    const r = await ask(ctxFor(lookup), question('odd.service.consul', 'SRV'));
    assert.deepEqual(r.answers.map((a) => (a.data as SrvData).target), ['0a000007.addr.dc1.consul']);
  });
});
