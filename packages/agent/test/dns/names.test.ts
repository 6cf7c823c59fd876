// Consul's DNS names (agent/dns.go dispatch), one row per form.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { domainLabels, parseQueryName, type ParsedName } from '../../src/dns/index.ts';
import { hexLabelToIp, ipToHexLabel } from '../../src/dns/addresses.ts';
import { isEncodableName } from '../../src/dns/names.ts';

const consul = domainLabels('consul.');

const rows: Array<[name: string, qname: string, qtype: string, expected: ParsedName]> = [
  ['service', 'web.service.consul', 'A', { kind: 'service', service: 'web', tag: undefined, datacenter: undefined }],
  ['trailing dot', 'web.service.consul.', 'A', { kind: 'service', service: 'web', tag: undefined, datacenter: undefined }],
  ['upper case is lowered', 'WEB.Service.CONSUL', 'A', { kind: 'service', service: 'web', tag: undefined, datacenter: undefined }],
  ['tag', 'primary.web.service.consul', 'SRV', { kind: 'service', service: 'web', tag: 'primary', datacenter: undefined }],
  ['dotted tag (Consul 0.3 form)', 'v1.blue.web.service.consul', 'A', { kind: 'service', service: 'web', tag: 'v1.blue', datacenter: undefined }],
  ['datacenter', 'web.service.dc2.consul', 'A', { kind: 'service', service: 'web', tag: undefined, datacenter: 'dc2' }],
  ['explicit .dc form', 'web.service.dc2.dc.consul', 'A', { kind: 'service', service: 'web', tag: undefined, datacenter: 'dc2' }],
  ['tag and datacenter', 'primary.web.service.dc1.consul', 'A', { kind: 'service', service: 'web', tag: 'primary', datacenter: 'dc1' }],
  ['RFC 2782 with _tcp (no tag)', '_web._tcp.service.consul', 'SRV', { kind: 'service', service: 'web', tag: undefined, datacenter: undefined }],
  ['RFC 2782 with a tag', '_web._primary.service.consul', 'SRV', { kind: 'service', service: 'web', tag: 'primary', datacenter: undefined }],
  ['RFC 2782 with datacenter', '_web._tcp.service.dc1.consul', 'SRV', { kind: 'service', service: 'web', tag: undefined, datacenter: 'dc1' }],
  ['RFC 2782 without "service" (SRV only)', '_web._tcp.consul', 'SRV', { kind: 'service', service: 'web', tag: undefined, datacenter: undefined }],
  ['RFC 2782 without "service", A query', '_web._tcp.consul', 'A', { kind: 'invalid', why: 'no service, node or addr label' }],
  ['consul service', 'consul.service.consul', 'A', { kind: 'service', service: 'consul', tag: undefined, datacenter: undefined }],
  ['node', 'foo.node.consul', 'A', { kind: 'node', node: 'foo', datacenter: undefined }],
  ['node with datacenter', 'foo.node.dc1.consul', 'A', { kind: 'node', node: 'foo', datacenter: 'dc1' }],
  ['dotted node name', 'foo.bar.node.consul', 'A', { kind: 'node', node: 'foo.bar', datacenter: undefined }],
  ['addr IPv4', '0a000001.addr.dc1.consul', 'A', { kind: 'addr', family: 4, ip: '10.0.0.1' }],
  ['addr IPv6', '20010db8000000000000000000000001.addr.dc1.consul', 'AAAA', { kind: 'addr', family: 6, ip: '2001:db8:0:0:0:0:0:1' }],
  ['addr not hex', 'zzzzzzzz.addr.consul', 'A', { kind: 'invalid', why: 'not a hex-encoded address' }],
  ['apex', 'consul', 'SOA', { kind: 'apex' }],
  ['outside', 'example.com', 'A', { kind: 'outside' }],
  ['suffix is not a label boundary', 'web.service.notconsul', 'A', { kind: 'outside' }],
  ['root', '', 'NS', { kind: 'outside' }],
  ['no kind label', 'web.consul', 'A', { kind: 'invalid', why: 'no service, node or addr label' }],
  ['no service name', 'service.consul', 'A', { kind: 'invalid', why: 'no service name' }],
  ['too many locality labels', 'web.service.a.b.consul', 'A', { kind: 'invalid', why: 'bad datacenter part' }],
  ['prepared query', 'q.query.consul', 'A', { kind: 'unsupported', what: 'query' }],
  ['connect', 'web.connect.consul', 'A', { kind: 'unsupported', what: 'connect' }],
];

describe('DNS name parsing', () => {
  for (const [name, qname, qtype, expected] of rows) {
    test(name, () => assert.deepEqual(parseQueryName(qname, qtype, consul), expected));
  }

  test('a multi-label domain', () => {
    const d = domainLabels('Cluster.Local.');
    assert.deepEqual(d, ['cluster', 'local']);
    assert.deepEqual(parseQueryName('web.service.cluster.local', 'A', d), { kind: 'service', service: 'web', tag: undefined, datacenter: undefined });
    assert.deepEqual(parseQueryName('web.service.local', 'A', d), { kind: 'outside' });
  });
});

describe('addr labels', () => {
  test('round trip IPv4, IPv6 and IPv4-mapped IPv6', () => {
    assert.equal(ipToHexLabel('10.0.0.1'), '0a000001');
    assert.equal(ipToHexLabel('::ffff:10.0.0.1'), '0a000001');
    assert.equal(ipToHexLabel('2001:db8::1'), '20010db8000000000000000000000001');
    assert.equal(ipToHexLabel('::1'), '00000000000000000000000000000001');
    assert.equal(ipToHexLabel('fe80::1:2'), 'fe800000000000000000000000010002');
    assert.equal(ipToHexLabel('not-an-ip'), undefined);
    assert.deepEqual(hexLabelToIp('c0a80101'), { family: 4, ip: '192.168.1.1' });
    assert.equal(hexLabelToIp('c0a801'), undefined);
  });

  test('encodable names', () => {
    assert.ok(isEncodableName('web.service.consul'));
    assert.ok(!isEncodableName('a'.repeat(64) + '.consul'));
    assert.ok(!isEncodableName('a..b'));
    assert.ok(!isEncodableName(('a'.repeat(60) + '.').repeat(5)));
  });
});
