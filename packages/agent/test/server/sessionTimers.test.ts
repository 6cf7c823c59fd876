// The leader's session TTL timers follow what the state store applied (StateStore.onSessionChange),
// whatever path changed the session table, and a new leader rebuilds them from the table.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionTimers } from '../../src/server/sessionTimers.ts';
import type { Command, SessionChange } from '../../src/state/index.ts';
import { Harness, SESSION_A, SESSION_B } from '../state/helpers.ts';
import { quietLogger } from './helpers.ts';

const SESSION_C = 'cccccccc-0000-4000-8000-000000000003';

function setup(leader = true) {
  const h = new Harness();
  h.node('n1');
  const timers = new SessionTimers(h.store, async (cmd: Command) => h.apply(cmd), quietLogger);
  timers.setLeader(leader);
  return { h, timers };
}

const create = (id: string, ttl = '30s', more: Record<string, unknown> = {}): Command =>
  ({ type: 'sessionCreate', Session: { ID: id, Node: 'n1', NodeChecks: ['serfHealth'], TTL: ttl, ...more } }) as Command;

describe('session TTL timers follow the state store', () => {
  test('the store reports created, destroyed and reset, after the apply, never for a refused command', () => {
    const h = new Harness();
    h.node('n1');
    const seen: SessionChange[] = [];
    const off = h.store.onSessionChange((c) => seen.push(c));
    h.ok(create(SESSION_A));
    h.fail(create(SESSION_A)); // a taken ID: refused, no event
    h.ok({ type: 'sessionDestroy', ID: SESSION_A });
    h.ok({ type: 'sessionDestroy', ID: SESSION_A }); // already gone: no event
    const snap = h.store.snapshot();
    h.store.restore(snap);
    off();
    h.ok(create(SESSION_B));
    assert.deepEqual(seen.map((c) => (c.type === 'created' ? `created ${c.session.ID} ${c.session.TTL}` : c.type === 'destroyed' ? `destroyed ${c.id}` : c.type)),
      [`created ${SESSION_A} 30s`, `destroyed ${SESSION_A}`, 'reset']);
  });

  test('a session created with a TTL gets its timer; one without a TTL does not', () => {
    const { h, timers } = setup();
    h.ok(create(SESSION_A));
    h.ok(create(SESSION_B, ''));
    assert.equal(timers.has(SESSION_A), true);
    assert.equal(timers.has(SESSION_B), false);
    timers.stop();
  });

  test('destroyed by session/destroy, a txn, a critical check or a deregistered node: the timer goes', () => {
    const { h, timers } = setup();
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'disk', Status: 'passing' } } as Command);
    h.node('n2', '10.0.0.2');
    h.ok(create(SESSION_A));
    h.ok(create(SESSION_B));
    h.ok(create(SESSION_C, '30s', { NodeChecks: ['disk'] }));
    const onN2 = 'dddddddd-0000-4000-8000-000000000004';
    h.ok(create(onN2, '30s', { Node: 'n2' }));
    for (const id of [SESSION_A, SESSION_B, SESSION_C, onN2]) assert.equal(timers.has(id), true, id);

    h.ok({ type: 'sessionDestroy', ID: SESSION_A });
    assert.equal(timers.has(SESSION_A), false, 'session/destroy');
    const r = h.ok({ type: 'txn', Ops: [{ Session: { Verb: 'delete', Session: { ID: SESSION_B } } }] } as Command & { type: 'txn' });
    assert.equal(r.Errors, null);
    assert.equal(timers.has(SESSION_B), false, 'txn session delete');
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'disk', Status: 'critical' } } as Command);
    assert.equal(timers.has(SESSION_C), false, 'invalidated by its check turning critical');
    h.ok({ type: 'catalogDeregister', Node: 'n2' } as Command);
    assert.equal(timers.has(onN2), false, 'invalidated with its node');
    timers.stop();
  });

  test('a txn that fails changes nothing, so the timer stays', () => {
    const { h, timers } = setup();
    h.ok(create(SESSION_A));
    const r = h.ok({ type: 'txn', Ops: [
      { Session: { Verb: 'delete', Session: { ID: SESSION_A } } },
      { KV: { Verb: 'check-index', Key: 'missing', Index: 99 } },
    ] } as Command & { type: 'txn' });
    assert.notEqual(r.Errors, null);
    assert.equal(h.store.sessionGet(SESSION_A).value?.ID, SESSION_A);
    assert.equal(timers.has(SESSION_A), true);
    timers.stop();
  });

  test('a follower keeps no timers; a new leader rebuilds them from the table; losing leadership clears them', () => {
    const { h, timers } = setup(false);
    h.ok(create(SESSION_A));
    h.ok(create(SESSION_B, ''));
    assert.equal(timers.has(SESSION_A), false);
    timers.setLeader(true);
    assert.equal(timers.has(SESSION_A), true);
    assert.equal(timers.has(SESSION_B), false);
    timers.setLeader(false);
    assert.equal(timers.has(SESSION_A), false);
    timers.stop();
  });

  test('a restore replaces the timers with the restored table\'s', () => {
    const { h, timers } = setup();
    h.ok(create(SESSION_A));
    const snap = h.store.snapshot();
    h.ok({ type: 'sessionDestroy', ID: SESSION_A });
    h.ok(create(SESSION_B));
    h.store.restore(snap);
    assert.equal(timers.has(SESSION_A), true);
    assert.equal(timers.has(SESSION_B), false);
    timers.stop();
  });

  test('renewing re-arms a live session; stopped timers no longer follow the store', () => {
    const { h, timers } = setup();
    h.ok(create(SESSION_A));
    timers.renew(SESSION_A);
    assert.equal(timers.has(SESSION_A), true);
    timers.stop();
    h.ok(create(SESSION_B));
    assert.equal(timers.has(SESSION_B), false);
    assert.throws(() => timers.renew(SESSION_B), /leader/i);
  });
});
