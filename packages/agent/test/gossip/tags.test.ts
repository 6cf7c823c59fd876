// Consul's member tags, member rows, user event records, retry-join and the config mapping.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GossipError, clientTags, consulEventName, decodeConsulEvent, encodeConsulEvent, lanPoolOptions, memberRow,
  parseServer, rawConsulEventName, retryJoin, serverTags,
} from '../../src/gossip/index.ts';
import { defaults } from '../../src/config/runtime.ts';
import type { MemberView } from '../../src/gossip/index.ts';

const view = (over: Partial<MemberView>): MemberView => ({
  name: 's1', addr: '10.0.0.5', port: 8301, peerId: 'p', tags: {}, incarnation: 1, state: 'alive', stateChangeMs: 0, ...over,
});

describe('Consul serf tags', () => {
  test('a server advertises role=consul, dc, its RPC port, expect, id, build and versions (server_serf.go)', () => {
    const t = serverTags({ datacenter: 'dc1', nodeId: 'uuid-1', serverPort: 8300, build: '1.21.0:trellis', bootstrapExpect: 3 });
    assert.deepEqual(t, {
      role: 'consul', dc: 'dc1', segment: '', id: 'uuid-1', vsn: '2', vsn_min: '2', vsn_max: '3', raft_vsn: '3',
      build: '1.21.0:trellis', port: '8300', acls: '0', expect: '3',
    });
    const info = parseServer(view({ tags: t }))!;
    assert.equal(info.rpcAddr, '10.0.0.5:8300');
    assert.equal(info.expect, 3);
    assert.equal(info.datacenter, 'dc1');
    assert.equal(info.bootstrap, false);
  });

  test('a client is role=node and is not a server', () => {
    const t = clientTags({ datacenter: 'dc1', nodeId: 'u', build: 'b' });
    assert.equal(t.role, 'node');
    assert.equal(parseServer(view({ tags: t })), undefined);
  });

  const badServers: [string, Record<string, string>][] = [
    ['no port', { role: 'consul', dc: 'dc1' }],
    ['port out of range', { role: 'consul', dc: 'dc1', port: '70000' }],
    ['no dc', { role: 'consul', port: '8300' }],
  ];
  for (const [name, tags] of badServers) {
    test(`a "server" with ${name} is not usable`, () => assert.equal(parseServer(view({ tags })), undefined));
  }

  test('IPv6 server addresses are bracketed', () => {
    assert.equal(parseServer(view({ addr: '::1', tags: { role: 'consul', dc: 'd', port: '8300' } }))!.rpcAddr, '[::1]:8300');
  });
});

describe('member rows (GET /v1/agent/members)', () => {
  const rows: [MemberView['state'], boolean, number][] = [
    ['alive', false, 1], ['suspect', false, 1], ['left', true, 2], ['left', false, 3], ['dead', false, 4],
  ];
  for (const [state, leaving, status] of rows) {
    test(`${state}${leaving ? ' (leave in progress)' : ''} → Status ${status}`, () => {
      const r = memberRow(view({ state, tags: { dc: 'dc1' } }), leaving);
      assert.equal(r.Status, status);
      assert.deepEqual(Object.keys(r), ['Name', 'Addr', 'Port', 'Tags', 'Status', 'ProtocolMin', 'ProtocolMax', 'ProtocolCur', 'DelegateMin', 'DelegateMax', 'DelegateCur']);
    });
  }
});

describe('Consul user events over the pool', () => {
  test('round trip, names prefixed with consul:event:', () => {
    const ev = { ID: 'id-1', Name: 'deploy', Payload: new Uint8Array([1, 2]), NodeFilter: 'web.*', ServiceFilter: '', TagFilter: '', Version: 1, LTime: 0 };
    const bytes = encodeConsulEvent(ev);
    assert.deepEqual(decodeConsulEvent(bytes, 42), { ...ev, LTime: 42 });
    assert.equal(consulEventName('deploy'), 'consul:event:deploy');
    assert.equal(rawConsulEventName('consul:event:deploy'), 'deploy');
    assert.equal(rawConsulEventName('other'), undefined);
    assert.deepEqual(decodeConsulEvent(encodeConsulEvent({ ...ev, Payload: null }), 1).Payload, null);
  });

  for (const [name, text] of [['not JSON', '{'], ['ID missing', '{"n":"x","p":null,"v":1}'], ['payload not base64 text', '{"i":"a","n":"x","p":5,"v":1}']] as const) {
    test(`refuses a record with ${name}`, () => {
      assert.throws(() => decodeConsulEvent(new TextEncoder().encode(text), 1), (e: unknown) => e instanceof GossipError && e.code === 'ERR_MALFORMED_MESSAGE');
    });
  }
});

describe('retry join', () => {
  test('retries until a join succeeds', async () => {
    let calls = 0;
    const pool = { join: async () => { calls++; if (calls < 3) throw new Error('nobody home'); return 2; } };
    assert.equal(await retryJoin(pool, ['a'], { intervalMs: 5, maxAttempts: 0 }), 2);
    assert.equal(calls, 3);
  });

  test('gives up after retry_max attempts with the last error', async () => {
    let calls = 0;
    const pool = { join: async () => { calls++; throw new Error('nobody home'); } };
    await assert.rejects(retryJoin(pool, ['a'], { intervalMs: 1, maxAttempts: 2 }),
      (e: unknown) => e instanceof GossipError && e.code === 'ERR_JOIN_FAILED' && /after 2 attempts: nobody home/.test(e.message));
    assert.equal(calls, 2);
  });

  test('stops when the agent shuts down', async () => {
    const ac = new AbortController();
    const pool = { join: async () => { ac.abort(); throw new Error('nobody home'); } };
    await assert.rejects(retryJoin(pool, ['a'], { intervalMs: 60_000, maxAttempts: 0, signal: ac.signal }), (e: unknown) => e instanceof GossipError && e.code === 'ERR_NOT_RUNNING');
  });
});

describe('pool options from RuntimeConfig', () => {
  test('a server in dev mode: serf LAN port, server tags, no data dir, Consul gossip_lan settings', () => {
    const c = { ...defaults(), devMode: true, serverMode: true, nodeName: 'n1', datacenter: 'dc9', bootstrapExpect: 3 };
    const o = lanPoolOptions(c, { nodeId: 'id-9' });
    assert.equal(o.port, c.ports.serfLan);
    assert.equal(o.datacenter, 'dc9');
    assert.equal(o.dataDir, undefined);
    assert.equal(o.tags!.role, 'consul');
    assert.equal(o.tags!.expect, '3');
    assert.equal(o.tags!.port, String(c.ports.server));
    assert.equal(o.config!.probeIntervalMs, c.gossipLan.probeIntervalMs);
    assert.equal(o.config!.reconnectTimeoutMs, c.reconnectTimeoutLanMs);
  });
});
