// ServerCA on a store: the first leader's CA, a second initialize is a no-op, two racing
// initializations make one CA, and old roots are pruned once every leaf they signed has expired.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ServerCA } from '../../src/server/connectCA.ts';
import { createRoot, generateKeyPair } from '../../src/ca/certs.ts';
import { StateStore } from '../../src/state/store.ts';
import type { Command, CommandResult } from '../../src/state/types.ts';

function setup(clock: { now: number }): { store: StateStore; ca: (name?: string) => ServerCA } {
  const store = new StateStore();
  let index = 0;
  // Commits a turn later, as Raft would: two proposers can both read "no CA" before either commits.
  const apply = async (cmd: Command): Promise<CommandResult> => {
    await new Promise((r) => setImmediate(r));
    return store.apply(++index, cmd);
  };
  return { store, ca: () => new ServerCA({ store, apply, datacenter: 'dc1', logger: pino({ level: 'silent' }), now: () => clock.now }) };
}

describe('ServerCA', () => {
  test('two servers initializing at once make one CA (CAS 0); the loser keeps the winner\'s', async () => {
    const clock = { now: Date.now() };
    const { store, ca } = setup(clock);
    await Promise.all([ca().initialize(), ca().initialize()]);
    assert.equal(store.caRoots().value.length, 1);
    const root = store.caRoots().value[0]!;
    assert.ok(store.caProviderState(root.ID)!.PrivateKey.includes('RSA PRIVATE KEY'));
    assert.equal(store.caConfig().value!.ModifyIndex, 1, 'the second proposal changed nothing');
    const cluster = store.caConfig().value!.ClusterID;
    await ca().initialize();
    assert.equal(store.caConfig().value!.ClusterID, cluster);
  });

  test('an old root is kept while its leaves may live (LeafCertTTL) and pruned after', async () => {
    const clock = { now: Date.now() };
    const { store, ca } = setup(clock);
    const server = ca();
    await server.initialize();
    const first = store.caRoots().value[0]!;
    const td = `${store.caConfig().value!.ClusterID}.consul`;
    const k = generateKeyPair();
    const mine = createRoot({ privateKeyPem: k.privateKeyPem, trustDomain: td, serialNumber: 9, ttlMs: 87_600 * 3_600_000, now: clock.now });
    await server.setConfig({ Provider: 'consul', Config: { LeafCertTTL: '72h', PrivateKey: k.privateKeyPem, RootCert: mine } });
    assert.deepEqual(store.caRoots().value.map((r) => [r.ID === first.ID, r.Active]).sort(), [[false, true], [true, false]]);
    // The old root's key is gone with the rotation; only the active root's is kept.
    assert.equal(store.caProviderState(first.ID), null);
    assert.equal(await server.pruneRoots(), 0);
    clock.now += 71 * 3_600_000;
    assert.equal(await server.pruneRoots(), 0);
    clock.now += 2 * 3_600_000;
    assert.equal(await server.pruneRoots(), 1);
    const left = store.caRoots().value;
    assert.equal(left.length, 1);
    assert.equal(left[0]!.Active, true);
    assert.equal(left[0]!.RootCert.trim(), mine.trim());
  });
});
