// A node whose disk refuses a write (ENOSPC, EIO) must stop at once, as if it had crashed: no longer
// leader, no reads served under its lease, nothing sent (no heartbeat, vote or acknowledgement), every
// caller told what failed; and a restart over the same storage, once writes succeed again, rejoins
// with everything that was acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode } from '../../src/node.ts';
import { MemoryNetwork } from '../../src/transport/memory.ts';
import { MemoryLogStore, MemorySnapshotStore } from '../../src/storage/memory.ts';
import type { Entry, HardState, Message } from '../../src/core/types.ts';
import { StorageIOError } from '../../src/errors.ts';

class Counter {
  values: string[] = [];
  apply(e: Entry) { this.values.push(Buffer.from(e.data).toString()); return this.values.length; }
  snapshot() { return Buffer.from(JSON.stringify(this.values)); }
  restore(d: Uint8Array) { this.values = JSON.parse(Buffer.from(d).toString()); }
}

/** A log store whose disk fills up on demand: saves fail as LevelLogStore's do on ENOSPC. */
class FullDiskLogStore extends MemoryLogStore {
  full = false;
  failedSaves = 0;
  override async save(entries: Entry[], hardState: HardState | undefined, sync: boolean): Promise<void> {
    if (this.full) {
      this.failedSaves++;
      const cause = Object.assign(new Error('IO error: /data/raft/log/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' });
      throw new StorageIOError(`/data/${this.name}/raft/log`, 'saving raft log entries', cause);
    }
    return super.save(entries, hardState, sync);
  }
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a leader whose log write fails steps down at once, sends nothing more, and a restart recovers', async (t) => {
  const net = new MemoryNetwork();
  const ids = ['a', 'b', 'c'];
  const stores = new Map(ids.map((id) => [id, { log: new FullDiskLogStore(id), snaps: new MemorySnapshotStore() }]));
  const nodes = new Map<string, { node: RaftNode<number>; fsm: Counter }>();
  const make = (id: string) => {
    const fsm = new Counter();
    const { log, snaps } = stores.get(id)!;
    const node = new RaftNode<number>({ id, transport: net.transport(id), logStore: log, snapshotStore: snaps, stateMachine: fsm, tickMs: 25, electionTicks: 10 });
    nodes.set(id, { node, fsm });
    return node;
  };
  for (const id of ids) await make(id).bootstrap(Object.fromEntries(ids.map((x) => [x, x])));
  t.after(() => Promise.all([...nodes.values()].map((n) => n.node.stop())));
  await Promise.all([...nodes.values()].map((n) => n.node.start()));
  const leaderOf = (exclude = '') => [...nodes.entries()].find(([id, n]) => id !== exclude && n.node.isLeader())?.[0];

  // A write that succeeds before the disk fills (retried: a loaded machine may re-elect meanwhile).
  const id = await until('a leader that commits', () => leaderOf());
  let first = id;
  for (let i = 0; ; i++) {
    try { await nodes.get(first)!.node.propose(Buffer.from('before')); break; } catch (err) {
      if (i > 20) throw err;
      first = await until('a leader', () => leaderOf());
    }
  }
  const victim = first;
  const v = nodes.get(victim)!;
  const leaderChanges: string[] = [];
  v.node.on('leaderChange', (e) => leaderChanges.push(e.leader));
  let fatal: Error | undefined;
  v.node.on('fatal', (e) => { fatal = e.error; });

  // The disk fills up. The next write fails; the caller hears that the disk failed, with its path.
  stores.get(victim)!.log.full = true;
  await assert.rejects(v.node.propose(Buffer.from('during')), (err: Error) => {
    assert.ok(err instanceof StorageIOError, `got ${err}`);
    assert.match(err.message, /No space left on device/);
    assert.match(err.message, new RegExp(`/data/${victim}/raft/log`));
    return true;
  });
  // At once (no election timeout later): not leader, no leader known, event fired, reads refused.
  assert.equal(v.node.isLeader(), false);
  assert.equal(v.node.status().role, 'follower');
  assert.equal(v.node.status().leader, '');
  assert.ok(fatal instanceof StorageIOError, 'the fatal event carries the storage error');
  assert.equal(leaderChanges.at(-1), '', 'leaderChange told the embedder this node no longer leads');
  assert.equal(v.node.failure, fatal);
  await assert.rejects(v.node.read(), StorageIOError);
  await assert.rejects(v.node.propose(Buffer.from('after')), StorageIOError);

  // It sends nothing any more: the others elect a leader among themselves and commit without it.
  const fromVictim: Message[] = [];
  net.setFilter((m) => { if (m.from === victim) fromVictim.push(m); return true; });
  const next = await until('a new leader', () => leaderOf(victim));
  let newLeader = next;
  for (let i = 0; ; i++) {
    try { await nodes.get(newLeader)!.node.propose(Buffer.from('later')); break; } catch (err) {
      if (i > 20) throw err;
      newLeader = await until('a leader', () => leaderOf(victim));
    }
  }
  assert.deepEqual(fromVictim, [], 'the failed node sent messages after its write failed');
  assert.equal(stores.get(victim)!.log.failedSaves, 1, 'no write was attempted after the failed one');

  // Space is freed; the embedder restarts the node over the same storage: it rejoins and catches up.
  stores.get(victim)!.log.full = false;
  await v.node.stop();
  const restarted = make(victim);
  await restarted.start();
  const leaderNode = nodes.get(newLeader)!.node;
  const commit = leaderNode.status().commitIndex;
  await until('the restarted node to catch up', () => restarted.status().appliedIndex >= commit);
  const values = nodes.get(victim)!.fsm.values;
  assert.ok(values.includes('before') && values.includes('later'), `restarted node applied ${JSON.stringify(values)}`);
  assert.deepEqual(values, nodes.get(newLeader)!.fsm.values.slice(0, values.length));
});
