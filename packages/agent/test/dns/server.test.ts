// The DNS server over real sockets on 127.0.0.1 (port 0), queried as clients do.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { decode, encode, type SrvData } from 'dns-packet';
import { DnsConfigError, RCODE, startDnsServer, type DnsLookup, type DnsServer } from '../../src/dns/index.ts';
import { ednsOpt, FakeLookup, frame, queryTcp, queryUdp, question, rcodeOf, tcpExchange, udpExchange } from './helpers.ts';

const lookup = new FakeLookup()
  .addNode('node-a', '10.0.0.1')
  .addNode('node-b', '10.0.0.2')
  .addService('web', 'node-a', 8080, { tags: ['primary'] })
  .addService('web', 'node-b', 8081, { tags: ['secondary'] })
  .addService('consul', 'node-a', 8300);
// Enough instances with long names that an SRV answer cannot fit in 512 bytes.
for (let i = 0; i < 30; i++) {
  const node = `worker-node-with-a-long-name-${String(i).padStart(2, '0')}`;
  lookup.addNode(node, `10.0.2.${i}`).addService('big', node, 9000 + i);
}

let server: DnsServer;
before(async () => {
  server = await startDnsServer({ host: '127.0.0.1', port: 0, domain: 'consul.', datacenter: 'dc1', nodeName: 'agent-1', lookup });
});
after(() => server.close());

describe('DNS server over UDP and TCP', () => {
  test('SRV with ports over UDP, targets resolved in the additional section', async () => {
    const r = await queryUdp(server.port, question('web.service.consul', 'SRV'));
    assert.equal(rcodeOf(r), RCODE.NOERROR);
    const byPort = r.answers.map((a) => a.data as SrvData).sort((x, y) => x.port - y.port);
    assert.deepEqual(byPort.map((s) => [s.port, s.target]), [[8080, 'node-a.node.dc1.consul'], [8081, 'node-b.node.dc1.consul']]);
    assert.deepEqual(r.additionals.map((a) => [a.name, a.data]).sort(), [['node-a.node.dc1.consul', '10.0.0.1'], ['node-b.node.dc1.consul', '10.0.0.2']]);
  });

  test('the same SRV over TCP', async () => {
    const r = await queryTcp(server.port, question('web.service.consul', 'SRV'));
    assert.deepEqual(r.answers.map((a) => (a.data as SrvData).port).sort(), [8080, 8081]);
  });

  test('A records, tag filter, datacenter name, node lookup, case-insensitivity', async () => {
    const a = await queryUdp(server.port, question('web.service.consul', 'A'));
    assert.deepEqual(a.answers.map((x) => x.data).sort(), ['10.0.0.1', '10.0.0.2']);
    const tag = await queryUdp(server.port, question('secondary.web.service.consul', 'A'));
    assert.deepEqual(tag.answers.map((x) => x.data), ['10.0.0.2']);
    const dc = await queryUdp(server.port, question('primary.web.service.dc1.consul', 'SRV'));
    assert.deepEqual(dc.answers.map((x) => (x.data as SrvData).port), [8080]);
    const node = await queryTcp(server.port, question('node-b.node.dc1.consul', 'A'));
    assert.deepEqual(node.answers.map((x) => x.data), ['10.0.0.2']);
    const upper = await queryUdp(server.port, question('WEB.SERVICE.Consul', 'SRV'));
    assert.equal(upper.answers.length, 2);
    assert.equal(upper.answers[0]!.name, 'WEB.SERVICE.Consul');
  });

  test('unknown names and datacenters: NXDOMAIN with the SOA; outside the domain: REFUSED', async () => {
    for (const name of ['nothing.service.consul', 'ghost.node.consul', 'web.service.dc9.consul']) {
      const r = await queryUdp(server.port, question(name, 'A'));
      assert.equal(rcodeOf(r), RCODE.NXDOMAIN, name);
      assert.equal(r.authorities[0]?.type, 'SOA', name);
      const soa = r.authorities[0]!.data as { mname: string; rname: string; serial: number };
      assert.equal(soa.mname, 'ns.consul');
      assert.equal(soa.rname, 'hostmaster.consul');
      assert.ok(Math.abs(soa.serial - Date.now() / 1000) < 60);
    }
    assert.equal(rcodeOf(await queryUdp(server.port, question('www.example.com', 'A'))), RCODE.REFUSED);
  });

  test('consul.service.consul answers from the lookup', async () => {
    const r = await queryUdp(server.port, question('consul.service.consul', 'SRV'));
    assert.deepEqual(r.answers.map((x) => (x.data as SrvData).port), [8300]);
  });

  test('answers are shuffled: over many queries both orders appear', async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 40 && orders.size < 2; i++) {
      const r = await queryUdp(server.port, question('web.service.consul', 'A'));
      orders.add(r.answers.map((x) => x.data).join(','));
    }
    assert.deepEqual([...orders].sort(), ['10.0.0.1,10.0.0.2', '10.0.0.2,10.0.0.1']);
  });

  test('UDP without EDNS: over 512 bytes is truncated with TC; TCP answers whole', async () => {
    const udp = await queryUdp(server.port, question('big.service.consul', 'SRV'));
    assert.ok(udp.flag_tc, 'TC bit');
    assert.ok(udp.bytes <= 512, `${udp.bytes} bytes`);
    assert.ok(udp.answers.length >= 1 && udp.answers.length <= 3);
    // Every SRV kept still has its address.
    assert.deepEqual(udp.additionals.map((a) => a.name).sort(), udp.answers.map((a) => (a.data as SrvData).target).sort());
    const tcp = await queryTcp(server.port, question('big.service.consul', 'SRV'));
    assert.equal(tcp.flag_tc, false);
    assert.equal(tcp.answers.length, 30);
    assert.equal(tcp.additionals.length, 30);
    assert.ok(tcp.bytes > 512);
  });

  test('UDP with EDNS gets as much as the client advertised', async () => {
    const r = await queryUdp(server.port, question('big.service.consul', 'SRV', { additionals: ednsOpt(8192) }));
    assert.equal(r.flag_tc, false);
    assert.equal(r.answers.length, 30);
    assert.ok(r.bytes > 4096 && r.bytes <= 8192, `${r.bytes} bytes`);
    const small = await queryUdp(server.port, question('big.service.consul', 'SRV', { additionals: ednsOpt(1232) }));
    assert.ok(small.flag_tc);
    assert.ok(small.bytes <= 1232 && small.answers.length > 3, `${small.answers.length} answers in ${small.bytes} bytes`);
  });

  test('garbage over UDP: FORMERR when the header is readable, silence otherwise, and the next query is answered', async () => {
    const junk = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff]);
    const formerr = decode(await udpExchange(server.port, junk));
    assert.equal(formerr.id, 0x1234);
    assert.equal(rcodeOf(formerr), RCODE.FORMERR);
    await assert.rejects(udpExchange(server.port, Buffer.from([1, 2, 3]), 300), /no UDP answer/);
    // A datagram with the response bit set is never answered (no reflection between servers).
    const resp = encode({ id: 5, type: 'response', questions: [{ name: 'web.service.consul', type: 'A' }] });
    await assert.rejects(udpExchange(server.port, resp, 300), /no UDP answer/);
    for (let i = 0; i < 50; i++) {
      const n = 1 + Math.floor(Math.random() * 300);
      udpExchange(server.port, Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256))), 200).catch(() => {});
    }
    const ok = await queryUdp(server.port, question('web.service.consul', 'A'));
    assert.equal(ok.answers.length, 2);
  });

  test('TCP: pipelined queries, frames split across writes, and garbage closes only that connection', async () => {
    const q1 = frame(encode(question('web.service.consul', 'A')));
    const q2 = frame(encode(question('node-a.node.consul', 'A')));
    const both = Buffer.concat([q1, q2]);
    // Byte by byte: the server must reassemble.
    const pieces = [...both].map((b) => Buffer.from([b]));
    const replies = await tcpExchange(server.port, pieces, 2);
    assert.deepEqual(replies.map((r) => decode(r).questions[0]!.name), ['web.service.consul', 'node-a.node.consul']);

    const garbage = frame(Buffer.from('definitely not a dns message'));
    const formerr = await tcpExchange(server.port, [garbage], 1);
    assert.equal(rcodeOf(decode(formerr[0]!)), RCODE.FORMERR);
    await assert.rejects(tcpExchange(server.port, [frame(Buffer.from([1, 2]))], 1, 500), /closed|answers within/);
    const after = await queryTcp(server.port, question('web.service.consul', 'SRV'));
    assert.equal(after.answers.length, 2);
  });

  test('dig @127.0.0.1 -p <port> web.service.consul SRV', async (t) => {
    if (spawnSync('dig', ['-v'], { stdio: 'ignore' }).error) {
      t.skip('dig is not installed on this machine');
      return;
    }
    const out = await new Promise<string>((resolve, reject) => {
      execFile('dig', ['@127.0.0.1', '-p', String(server.port), 'web.service.consul', 'SRV', '+time=2', '+tries=1'], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
    });
    assert.match(out, /status: NOERROR/);
    assert.match(out, /web\.service\.consul\.\s+0\s+IN\s+SRV\s+1 1 8080 node-a\.node\.dc1\.consul\./);
    assert.match(out, /node-b\.node\.dc1\.consul\.\s+0\s+IN\s+A\s+10\.0\.0\.2/);
  });
});

describe('DNS server lifecycle and configuration', () => {
  test('UDP and TCP share the port; close is idempotent and frees it', async () => {
    const s = await startDnsServer({ host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup });
    const viaUdp = await queryUdp(s.port, question('web.service.consul', 'A'));
    const viaTcp = await queryTcp(s.port, question('web.service.consul', 'A'));
    assert.equal(viaUdp.answers.length, 2);
    assert.equal(viaTcp.answers.length, 2);
    await s.close();
    await s.close();
    const again = await startDnsServer({ host: '127.0.0.1', port: s.port, datacenter: 'dc1', nodeName: 'n', lookup });
    await again.close();
  });

  test('a taken port is an error naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()));
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(
        startDnsServer({ host: '127.0.0.1', port, datacenter: 'dc1', nodeName: 'n', lookup }),
        (e: Error & { code?: string }) => e.code === 'EADDRINUSE' && e.message.includes(`127.0.0.1:${port}/tcp`),
      );
    } finally {
      blocker.close();
    }
  });

  test('invalid options are refused with the field named', async () => {
    const base = { host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup };
    const cases: Array<[Partial<typeof base> & Record<string, unknown>, string]> = [
      [{ port: 70000 }, 'port'],
      [{ domain: 'bad domain' }, 'domain'],
      [{ domain: '.' }, 'domain'],
      [{ datacenter: '' }, 'datacenter'],
      [{ udpAnswerLimit: 0 }, 'udpAnswerLimit'],
      [{ ttlSeconds: -1 }, 'ttlSeconds'],
    ];
    for (const [over, field] of cases) {
      await assert.rejects(startDnsServer({ ...base, ...over }), (e: unknown) => e instanceof DnsConfigError && e.field === field && e.code === 'ERR_INVALID_DNS_CONFIG');
    }
  });

  test('a lookup that throws gives SERVFAIL and an error log line; the server keeps answering', async () => {
    const lines: Array<[object, string]> = [];
    const logger = { debug() {}, warn() {}, error: (o: object, m: string) => void lines.push([o, m]) };
    let fail = true;
    const flaky = new FakeLookup().addNode('x', '10.0.0.9').addService('s', 'x', 1);
    const real = flaky.serviceInstances.bind(flaky);
    flaky.serviceInstances = (s, t) => {
      if (fail) throw new Error('state store unavailable');
      return real(s, t);
    };
    const s = await startDnsServer({ host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup: flaky, logger });
    try {
      assert.equal(rcodeOf(await queryUdp(s.port, question('s.service.consul', 'A'))), RCODE.SERVFAIL);
      assert.match(JSON.stringify(lines), /state store unavailable/);
      fail = false;
      assert.deepEqual((await queryUdp(s.port, question('s.service.consul', 'A'))).answers.map((a) => a.data), ['10.0.0.9']);
    } finally {
      await s.close();
    }
  });
});

describe('DNS server over a lookup that answers later (a client agent\'s)', () => {
  const base = new FakeLookup().addNode('node-a', '10.0.0.1').addService('slow', 'node-a', 1).addService('fast', 'node-a', 2);
  const later = <T>(value: T, ms: number) => new Promise<T>((res) => setTimeout(() => res(value), ms));

  test('answers over UDP and TCP once the lookup resolves; a rejected lookup is SERVFAIL and logged', async () => {
    const lines: string[] = [];
    const logger = { debug() {}, warn() {}, error: (o: object) => void lines.push(JSON.stringify(o)) };
    const lookup: DnsLookup = {
      serviceInstances: (s, t) => (s === 'broken' ? Promise.reject(new Error('no known Consul servers')) : later(base.serviceInstances(s, t), 20)),
      node: (n) => later(base.node(n), 20),
      datacenters: () => later(['dc1'], 20),
    };
    const s = await startDnsServer({ host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup, logger });
    try {
      const srv = await queryUdp(s.port, question('fast.service.consul', 'SRV'));
      assert.deepEqual(srv.answers.map((a) => [(a.data as SrvData).port, (a.data as SrvData).target]), [[2, 'node-a.node.dc1.consul']]);
      assert.deepEqual((await queryTcp(s.port, question('node-a.node.consul', 'A'))).answers.map((a) => a.data), ['10.0.0.1']);
      assert.equal(rcodeOf(await queryUdp(s.port, question('fast.service.dc2.consul', 'A'))), RCODE.NXDOMAIN);
      assert.equal(rcodeOf(await queryUdp(s.port, question('broken.service.consul', 'A'))), RCODE.SERVFAIL);
      assert.equal(rcodeOf(await queryTcp(s.port, question('broken.service.consul', 'A'))), RCODE.SERVFAIL);
      assert.equal(lines.filter((l) => l.includes('no known Consul servers')).length, 2);
    } finally {
      await s.close();
    }
  });

  test('TCP: pipelined queries are resolved concurrently and answered in the order they came', async () => {
    let fastAsked!: () => void;
    const fastCalled = new Promise<void>((res) => (fastAsked = res));
    const lookup: DnsLookup = {
      // The slow lookup finishes only after the fast one has started (and then some): were queries
      // resolved one at a time, the slow one would never answer.
      serviceInstances: async (s, t) => {
        if (s === 'slow') {
          await fastCalled;
          await later(undefined, 50);
        } else {
          fastAsked();
        }
        return base.serviceInstances(s, t);
      },
      node: (n) => base.node(n),
      datacenters: () => ['dc1'],
    };
    const s = await startDnsServer({ host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup });
    try {
      const slow = question('slow.service.consul', 'SRV');
      const fast = question('fast.service.consul', 'SRV');
      const replies = (await tcpExchange(s.port, [Buffer.concat([frame(encode(slow)), frame(encode(fast))])], 2)).map((r) => decode(r));
      assert.deepEqual(replies.map((r) => [r.id, r.questions[0]!.name, (r.answers[0]!.data as SrvData).port]), [[slow.id, 'slow.service.consul', 1], [fast.id, 'fast.service.consul', 2]]);
    } finally {
      await s.close();
    }
  });

  test('TCP: at most 32 queries per connection are open; the rest wait until answers go out', async () => {
    const held: Array<() => void> = [];
    let asked = 0;
    const lookup: DnsLookup = {
      serviceInstances: (s, t) => {
        asked++;
        return new Promise((res) => held.push(() => res(base.serviceInstances(s, t))));
      },
      node: (n) => base.node(n),
      datacenters: () => ['dc1'],
    };
    const s = await startDnsServer({ host: '127.0.0.1', port: 0, datacenter: 'dc1', nodeName: 'n', lookup });
    try {
      const queries = Array.from({ length: 40 }, () => question('fast.service.consul', 'A'));
      const exchange = tcpExchange(s.port, [Buffer.concat(queries.map((q) => frame(encode(q))))], 40, 5000);
      for (let i = 0; i < 100 && asked < 32; i++) await later(undefined, 10);
      await later(undefined, 100); // time for any query beyond the bound to (wrongly) start
      assert.equal(asked, 32);
      // Release answers as they are asked for, until all 40 are in.
      for (let i = 0; i < 200 && (held.length > 0 || asked < 40); i++) {
        for (const release of held.splice(0)) release();
        await later(undefined, 10);
      }
      const replies = (await exchange).map((r) => decode(r));
      assert.equal(asked, 40);
      assert.deepEqual(replies.map((r) => r.id), queries.map((q) => q.id));
      assert.ok(replies.every((r) => r.answers.length === 1 && r.answers[0]!.data === '10.0.0.1'));
    } finally {
      await s.close();
    }
  });
});
