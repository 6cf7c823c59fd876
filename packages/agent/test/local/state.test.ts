// LocalState: the agent's own services and checks, kept in step with the catalog.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkKind, validateCheckType } from '../../src/structs/check.ts';
import { harness, NODE } from '../http/helpers.ts';

describe('check types (Consul\'s CheckType.Validate / Type)', () => {
  const cases: { name: string; ct: Parameters<typeof validateCheckType>[0]; kind: string; error: string | null }[] = [
    { name: 'ttl', ct: { TTLNs: 10e9 }, kind: 'ttl', error: null },
    { name: 'http', ct: { HTTP: 'http://x', IntervalNs: 1e9 }, kind: 'http', error: null },
    { name: 'tcp without interval', ct: { TCP: 'x:1' }, kind: 'tcp', error: 'Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks' },
    { name: 'script', ct: { ScriptArgs: ['true'], IntervalNs: 1e9 }, kind: 'script', error: null },
    { name: 'alias needs nothing else', ct: { AliasService: 'web' }, kind: 'alias', error: null },
    { name: 'both interval and ttl', ct: { TTLNs: 1e9, IntervalNs: 1e9 }, kind: 'ttl', error: 'Interval and TTL cannot both be specified' },
    { name: 'nothing', ct: {}, kind: '', error: 'TTL must be > 0 for TTL checks' },
    { name: 'negative output size', ct: { TTLNs: 1e9, OutputMaxSize: -1 }, kind: 'ttl', error: 'MaxOutputMaxSize must be positive' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(checkKind(c.ct), c.kind);
      assert.equal(validateCheckType(c.ct), c.error);
    });
  }
});

describe('anti-entropy (syncFull)', () => {
  test('repairs catalog drift: re-registers what the agent holds, removes what it does not, keeps serfHealth', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Check: { TTL: '30s' } });
    // Someone edits this node's catalog entry behind the agent's back.
    await h.req('PUT', '/v1/catalog/deregister', { Node: NODE, ServiceID: 'web' });
    await h.req('PUT', '/v1/catalog/register', { Node: NODE, Address: '127.0.0.1', SkipNodeUpdate: true, Service: { Service: 'rogue' } });
    assert.deepEqual(Object.keys(h.store.services().value).sort(), ['rogue']);

    const writes = await h.backend.local.syncFull();
    assert.ok(writes >= 3, `applied ${writes} commands`);
    assert.deepEqual(Object.keys(h.store.services().value), ['web']);
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth', 'service:web']);
    // In sync now: a second pass writes nothing.
    const before = h.store.lastIndex();
    assert.equal(await h.backend.local.syncFull(), 0);
    assert.equal(h.store.lastIndex(), before);
    await h.close();
  });

  test('concurrent registrations and deregistrations of one service end consistent', async () => {
    const h = harness();
    const ops = [];
    for (let i = 0; i < 20; i++) {
      ops.push(h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: [`t${i}`], Check: { TTL: '30s' } }));
      if (i % 3 === 0) ops.push(h.req('PUT', '/v1/agent/service/deregister/web'));
    }
    await Promise.all(ops);
    const local = h.backend.local.service('web');
    const catalog = h.store.nodeServices(NODE).value?.Services.find((s) => s.ID === 'web');
    assert.deepEqual(local?.service.Tags, catalog?.Tags);
    assert.equal(await h.backend.local.syncFull(), 0, 'nothing to repair');
    await h.close();
  });

  test('a failed catalog write leaves the local state unchanged', async () => {
    const h = harness();
    h.failApply = Object.assign(new Error('no leader'), { code: 'ERR_NO_LEADER' });
    await assert.rejects(h.backend.local.addService({
      Kind: '', ID: 'web', Service: 'web', Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 0,
      Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
    }, [{ TTLNs: 1e9 }]), /no leader/);
    assert.equal(h.backend.local.service('web'), undefined);
    assert.deepEqual(h.backend.local.checks(), []);
    // The queue keeps working after a failure.
    h.failApply = undefined;
    await h.backend.local.enableNodeMaintenance('');
    assert.ok(h.backend.local.check('_node_maintenance'));
    await h.close();
  });
});

describe('client agents without a reachable server (syncLater)', () => {
  test('a change is kept locally when no server answers, and syncFull writes it once one does', async () => {
    const { LocalState, catalogStateFromStore } = await import('../../src/local/state.ts');
    const { StateStore, decodeCommand, encodeCommand } = await import('../../src/state/index.ts');
    const store = new StateStore();
    let index = 1;
    let serversDown = true;
    let outOfSyncCalls = 0;
    const noServers = Object.assign(new Error('No known Consul servers'), { code: 'ERR_NO_SERVERS' });
    const local = new LocalState({
      node: { Node: 'c1', ID: '11111111-2222-4333-8444-555555555555', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
      apply: async (cmd) => {
        if (serversDown) throw noServers;
        return store.apply(index++, decodeCommand(encodeCommand(cmd)));
      },
      catalogState: (node) => {
        if (serversDown) throw noServers;
        return catalogStateFromStore(store)(node);
      },
      syncLater: (err) => (err as { code?: string }).code === 'ERR_NO_SERVERS',
      onOutOfSync: () => { outOfSyncCalls++; },
    });
    const svc = { Kind: '' as const, ID: 'web-1', Service: 'web', Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 80, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false };
    await local.addService(svc, [{ CheckID: 'web-ttl', TTLNs: 60e9 }]);
    await local.updateTtlCheck('web-ttl', 'passing', 'fine');
    assert.equal(local.outOfSync, true);
    assert.ok(outOfSyncCalls >= 1);
    assert.equal(local.check('web-ttl')?.check.Status, 'passing');
    assert.equal(store.nodeServices('c1').value, null, 'nothing reached the catalog');
    await assert.rejects(local.syncFull(), /No known Consul servers/);
    assert.equal(local.outOfSync, true);

    serversDown = false;
    assert.ok(await local.syncFull() >= 2);
    assert.equal(local.outOfSync, false);
    assert.deepEqual(store.nodeServices('c1').value?.Services.map((s) => s.ID), ['web-1']);
    assert.equal(store.nodeChecks('c1').value.find((c) => c.CheckID === 'web-ttl')?.Status, 'passing');
    // Other failures (a refused write) still fail the request and change nothing here.
    serversDown = false;
    await assert.rejects(local.addService({ ...svc, ID: 'bad', Service: '' }, []));
    assert.equal(local.service('bad'), undefined);
    local.close();
  });
});
