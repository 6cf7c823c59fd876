// The one order in which RaftNode and the simulator handle a Ready (src/readyPlan.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReady } from '../../src/readyPlan.ts';
import type { Entry, Message, Ready } from '../../src/core/types.ts';

const entry = (index: number, term = 2): Entry => ({ index, term, kind: 'normal', data: new Uint8Array([index]) });
const msg = (type: Message['type']): Message => ({ type, from: 'a', to: 'b', term: 2 });
const ready = (r: Partial<Ready>): Ready => ({ entries: [], messages: [], committed: [], readStates: [], mustSync: false, ...r });
const kinds = (rd: Ready, persisted = { term: 2, vote: 'a' }) => planReady(rd, persisted).map((s) => s.kind === 'send' ? `send${s.early ? '(early)' : ''}` : s.kind);

test('a follower applies committed entries while its write is in flight, and acknowledges only after it', () => {
  const rd = ready({ entries: [entry(5)], hardState: { term: 2, vote: 'a', commit: 5 }, committed: [entry(4), entry(5)], messages: [msg('appResp')], mustSync: true });
  assert.deepEqual(kinds(rd), ['startSave', 'apply', 'awaitSave', 'send', 'advance']);
});

test("a leader's replication traffic goes out before its own write", () => {
  const rd = ready({ entries: [entry(6)], committed: [entry(5)], messages: [msg('app'), msg('heartbeat')], mustSync: true, readStates: [{ index: 5, context: 'r1' }] });
  assert.deepEqual(kinds(rd), ['send(early)', 'startSave', 'apply', 'awaitSave', 'readStates', 'advance']);
});

test('a term or vote change holds every message until it is durable', () => {
  const rd = ready({ hardState: { term: 3, vote: 'a', commit: 5 }, messages: [msg('app')], mustSync: true });
  assert.deepEqual(kinds(rd), ['startSave', 'awaitSave', 'send', 'advance']);
  const vote = ready({ hardState: { term: 2, vote: 'b', commit: 5 }, messages: [msg('voteResp')], mustSync: true });
  assert.deepEqual(kinds(vote, { term: 2, vote: '' }), ['startSave', 'awaitSave', 'send', 'advance']);
});

test("a leader's snapshot is installed before the entries that follow it are written", () => {
  const snapshot = { meta: { index: 10, term: 2, conf: { voters: ['a', 'b'], learners: [] } }, data: new Uint8Array() };
  const rd = ready({ snapshot, entries: [entry(11)], hardState: { term: 2, vote: 'a', commit: 11 }, committed: [entry(11)], messages: [msg('appResp')], mustSync: true });
  assert.deepEqual(kinds(rd), ['installSnapshot', 'startSave', 'apply', 'awaitSave', 'send', 'advance']);
});

test('a Ready with nothing to write waits for no write', () => {
  assert.deepEqual(kinds(ready({ committed: [entry(3)], messages: [msg('heartbeatResp')] })), ['apply', 'send', 'advance']);
});
