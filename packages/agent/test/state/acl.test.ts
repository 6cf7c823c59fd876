// The ACL tables (state/acl.ts): create/update/delete of tokens, policies and roles with their
// indexes, links by name resolved to IDs, refusals that change nothing, bootstrap once (then only
// with the reset index), the leader's idempotent initialisation, and snapshot round trips.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { StateStore, ACL_ANONYMOUS_ACCESSOR_ID, ACL_GLOBAL_MANAGEMENT_ID } from '../../src/state/index.ts';

const GM = { ID: ACL_GLOBAL_MANAGEMENT_ID, Name: 'global-management', Rules: 'acl = "write"' };
const ANON = { AccessorID: ACL_ANONYMOUS_ACCESSOR_ID, SecretID: 'anonymous', Description: 'Anonymous Token' };

function initialised(): StateStore {
  const s = new StateStore();
  const r = s.apply(1, { type: 'aclInit', GlobalManagement: GM, Anonymous: ANON, ServerSecret: 'srv-secret' });
  assert.equal(r.ok, true);
  return s;
}

describe('ACL state', () => {
  test('init is idempotent and keeps the first server secret', () => {
    const s = initialised();
    s.apply(2, { type: 'aclInit', GlobalManagement: GM, Anonymous: ANON, ServerSecret: 'other' });
    assert.equal(s.aclServerSecret(), 'srv-secret');
    assert.equal(s.aclPolicies().value.length, 1);
    assert.equal(s.aclToken(ACL_ANONYMOUS_ACCESSOR_ID).value?.SecretID, 'anonymous');
    assert.equal(s.aclToken(ACL_ANONYMOUS_ACCESSOR_ID).value?.CreateIndex, 1);
  });

  test('a token links policies by name; indexes move on update', () => {
    const s = initialised();
    assert.equal(s.apply(2, { type: 'aclPolicySet', Create: true, Policy: { ID: 'p1', Name: 'kv-app', Rules: 'key_prefix "app/" { policy = "write" }' } }).ok, true);
    const r = s.apply(3, { type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a1', SecretID: 's1', Policies: [{ Name: 'kv-app' }] } });
    assert.ok(r.ok);
    assert.deepEqual(r.value.Policies, [{ ID: 'p1', Name: 'kv-app' }]);
    assert.equal(s.aclTokenBySecret('s1')?.AccessorID, 'a1');
    const u = s.apply(4, { type: 'aclTokenSet', Create: false, Token: { AccessorID: 'a1', SecretID: 's1', Description: 'x' } });
    assert.ok(u.ok);
    assert.equal(u.value.CreateIndex, 3);
    assert.equal(u.value.ModifyIndex, 4);
  });

  const refusals: [string, Record<string, unknown>, RegExp][] = [
    ['unknown policy name', { type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a2', SecretID: 's2', Policies: [{ Name: 'nope' }] } }, /No such ACL policy with name "nope"/],
    ['unknown policy ID', { type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a2', SecretID: 's2', Policies: [{ ID: 'nope' }] } }, /No such ACL policy with ID "nope"/],
    ['secret in use', { type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a2', SecretID: 'anonymous' } }, /SecretID is already in use/],
    ['update of a missing token', { type: 'aclTokenSet', Create: false, Token: { AccessorID: 'zz', SecretID: 'zz' } }, /Cannot find token/],
    ['duplicate policy name', { type: 'aclPolicySet', Create: true, Policy: { ID: 'p9', Name: 'global-management' } }, /already exists/],
    ['bad policy name', { type: 'aclPolicySet', Create: true, Policy: { ID: 'p9', Name: 'a b' } }, /invalid Name/],
    ['builtin policy rules', { type: 'aclPolicySet', Create: false, Policy: { ...GM, Rules: '' } }, /not permitted/],
    ['delete builtin policy', { type: 'aclPolicyDelete', ID: ACL_GLOBAL_MANAGEMENT_ID }, /not permitted/],
    ['delete anonymous token', { type: 'aclTokenDelete', AccessorID: ACL_ANONYMOUS_ACCESSOR_ID }, /not permitted/],
  ];
  for (const [label, cmd, msg] of refusals) {
    test(`refused, nothing changed: ${label}`, () => {
      const s = initialised();
      const rows = () => JSON.stringify([s.aclTokens(), s.aclPolicies(), s.aclRoles(), s.aclGeneration()]);
      const before = rows();
      const r = s.apply(5, cmd as never);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error.message, msg);
      assert.equal(rows(), before);
    });
  }

  test('bootstrap once, then only with the reset index', () => {
    const s = initialised();
    const tok = (n: string) => ({ AccessorID: `acc-${n}`, SecretID: `sec-${n}`, Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] });
    const first = s.apply(5, { type: 'aclBootstrap', Token: tok('1') });
    assert.ok(first.ok);
    assert.deepEqual(first.value, { Bootstrapped: true, ResetIndex: 5 });
    const again = s.apply(6, { type: 'aclBootstrap', Token: tok('2') });
    assert.ok(again.ok);
    assert.deepEqual(again.value, { Bootstrapped: false, ResetIndex: 5 });
    assert.equal(s.aclToken('acc-2').value, null);
    const wrongReset = s.apply(7, { type: 'aclBootstrap', Token: tok('2'), ResetIndex: 4 });
    assert.ok(wrongReset.ok && !wrongReset.value.Bootstrapped);
    const reset = s.apply(8, { type: 'aclBootstrap', Token: tok('2'), ResetIndex: 5 });
    assert.ok(reset.ok && reset.value.Bootstrapped);
    assert.equal(s.aclBootstrapIndex(), 8);
  });

  test('a bootstrap applied before the leader\'s aclInit makes the global-management policy it names', () => {
    const s = new StateStore();
    const tok = { AccessorID: 'acc-early', SecretID: 'sec-early', Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] };
    const r = s.apply(1, { type: 'aclBootstrap', Token: tok, GlobalManagement: GM });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.value, { Bootstrapped: true, ResetIndex: 1 });
    assert.equal(s.aclToken('acc-early').value?.Policies[0]?.Name, 'global-management');
    // The leader's aclInit afterwards keeps the policy and adds the anonymous token.
    assert.ok(s.apply(2, { type: 'aclInit', GlobalManagement: GM, Anonymous: ANON, ServerSecret: 'srv' }).ok);
    assert.equal(s.aclPolicies().value.length, 1);
  });

  test('initial management token counts as the bootstrap', () => {
    const s = new StateStore();
    s.apply(1, { type: 'aclInit', GlobalManagement: GM, Anonymous: ANON, ServerSecret: 'x', InitialManagement: { AccessorID: 'im', SecretID: 'root', Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] } });
    assert.equal(s.aclTokenBySecret('root')?.AccessorID, 'im');
    const b = s.apply(2, { type: 'aclBootstrap', Token: { AccessorID: 'b', SecretID: 'b' } });
    assert.ok(b.ok && !b.value.Bootstrapped);
  });

  test('aclGeneration: stays while no ACL row changes; moves on an ACL write and on any restore, even of the same rows', () => {
    const s = initialised();
    const g1 = s.aclGeneration();
    assert.equal(s.aclGeneration(), g1);
    assert.ok(s.apply(2, { type: 'kvSet', Key: 'k', Value: new Uint8Array([1]), Flags: 0n, now: 0 } as never).ok);
    assert.equal(s.aclGeneration(), g1, 'a KV write is not an ACL change');
    s.apply(3, { type: 'aclPolicySet', Create: true, Policy: { ID: 'p', Name: 'p', Rules: '' } });
    const g2 = s.aclGeneration();
    assert.notEqual(g2, g1);
    s.restore(s.snapshot());
    assert.notEqual(s.aclGeneration(), g2, 'same rows and indexes, but a restore');
  });

  test('snapshot round trip keeps rows, indexes, bootstrap index and secret', () => {
    const s = initialised();
    s.apply(2, { type: 'aclRoleSet', Create: true, Role: { ID: 'r1', Name: 'ops', Policies: [{ Name: 'global-management' }] } });
    s.apply(3, { type: 'aclBootstrap', Token: { AccessorID: 'b', SecretID: 'bs', Roles: [{ Name: 'ops' }] } });
    const t = new StateStore();
    // The generation is compared within one store (the resolver's cache): a restore changes it.
    const gen = t.aclGeneration();
    t.restore(s.snapshot());
    assert.deepEqual(Buffer.from(t.snapshot()), Buffer.from(s.snapshot()));
    assert.deepEqual(t.aclToken('b').value?.Roles, [{ ID: 'r1', Name: 'ops' }]);
    assert.equal(t.aclRoleByName('ops').value?.ID, 'r1');
    assert.equal(t.aclServerSecret(), 'srv-secret');
    assert.equal(t.aclBootstrapIndex(), 3);
    assert.notEqual(t.aclGeneration(), gen);
  });
});
