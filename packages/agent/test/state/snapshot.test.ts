import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, SESSION_A, SESSION_B, bytes } from './helpers.ts';
import { StateStore } from '../../src/state/store.ts';
import { SnapshotFormatError } from '../../src/state/errors.ts';
import { ALL_TABLES } from '../../src/state/tables.ts';

/** A state that exercises every table and every derived index. */
function richState(): Harness {
  const h = new Harness();
  h.node('n1', '10.0.0.1');
  h.node('N2', '10.0.0.2');
  h.service('n1', 'web', { tags: ['v1', 'Primary'], status: 'passing' });
  h.service('N2', 'web', { id: 'web-2', tags: ['v2'], status: 'warning' });
  h.service('N2', 'db', { status: 'passing' });
  h.service('n1', 'gone');
  h.ok({ type: 'catalogDeregister', Node: 'n1', ServiceID: 'gone' }); // extinction index
  h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'critical', Definition: { HTTP: 'http://x', Interval: '10s' } } });
  const all = new Uint8Array(256).map((_, i) => i);
  h.ok({ type: 'kvSet', Key: 'bin', Value: all, Flags: 7 });
  h.ok({ type: 'kvSet', Key: 'app/config/a', Value: bytes('1') });
  h.ok({ type: 'kvSet', Key: 'app/config/b', Value: bytes('2') });
  h.ok({ type: 'kvSet', Key: 'app/old', Value: bytes('x') });
  h.ok({ type: 'kvDelete', Key: 'app/old' }); // tombstone
  h.session(SESSION_A, 'n1', { NodeChecks: ['serfHealth'], ServiceChecks: [{ ID: 'service:web' }], LockDelay: 15e9, TTL: '30s', Name: 'leader' });
  h.session(SESSION_B, 'N2', { Behavior: 'delete', LockDelay: 5e9 });
  h.ok({ type: 'kvLock', Key: 'locks/leader', Value: bytes('a'), Session: SESSION_A, now: 1_000 });
  h.ok({ type: 'kvLock', Key: 'locks/b', Value: bytes('b'), Session: SESSION_B, now: 1_000 });
  h.session('cccccccc-0000-4000-8000-000000000003', 'n1');
  h.ok({ type: 'kvLock', Key: 'locks/c', Value: bytes('c'), Session: 'cccccccc-0000-4000-8000-000000000003', now: 1_000 });
  h.ok({ type: 'sessionDestroy', ID: 'cccccccc-0000-4000-8000-000000000003', now: 2_000 }); // lock delay on locks/c
  return h;
}

/** Every query the store answers, over every name in the state. */
function everyQuery(s: StateStore): unknown {
  const services = ['web', 'db', 'gone', 'nope'];
  const nodes = ['n1', 'n2', 'N2', 'ghost'];
  return {
    lastIndex: s.lastIndex(),
    tables: ALL_TABLES.map((t) => s.tableIndex(t)),
    nodes: s.nodes(),
    node: nodes.map((n) => [s.node(n), s.nodeServices(n), s.nodeChecks(n), s.nodeSessions(n)]),
    services: s.services(),
    perService: services.map((n) => [
      s.serviceNodes(n), s.serviceNodes(n, { tag: 'primary' }), s.healthServiceNodes(n), s.healthServiceNodes(n, { passingOnly: true }), s.serviceChecks(n),
    ]),
    states: (['any', 'passing', 'warning', 'critical'] as const).map((st) => s.checksInState(st)),
    kv: ['bin', 'app/config/a', 'app/old', 'locks/leader', 'missing'].map((k) => [s.kvGet(k), s.kvLockDelay(k)]),
    lists: ['', 'app/', 'app/old', 'locks/', 'zzz'].map((p) => [s.kvList(p), s.kvKeys(p, '/'), s.kvKeys(p, '')]),
    sessions: [s.sessionList(), s.sessionGet(SESSION_A), s.sessionGet(SESSION_B)],
  };
}

describe('snapshot / restore', () => {
  test('round trip: every query answers the same, and the bytes are deterministic', () => {
    const h = richState();
    const snap = h.store.snapshot();
    const restored = new StateStore();
    restored.restore(snap);
    assert.deepEqual(everyQuery(restored), everyQuery(h.store));
    assert.deepEqual(restored.snapshot(), snap);
  });

  test('secondary indexes are rebuilt: the same later commands give the same state', () => {
    const h = richState();
    const restored = new StateStore();
    restored.restore(h.store.snapshot());
    const later = [
      { type: 'sessionDestroy', ID: SESSION_A, now: 3_000 }, // releases locks/leader (kvBySession), sets a delay
      { type: 'catalogDeregister', Node: 'n2', now: 3_000 }, // invalidates SESSION_B (sessionsByNode), deletes locks/b
      { type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' }, now: 3_000 },
      { type: 'kvLock', Key: 'locks/c', Value: bytes('z'), Session: 'nope', now: 3_000 }, // still lock-delayed: false
    ] as const;
    for (const [i, cmd] of later.entries()) {
      const a = h.store.apply(h.index + 1 + i, cmd as never);
      const b = restored.apply(h.index + 1 + i, cmd as never);
      assert.deepEqual(b, a);
    }
    assert.deepEqual(everyQuery(restored), everyQuery(h.store));
    assert.equal(h.store.kvGet('locks/b').value, null);
    assert.equal(h.store.kvGet('locks/leader').value!.Session, undefined);
  });

  test('restore wakes every blocking query, and indexes may go backwards', async () => {
    const old = new Harness();
    old.ok({ type: 'kvSet', Key: 'k', Value: bytes('old') });
    const snap = old.store.snapshot();

    const h = new Harness();
    for (let i = 0; i < 10; i++) h.ok({ type: 'kvSet', Key: 'k', Value: bytes(String(i)) });
    h.node('n1');
    const ws1 = h.store.watchSet();
    h.store.kvGet('k', ws1);
    const ws2 = h.store.watchSet();
    h.store.nodes(ws2);
    const waits = [ws1.wait(), ws2.wait()];
    h.store.restore(snap);
    assert.deepEqual(await Promise.all(waits), [true, true]);
    assert.equal(h.store.kvGet('k').index, 1);
    assert.equal(h.store.lastIndex(), 1);
    assert.equal(h.store.watchListenerCount(), 0);
  });

  const garbage: { name: string; data: () => Uint8Array; message: RegExp }[] = [
    { name: 'empty', data: () => new Uint8Array(0), message: /bad magic/ },
    { name: 'random bytes', data: () => new Uint8Array(64).map((_, i) => (i * 37) % 256), message: /bad magic/ },
    { name: 'magic but not JSON', data: () => bytes('TRELLIS-STATE\n{not json'), message: /not valid JSON/ },
    { name: 'magic but an array', data: () => bytes('TRELLIS-STATE\n[]'), message: /not an object/ },
    { name: 'future version', data: () => bytes('TRELLIS-STATE\n{"version":99}'), message: /unsupported snapshot version 99/ },
    { name: 'truncated', data: () => { const s = richState().store.snapshot(); return s.subarray(0, s.length - 10); }, message: /not valid JSON/ },
    { name: 'service on an unknown node', data: () => mutate((d) => { (d.services as { Node: string }[])[0]!.Node = 'ghost'; }), message: /services\[0\]: service on unknown node "ghost"/ },
    { name: 'bad check status', data: () => mutate((d) => { (d.checks as { Status: string }[])[0]!.Status = 'maintenance'; }), message: /checks\[0\]/ },
    { name: 'KV value not base64 text', data: () => mutate((d) => { (d.kvs as { Value: unknown }[])[0]!.Value = 5; }), message: /kvs\[0\]\.Value must be a string/ },
    { name: 'negative index', data: () => mutate((d) => { (d.nodes as { ModifyIndex: number }[])[0]!.ModifyIndex = -1; }), message: /nodes\[0\]\.ModifyIndex must be a non-negative integer/ },
    { name: 'bad session behavior', data: () => mutate((d) => { (d.sessions as { Behavior: string }[])[0]!.Behavior = 'x'; }), message: /sessions\[0\]\.Behavior/ },
    { name: 'unknown table index', data: () => mutate((d) => { (d.tableIndexes as Record<string, number>).bogus = 1; }), message: /unknown table "bogus"/ },
    { name: 'missing list', data: () => mutate((d) => { delete d.kvs; }), message: /kvs: missing or not a list/ },
  ];
  function mutate(f: (doc: Record<string, unknown>) => void): Uint8Array {
    const text = Buffer.from(richState().store.snapshot()).toString('utf8');
    const doc = JSON.parse(text.slice(text.indexOf('\n') + 1));
    f(doc);
    return bytes(`TRELLIS-STATE\n${JSON.stringify(doc)}`);
  }
  for (const g of garbage) {
    test(`refuses garbage (${g.name}) with a clear error and keeps the current state`, () => {
      const h = new Harness();
      h.ok({ type: 'kvSet', Key: 'keep', Value: bytes('me') });
      const before = h.store.snapshot();
      assert.throws(() => h.store.restore(g.data()), (e: unknown) => {
        assert.ok(e instanceof SnapshotFormatError);
        assert.equal(e.code, 'ERR_SNAPSHOT_INVALID');
        assert.match(e.message, /^state snapshot rejected: /);
        assert.match(e.message, g.message);
        return true;
      });
      assert.deepEqual(h.store.snapshot(), before);
    });
  }
});
