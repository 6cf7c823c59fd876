import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, SESSION_A, SESSION_B, bytes, text } from './helpers.ts';
import type { Command } from '../../src/state/types.ts';

const SEC = 1e9; // LockDelay is in nanoseconds, `now` in milliseconds.

describe('session create', () => {
  const cases: { name: string; setup?: (h: Harness) => void; session: Record<string, unknown>; code: string; message: string }[] = [
    { name: 'missing ID', session: { ID: '', Node: 'n1' }, code: 'ERR_INVALID_REQUEST', message: 'Missing session ID' },
    { name: 'unknown node', session: { ID: SESSION_A, Node: 'ghost' }, code: 'ERR_MISSING_NODE', message: 'Missing node registration' },
    { name: 'bad behavior', session: { ID: SESSION_A, Node: 'n1', Behavior: 'explode' }, code: 'ERR_INVALID_REQUEST', message: 'Invalid session behavior: explode' },
    { name: 'unknown check', session: { ID: SESSION_A, Node: 'n1', NodeChecks: ['serfHealth', 'nope'] }, code: 'ERR_MISSING_CHECK', message: "Missing check 'nope' registration" },
    {
      name: 'critical check',
      setup: (h) => h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'disk', Status: 'critical' } }),
      session: { ID: SESSION_A, Node: 'n1', NodeChecks: ['disk'] }, code: 'ERR_CHECK_CRITICAL', message: "Check 'disk' is in critical state",
    },
    {
      name: 'critical service check',
      setup: (h) => h.service('n1', 'web', { status: 'critical' }),
      session: { ID: SESSION_A, Node: 'n1', ServiceChecks: [{ ID: 'service:web' }] }, code: 'ERR_CHECK_CRITICAL', message: "Check 'service:web' is in critical state",
    },
    {
      name: 'duplicate ID',
      setup: (h) => h.session(SESSION_A, 'n1'),
      session: { ID: SESSION_A, Node: 'n1' }, code: 'ERR_SESSION_EXISTS', message: `Session "${SESSION_A}" already exists`,
    },
  ];
  for (const c of cases) {
    test(`refuses: ${c.name}`, () => {
      const h = new Harness();
      h.node('n1');
      c.setup?.(h);
      const before = h.store.sessionList().value.length;
      assert.deepEqual(h.fail({ type: 'sessionCreate', Session: c.session as never }), { code: c.code, message: c.message });
      assert.equal(h.store.sessionList().value.length, before);
    });
  }

  test('defaults: Behavior release, canonical node name; queries by ID and node', () => {
    const h = new Harness();
    h.node('Node1');
    assert.equal(h.ok({ type: 'sessionCreate', Session: { ID: SESSION_A, Node: 'node1', NodeChecks: ['serfHealth'], TTL: '15s', LockDelay: 15 * SEC } }), SESSION_A);
    const s = h.store.sessionGet(SESSION_A.toUpperCase()).value!;
    assert.deepEqual(s, {
      ID: SESSION_A, Name: '', Node: 'Node1', LockDelay: 15 * SEC, Behavior: 'release', TTL: '15s', NodeChecks: ['serfHealth'], ServiceChecks: [],
      CreateIndex: 2, ModifyIndex: 2,
    });
    assert.deepEqual(h.store.nodeSessions('node1').value.map((x) => x.ID), [SESSION_A]);
    assert.equal(h.store.sessionGet(SESSION_A).index, 2);
  });
});

/** Two sessions on one node, both able to lock. */
function twoSessions(extra: Record<string, unknown> = {}): Harness {
  const h = new Harness();
  h.node('n1');
  h.session(SESSION_A, 'n1', { LockDelay: 15 * SEC, ...extra });
  h.session(SESSION_B, 'n1', { LockDelay: 15 * SEC });
  return h;
}

describe('locks between sessions', () => {
  test('two sessions race for a lock: exactly one wins; the loser gets false, not an error', () => {
    const h = twoSessions();
    const a = h.apply({ type: 'kvLock', Key: 'leader', Value: bytes('a'), Session: SESSION_A, now: 1_000 });
    const b = h.apply({ type: 'kvLock', Key: 'leader', Value: bytes('b'), Session: SESSION_B, now: 1_000 });
    assert.deepEqual([a.ok && a.value, b.ok && b.value], [true, false]);
    assert.equal(text(h.store.kvGet('leader').value!.Value), 'a');
  });

  test('a released lock can be taken at once (release sets no lock delay)', () => {
    const h = twoSessions();
    h.ok({ type: 'kvLock', Key: 'leader', Value: bytes('a'), Session: SESSION_A, now: 1_000 });
    h.ok({ type: 'kvUnlock', Key: 'leader', Value: bytes(''), Session: SESSION_A, now: 1_001 });
    assert.equal(h.ok({ type: 'kvLock', Key: 'leader', Value: bytes('b'), Session: SESSION_B, now: 1_002 }), true);
  });

  test('invalidating the holder starts the lock delay: re-acquire fails until it passes', () => {
    const h = twoSessions();
    h.ok({ type: 'kvLock', Key: 'leader', Value: bytes('a'), Session: SESSION_A, now: 1_000 });
    h.ok({ type: 'sessionDestroy', ID: SESSION_A, now: 2_000 });
    assert.equal(h.store.kvGet('leader').value!.Session, undefined, 'behavior release unlocks the key');
    assert.equal(text(h.store.kvGet('leader').value!.Value), 'a', 'and keeps its value');
    assert.equal(h.store.kvLockDelay('leader'), 17_000);
    assert.equal(h.ok({ type: 'kvLock', Key: 'leader', Value: bytes('b'), Session: SESSION_B, now: 16_999 }), false);
    assert.equal(h.store.kvGet('leader').value!.Session, undefined);
    assert.equal(h.ok({ type: 'kvLock', Key: 'leader', Value: bytes('b'), Session: SESSION_B, now: 17_000 }), true);
    assert.equal(h.store.kvGet('leader').value!.LockIndex, 2);
  });

  test('lock delay is capped at 60 s (Consul\'s MaxLockDelay)', () => {
    const h = twoSessions({ LockDelay: 3600 * SEC });
    h.ok({ type: 'kvLock', Key: 'k', Value: bytes(''), Session: SESSION_A, now: 0 });
    h.ok({ type: 'sessionDestroy', ID: SESSION_A, now: 1_000 });
    assert.equal(h.store.kvLockDelay('k'), 61_000);
  });

  test('a zero lock delay lets the next session in immediately', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1', { LockDelay: 0 });
    h.session(SESSION_B, 'n1');
    h.ok({ type: 'kvLock', Key: 'k', Value: bytes(''), Session: SESSION_A, now: 1 });
    h.ok({ type: 'sessionDestroy', ID: SESSION_A, now: 2 });
    assert.equal(h.ok({ type: 'kvLock', Key: 'k', Value: bytes(''), Session: SESSION_B, now: 3 }), true);
  });

  test('behavior delete removes held keys (with tombstones) instead of releasing them', () => {
    const h = twoSessions({ Behavior: 'delete' });
    h.ok({ type: 'kvSet', Key: 'svc/unrelated', Value: bytes('keep') });
    h.ok({ type: 'kvLock', Key: 'svc/a', Value: bytes('1'), Session: SESSION_A, now: 1 });
    h.ok({ type: 'kvLock', Key: 'svc/b', Value: bytes('2'), Session: SESSION_A, now: 1 });
    h.ok({ type: 'kvLock', Key: 'svc/c', Value: bytes('3'), Session: SESSION_B, now: 1 });
    h.ok({ type: 'sessionDestroy', ID: SESSION_A, now: 5 });
    assert.deepEqual(h.store.kvList('svc/').value.map((e) => e.Key), ['svc/c', 'svc/unrelated']);
    assert.equal(h.store.kvList('svc/a').index, h.index, 'the delete left a tombstone');
  });

  test('destroying an unknown session succeeds and changes nothing', () => {
    const h = twoSessions();
    const before = h.store.tableIndex('sessions');
    h.ok({ type: 'sessionDestroy', ID: 'cccccccc-0000-4000-8000-000000000003' });
    assert.equal(h.store.tableIndex('sessions'), before);
  });
});

describe('sessions invalidated by the catalog', () => {
  const invalidators: { name: string; cmd: Command }[] = [
    { name: 'deregistering the node', cmd: { type: 'catalogDeregister', Node: 'n1', now: 50 } },
    { name: 'a bound check turning critical', cmd: { type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' }, now: 50 } },
    { name: 'a bound check being deregistered', cmd: { type: 'catalogDeregister', Node: 'n1', CheckID: 'serfHealth', now: 50 } },
    { name: 'a bound service check turning critical', cmd: { type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'service:web', ServiceID: 'web', Status: 'critical' }, now: 50 } },
    { name: 'the bound service being deregistered', cmd: { type: 'catalogDeregister', Node: 'n1', ServiceID: 'web', now: 50 } },
  ];
  for (const c of invalidators) {
    test(`${c.name} invalidates the session and releases its locks with a lock delay`, () => {
      const h = new Harness();
      h.node('n1');
      h.service('n1', 'web', { status: 'passing' });
      h.session(SESSION_A, 'n1', { NodeChecks: ['serfHealth'], ServiceChecks: [{ ID: 'service:web' }], LockDelay: 10 * SEC });
      h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('x'), Session: SESSION_A, now: 10 });
      h.ok(c.cmd);
      assert.equal(h.store.sessionGet(SESSION_A).value, null);
      assert.equal(h.store.kvGet('lock').value!.Session, undefined);
      assert.equal(h.store.kvLockDelay('lock'), 10_050);
    });
  }

  test('a warning check does not invalidate; an unbound check going critical does not either', () => {
    const h = new Harness();
    h.node('n1');
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'disk', Status: 'passing' } });
    h.session(SESSION_A, 'n1', { NodeChecks: ['serfHealth'] });
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'warning' } });
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'disk', Status: 'critical' } });
    assert.ok(h.store.sessionGet(SESSION_A).value);
  });

  test('sessions of other nodes survive a node deregistration', () => {
    const h = new Harness();
    h.node('n1');
    h.node('n2');
    h.session(SESSION_A, 'n1');
    h.session(SESSION_B, 'n2');
    h.ok({ type: 'catalogDeregister', Node: 'n1' });
    assert.deepEqual(h.store.sessionList().value.map((s) => s.ID), [SESSION_B]);
  });
});
