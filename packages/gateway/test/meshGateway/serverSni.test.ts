// Server SNI names (WAN federation through mesh gateways): server.<dc>.<domain> and
// <node>.server.<dc>.<domain>, and that mesh names (which also end in .consul) are never taken for them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshSni, parseServerSni } from '../../src/meshGateway/sniNames.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';

describe('server SNI names', () => {
  test('any server and one server of a datacenter', () => {
    assert.deepEqual(parseServerSni('server.dc1.consul', 'consul'), { datacenter: 'dc1' });
    assert.deepEqual(parseServerSni('node-1.server.dc2.consul', 'consul'), { datacenter: 'dc2', node: 'node-1' });
  });
  test('the domain: a trailing dot and case are ignored; another domain is not a server name', () => {
    assert.deepEqual(parseServerSni('server.dc1.example', 'EXAMPLE.'), { datacenter: 'dc1' });
    assert.equal(parseServerSni('server.dc1.consul', 'example'), undefined);
    assert.equal(parseServerSni('server.dc1.notconsul', 'consul'), undefined);
  });
  test('not server names: other shapes, empty or non-DNS labels, a dotted node', () => {
    for (const sni of ['server.consul', 'dc1.consul', 'node.client.dc1.consul', 'a.b.server.dc1.consul', '.server.dc1.consul', 'n*.server.dc1.consul', 'server..consul']) {
      assert.equal(parseServerSni(sni, 'consul'), undefined, sni);
    }
  });
  test('mesh names under a .consul trust domain stay mesh names', () => {
    const sni = `web.default.dc1.internal.${TD}`;
    assert.equal(parseServerSni(sni, 'consul'), undefined);
    assert.equal((parseMeshSni(sni, TD) as { kind?: string }).kind, 'target');
  });
});
