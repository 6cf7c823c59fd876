// The CA tables: the config, roots and provider state set together with CAS, indexes, watch
// wake-ups, rollback of a refused write, the command codec and snapshot/restore.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './helpers.ts';
import { StateStore } from '../../src/state/store.ts';
import { decodeCommand, encodeCommand } from '../../src/state/codec.ts';
import type { ConnectCASetCommand } from '../../src/state/types.ts';

const CLUSTER = '11111111-2222-3333-4444-555555555555';
const root = (id: string, active: boolean) => ({
  ID: id, Name: 'Consul CA Primary Cert', SerialNumber: 7, SigningKeyID: 'aa:bb', ExternalTrustDomain: `${CLUSTER}.consul`,
  NotBefore: '2026-01-01T00:00:00Z', NotAfter: '2036-01-01T00:00:00Z', RootCert: `PEM-${id}`, IntermediateCerts: null,
  Active: active, RotatedOutAt: '0001-01-01T00:00:00Z', PrivateKeyType: 'rsa', PrivateKeyBits: 2048,
});
const set = (roots: ReturnType<typeof root>[], Cas?: number, key = 'KEY-1'): ConnectCASetCommand => ({
  type: 'connectCASet',
  Config: { ClusterID: CLUSTER, Provider: 'consul', Config: { LeafCertTTL: '72h' }, ForceWithoutCrossSigning: false },
  Roots: roots,
  ProviderState: [{ ID: roots.find((r) => r.Active)!.ID, PrivateKey: key, RootCert: 'PEM' }],
  ...(Cas !== undefined ? { Cas } : {}),
});

describe('CA state', () => {
  test('the first set creates config and roots at its index; CAS 0 refuses a second initialisation', () => {
    const h = new Harness();
    assert.equal(h.store.caConfig().value, null);
    assert.equal(h.ok(set([root('r1', true)], 0)), true);
    const cfg = h.store.caConfig();
    assert.equal(cfg.value!.ClusterID, CLUSTER);
    assert.equal(cfg.value!.CreateIndex, 1);
    assert.equal(cfg.index, 1);
    const roots = h.store.caRoots();
    assert.equal(roots.index, 1);
    assert.deepEqual(roots.value.map((r) => [r.ID, r.Active, r.CreateIndex, r.ModifyIndex]), [['r1', true, 1, 1]]);
    assert.equal(h.store.caProviderState('r1')!.PrivateKey, 'KEY-1');
    assert.equal(h.ok(set([root('r2', true)], 0)), false);
    assert.equal(h.store.caRoots().value[0]!.ID, 'r1');
  });

  test('a rotation with CAS on the config ModifyIndex keeps the old root inactive and its CreateIndex', () => {
    const h = new Harness();
    h.ok(set([root('r1', true)], 0));
    assert.equal(h.ok(set([root('r1', false), root('r2', true)], 99, 'KEY-2')), false);
    assert.equal(h.ok(set([root('r1', false), root('r2', true)], 1, 'KEY-2')), true);
    const roots = h.store.caRoots();
    assert.deepEqual(roots.value.map((r) => [r.ID, r.Active, r.CreateIndex]), [['r1', false, 1], ['r2', true, 3]]);
    assert.equal(h.store.caConfig().value!.CreateIndex, 1);
    assert.equal(h.store.caConfig().value!.ModifyIndex, 3);
    // Provider state follows the command: the old root's key is dropped.
    assert.equal(h.store.caProviderState('r1'), null);
    assert.equal(h.store.caProviderState('r2')!.PrivateKey, 'KEY-2');
  });

  test('not exactly one active root is refused and changes nothing', () => {
    const h = new Harness();
    h.ok(set([root('r1', true)], 0));
    const err = h.fail({ ...set([root('r1', true), root('r2', true)]) });
    assert.equal(err.code, 'ERR_INVALID_REQUEST');
    assert.match(err.message, /exactly one root must be active, found 2/);
    assert.deepEqual(h.store.caRoots().value.map((r) => r.ID), ['r1']);
    assert.equal(h.store.caRoots().index, 1);
  });

  test('a roots read wakes on a CA write, a config-entry write does not wake it', async () => {
    const h = new Harness();
    h.ok(set([root('r1', true)], 0));
    const ws = h.store.watchSet();
    h.store.caRoots(ws);
    const woke = ws.wait();
    h.ok({ type: 'configEntrySet', Entry: { Kind: 'service-defaults', Name: 'web', Protocol: 'tcp' } });
    const pending = Symbol('pending');
    assert.equal(await Promise.race([woke, new Promise((r) => setImmediate(() => r(pending)))]), pending);
    h.ok(set([root('r1', false), root('r2', true)]));
    assert.equal(await woke, true);
  });

  test('the command round-trips through the codec', () => {
    const cmd = set([root('r1', true)], 0);
    assert.deepEqual(decodeCommand(encodeCommand(cmd, 5)), { ...cmd, now: 5 });
  });

  test('snapshot and restore carry config, roots and provider state; a snapshot without the CA loads empty', () => {
    const h = new Harness();
    h.ok(set([root('r1', false), root('r2', true)], 0, 'KEY-2'));
    const copy = new StateStore();
    copy.restore(h.store.snapshot());
    assert.deepEqual(copy.caRoots(), h.store.caRoots());
    assert.deepEqual(copy.caConfig(), h.store.caConfig());
    assert.equal(copy.caProviderState('r2')!.PrivateKey, 'KEY-2');
    assert.deepEqual(Buffer.from(copy.snapshot()), Buffer.from(h.store.snapshot()));
    const old = JSON.parse(Buffer.from(new StateStore().snapshot()).toString().slice('TRELLIS-STATE\n'.length));
    delete old.connectCA;
    const legacy = new StateStore();
    legacy.restore(Buffer.from('TRELLIS-STATE\n' + JSON.stringify(old)));
    assert.equal(legacy.caConfig().value, null);
    assert.deepEqual(legacy.caRoots().value, []);
  });
});
