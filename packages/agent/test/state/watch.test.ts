import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, SESSION_A, bytes } from './helpers.ts';
import type { WatchSet } from '../../src/state/watch.ts';

/** Resolves to 'fired' / 'aborted' if the wait settles within a few ticks, else 'pending'. */
async function settle(p: Promise<boolean>): Promise<'fired' | 'aborted' | 'pending'> {
  const pending = Symbol('pending');
  const r = await Promise.race([p, new Promise<typeof pending>((res) => setImmediate(() => res(pending)))]);
  return r === pending ? 'pending' : r ? 'fired' : 'aborted';
}

/** Starts a wait that is aborted when the test ends, so nothing leaks between tests. */
function waitOn(ws: WatchSet): { p: Promise<boolean>; ac: AbortController } {
  const ac = new AbortController();
  return { p: ws.wait(ac.signal), ac };
}

describe('watch sets: a write wakes only the queries that read what it changed', () => {
  interface Case {
    name: string;
    setup?: (h: Harness) => void;
    query: (h: Harness, ws: WatchSet) => void;
    relevant: (h: Harness) => void;
    unrelated: (h: Harness) => void;
  }
  const cases: Case[] = [
    {
      name: 'kvGet: the key',
      query: (h, ws) => h.store.kvGet('a/b', ws),
      relevant: (h) => h.ok({ type: 'kvSet', Key: 'a/b', Value: bytes('1') }),
      unrelated: (h) => h.ok({ type: 'kvSet', Key: 'a/bc', Value: bytes('1') }),
    },
    {
      name: 'kvList: a key under the prefix',
      query: (h, ws) => h.store.kvList('app/', ws),
      relevant: (h) => h.ok({ type: 'kvSet', Key: 'app/x/y', Value: bytes('1') }),
      unrelated: (h) => h.ok({ type: 'kvSet', Key: 'apq/x', Value: bytes('1') }),
    },
    {
      name: 'kvKeys: a delete under the prefix',
      setup: (h) => h.ok({ type: 'kvSet', Key: 'app/x', Value: bytes('1') }),
      query: (h, ws) => h.store.kvKeys('app/', '/', ws),
      relevant: (h) => h.ok({ type: 'kvDelete', Key: 'app/x' }),
      unrelated: (h) => h.ok({ type: 'kvDelete', Key: 'nothing-here' }),
    },
    {
      name: 'kvList: delete-tree of a parent prefix',
      setup: (h) => h.ok({ type: 'kvSet', Key: 'app/x/1', Value: bytes('1') }),
      query: (h, ws) => h.store.kvList('app/x/', ws),
      relevant: (h) => h.ok({ type: 'kvDeleteTree', Prefix: 'app/' }),
      unrelated: (h) => h.ok({ type: 'kvSet', Key: 'app/y', Value: bytes('1') }),
    },
    {
      name: 'healthServiceNodes: a check of the service',
      setup: (h) => { h.node('n1'); h.node('n2'); h.service('n1', 'web', { status: 'passing' }); h.service('n2', 'db', { status: 'passing' }); },
      query: (h, ws) => h.store.healthServiceNodes('web', {}, ws),
      relevant: (h) => h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'service:web', ServiceID: 'web', Status: 'critical' } }),
      unrelated: (h) => h.ok({ type: 'catalogRegister', Node: 'n2', SkipNodeUpdate: true, Check: { CheckID: 'service:db', ServiceID: 'db', Status: 'critical' } }),
    },
    {
      name: "healthServiceNodes: a node-level check of the service's node",
      setup: (h) => { h.node('n1'); h.node('n2'); h.service('n1', 'web'); },
      query: (h, ws) => h.store.healthServiceNodes('web', {}, ws),
      relevant: (h) => h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' } }),
      unrelated: (h) => h.ok({ type: 'catalogRegister', Node: 'n2', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' } }),
    },
    {
      name: 'serviceNodes: a new instance of the name (absent before)',
      setup: (h) => { h.node('n1'); },
      query: (h, ws) => h.store.serviceNodes('web', {}, ws),
      relevant: (h) => h.service('n1', 'web'),
      unrelated: (h) => h.service('n1', 'api'),
    },
    {
      name: 'nodes: the nodes table',
      query: (h, ws) => h.store.nodes(ws),
      relevant: (h) => h.node('n9'),
      unrelated: (h) => h.ok({ type: 'kvSet', Key: 'k', Value: bytes('1') }),
    },
    {
      name: 'nodeChecks: that node only',
      setup: (h) => { h.node('n1'); h.node('n2'); },
      query: (h, ws) => h.store.nodeChecks('n1', ws),
      relevant: (h) => h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'warning' } }),
      unrelated: (h) => h.ok({ type: 'catalogRegister', Node: 'n2', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'warning' } }),
    },
    {
      name: 'sessionGet: that session',
      setup: (h) => { h.node('n1'); h.session(SESSION_A, 'n1'); },
      query: (h, ws) => h.store.sessionGet(SESSION_A, ws),
      relevant: (h) => h.ok({ type: 'sessionDestroy', ID: SESSION_A }),
      unrelated: (h) => h.session('cccccccc-0000-4000-8000-000000000003', 'n1'),
    },
  ];

  for (const c of cases) {
    test(`${c.name}: unrelated write does not wake, relevant write does`, async () => {
      const h = new Harness();
      c.setup?.(h);
      const ws = h.store.watchSet();
      c.query(h, ws);
      const { p, ac } = waitOn(ws);
      c.unrelated(h);
      assert.equal(await settle(p), 'pending', 'an unrelated write woke the query');
      c.relevant(h);
      assert.equal(await settle(p), 'fired', 'the relevant write did not wake the query');
      ac.abort();
      assert.equal(h.store.watchListenerCount(), 0);
    });
  }
});

describe('watch sets: lifecycle', () => {
  test('a write between query and wait is not lost (the hub remembers recent changes)', async () => {
    const h = new Harness();
    const ws = h.store.watchSet();
    h.store.kvGet('k', ws);
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('1') });
    assert.equal(await settle(ws.wait()), 'fired');
  });

  test('an unrelated write between query and wait does not wake it', async () => {
    const h = new Harness();
    const ws = h.store.watchSet();
    h.store.kvGet('k', ws);
    h.ok({ type: 'kvSet', Key: 'other', Value: bytes('1') });
    const { p, ac } = waitOn(ws);
    assert.equal(await settle(p), 'pending');
    ac.abort();
    assert.equal(await p, false);
  });

  test('a refused command and a rolled-back txn wake nobody', async () => {
    const h = new Harness();
    const ws = h.store.watchSet();
    h.store.kvList('', ws);
    const { p, ac } = waitOn(ws);
    h.fail({ type: 'kvLock', Key: 'a', Value: bytes('1'), Session: 'nope' });
    assert.equal(h.ok({ type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'a', Value: bytes('1') } }, { KV: { Verb: 'get', Key: 'missing' } }] }).Errors?.length, 1);
    assert.equal(await settle(p), 'pending');
    ac.abort();
  });

  test('aborting a 10-minute wait resolves false and removes every listener', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const h = new Harness();
    h.node('n1');
    h.service('n1', 'web', { status: 'passing' });
    const ws = h.store.watchSet();
    h.store.healthServiceNodes('web', { passingOnly: true }, ws);
    h.store.kvList('a/', ws);
    h.store.kvGet('x', ws);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 10 * 60 * 1000);
    const p = ws.wait(ac.signal);
    assert.equal(h.store.watchListenerCount(), 3);
    t.mock.timers.tick(10 * 60 * 1000);
    assert.equal(await p, false);
    assert.equal(h.store.watchListenerCount(), 0);
  });

  test('a fired wait removes its listeners on every topic it registered', async () => {
    const h = new Harness();
    const ws = h.store.watchSet();
    h.store.kvGet('a', ws);
    h.store.kvGet('b', ws);
    h.store.kvList('p/', ws);
    const p = ws.wait();
    assert.equal(h.store.watchListenerCount(), 3);
    h.ok({ type: 'kvSet', Key: 'p/1', Value: bytes('1') });
    assert.equal(await p, true);
    assert.equal(h.store.watchListenerCount(), 0);
  });

  test('an already aborted signal resolves false without registering', async () => {
    const h = new Harness();
    const ws = h.store.watchSet();
    h.store.kvGet('a', ws);
    assert.equal(await ws.wait(AbortSignal.abort()), false);
    assert.equal(h.store.watchListenerCount(), 0);
  });

  test('many concurrent waiters on one key all wake, and all clean up', async () => {
    const h = new Harness();
    const waits = Array.from({ length: 100 }, () => {
      const ws = h.store.watchSet();
      h.store.kvGet('hot', ws);
      return ws.wait();
    });
    assert.equal(h.store.watchListenerCount(), 100);
    h.ok({ type: 'kvSet', Key: 'hot', Value: bytes('1') });
    assert.deepEqual(new Set(await Promise.all(waits)), new Set([true]));
    assert.equal(h.store.watchListenerCount(), 0);
  });
});
