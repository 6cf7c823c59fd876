// Three Server instances in one process (real gRPC on loopback, level storage in temp dirs): the
// clustering paths end to end but fast enough for the unit suite. The process-level suites in
// test/cluster cover kill -9, restarts and the CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaults, type RuntimeConfig } from '../../src/config/runtime.ts';
import { Server } from '../../src/server/server.ts';
import { SessionTimers } from '../../src/server/sessionTimers.ts';
import { StateStore, type Command } from '../../src/state/index.ts';
import { RemoteError, RpcCallError } from '../../src/rpc/errors.ts';
import { quietLogger } from './helpers.ts';
import { freePort } from '../../../../test/support/ports.ts';


async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const kvSet = (Key: string, v: string): Command => ({ type: 'kvSet', Key, Value: new TextEncoder().encode(v) });
const kvValue = (s: Server, key: string) => {
  const e = s.store.kvGet(key).value;
  return e ? new TextDecoder().decode(e.Value ?? new Uint8Array()) : undefined;
};

const nodeId = (i: number) => `0000000${i + 1}-0000-4000-8000-000000000000`;

/** Server i of a cluster on `ports`, multiplier-1-like timing, joined to the others. */
function serverConfig(dir: string, i: number, ports: number[], o: Partial<RuntimeConfig>): RuntimeConfig {
  const base = defaults();
  return {
    ...base, serverMode: true, nodeName: `n${i + 1}`, datacenter: 'dc1', dataDir: path.join(dir, `n${i + 1}`),
    bindAddr: '127.0.0.1', advertiseAddrLan: '127.0.0.1', bootstrapExpect: 3,
    ports: { ...base.ports, server: ports[i]! },
    retryJoinLan: ports.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`), retryIntervalLanMs: 300,
    raftHeartbeatTimeoutMs: 500, raftElectionTimeoutMs: 500, raftLeaderLeaseTimeoutMs: 250,
    rpcHoldTimeoutMs: 1500,
    autopilot: { ...base.autopilot, serverStabilizationTimeMs: 1000 },
    ...o,
  };
}

describe('Server: three in one process', () => {
  let dir: string;
  let servers: Server[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-server-'));
    const ports = [await freePort(), await freePort(), await freePort()];
    servers = ports.map((_, i) => new Server({ config: serverConfig(dir, i, ports, {}), nodeId: nodeId(i), logger: quietLogger }));
    await Promise.all(servers.map((s) => s.start()));
    await waitFor('a leader known to all', () => {
      const leaders = servers.map((s) => s.raftStatus().leaderAddr);
      return leaders[0] !== '' && leaders.every((l) => l === leaders[0]);
    }, 20_000);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const leader = () => servers.find((s) => s.raft.started && s.raft.node.isLeader())!;
  const followers = () => servers.filter((s) => s !== leader());

  test('forms one cluster of three voters via -bootstrap-expect', () => {
    for (const s of servers) {
      const conf = s.raftConfiguration();
      assert.deepEqual(conf.Servers.map((x) => x.Node).sort(), ['n1', 'n2', 'n3']);
      assert.ok(conf.Servers.every((x) => x.Voter));
    }
  });

  test('a write on a follower returns the leader\'s result; a default read right after sees it', async () => {
    const f = followers()[0]!;
    const r = await f.apply(kvSet('k', 'v1'));
    assert.equal(r.ok, true);
    // The follower may not have applied it yet; the default-read barrier makes sure it has.
    await f.defaultRead();
    assert.equal(kvValue(f, 'k'), 'v1');
    const other = followers()[1]!;
    await other.consistentRead();
    assert.equal(kvValue(other, 'k'), 'v1');
  });

  test('results with bytes (txn KV get) and refusals survive forwarding', async () => {
    const f = followers()[0]!;
    await f.apply(kvSet('bin', 'x'));
    const txn = await f.apply({ type: 'txn', Ops: [{ KV: { Verb: 'get', Key: 'bin' } }] } as Command);
    assert.equal(txn.ok, true);
    const value = (txn as { value: { Results: Array<{ KV: { Value: Uint8Array } }> } }).value.Results[0]!.KV.Value;
    assert.ok(value instanceof Uint8Array);
    assert.equal(new TextDecoder().decode(value), 'x');
    const refused = await f.apply({ type: 'kvLock', Key: 'l', Value: new Uint8Array(), Session: 'no-such-session' } as Command);
    assert.equal(refused.ok, false);
  });

  test('a session created through a follower gets its TTL timer on the leader; destroyed by a txn, it loses it', async () => {
    const timers = servers.map((s) => new SessionTimers(s.store, (cmd) => s.apply(cmd), quietLogger));
    try {
      const l = leader();
      servers.forEach((s, i) => timers[i]!.setLeader(s === l));
      const onLeader = timers[servers.indexOf(l)]!;
      const f = followers()[0]!;
      assert.equal((await f.apply({ type: 'catalogRegister', Node: 'worker', Address: '10.0.0.9' } as Command)).ok, true);
      const r = await f.apply({ type: 'sessionCreate', Session: { ID: randomUUID(), Node: 'worker', TTL: '10s', NodeChecks: [] } } as Command);
      assert.equal(r.ok, true, JSON.stringify(r));
      const id = (r as { value: string }).value;
      // The leader's store applied the session before the forwarded apply answered.
      assert.equal(onLeader.has(id), true);
      for (const t of timers) if (t !== onLeader) assert.equal(t.has(id), false, 'only the leader keeps TTL timers');
      const d = await f.apply({ type: 'txn', Ops: [{ Session: { Verb: 'delete', Session: { ID: id } } }] } as Command);
      assert.equal(d.ok, true, JSON.stringify(d));
      assert.equal(onLeader.has(id), false);
    } finally {
      for (const t of timers) t.stop();
    }
  });

  test('operator errors from the leader arrive with their code and text', async () => {
    const f = followers()[0]!;
    await assert.rejects(f.removePeer({ address: '10.9.9.9:8300' }), (err: RemoteError) => {
      assert.equal(err.code, 'ERR_UNKNOWN_PEER');
      assert.equal(err.message, 'address "10.9.9.9:8300" was not found in the Raft configuration');
      return true;
    });
  });

  test('a snapshot restored through a follower replaces the state on every server', async () => {
    const l = leader();
    await l.apply(kvSet('before', 'snapshot'));
    // ~5 MB of state: about 27 restore entries, more than the window of entries kept in flight.
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 80; i += 16) await Promise.all(Array.from({ length: 16 }, (_, j) => l.apply(kvSet(`big/${i + j}`, big))));
    const { file } = await l.snapshot({ stale: false });
    assert.ok(file.length > 16 * 256 * 1024, `snapshot of ${file.length} bytes`);
    await l.apply(kvSet('after', 'snapshot'));
    await l.apply(kvSet('before', 'changed'));
    const f = followers()[1]!;
    await f.restore(file);
    for (const s of servers) {
      await s.consistentRead();
      assert.equal(kvValue(s, 'before'), 'snapshot', s.config.nodeName);
      assert.equal(kvValue(s, 'after'), undefined, s.config.nodeName);
      assert.equal(kvValue(s, 'big/79')?.length, 64 * 1024, s.config.nodeName);
    }
    // Writes continue above the restored index.
    const w = await f.apply(kvSet('post', 'restore'));
    assert.equal(w.ok, true);
    const snaps = await Promise.all(servers.map(async (s) => { await s.consistentRead(); return Buffer.from(s.store.snapshot()); }));
    assert.ok(snaps.every((b) => b.equals(snaps[0]!)), 'every server holds the same state');
  });

  test('a damaged snapshot is refused before anything is proposed', async () => {
    const l = leader();
    const { file } = await l.snapshot({ stale: true });
    const bad = Buffer.from(file);
    bad[bad.length - 5] ^= 0xff;
    const before = l.raft.node.status().lastIndex;
    await assert.rejects(followers()[0]!.restore(bad), /checksum mismatch/);
    assert.equal(l.raft.node.status().lastIndex, before);
    // A well-formed file whose state the store cannot read is refused too.
    assert.throws(() => new StateStore().restore(Buffer.from('nope')));
  });

  test('without a quorum, writes wait rpc_hold_timeout and then fail with "No cluster leader"', async () => {
    const l = leader();
    const [a, b] = followers();
    await a!.stop();
    await b!.stop();
    servers = servers.filter((s) => s === l);
    // The old leader steps down once it cannot reach a quorum (check-quorum).
    await waitFor('the leader steps down', () => !l.raft.node.isLeader(), 10_000);
    const t0 = Date.now();
    await assert.rejects(l.apply(kvSet('x', 'y')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NO_LEADER');
      assert.equal(err.message, 'No cluster leader');
      return true;
    });
    const waited = Date.now() - t0;
    assert.ok(waited >= 1400 && waited < 5000, `waited ${waited} ms (rpc_hold_timeout 1500 ms)`);
    assert.ok(!(new RpcCallError('x', 14, 'y', false).mayHaveArrived));
  });
});

describe('Server: autopilot in one process', () => {
  let dir: string;
  let servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a fourth server joins as a learner and is promoted; a dead one is removed after stabilization', { timeout: 40_000 }, async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-autopilot-'));
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    const founders = ports.slice(0, 3);
    servers = founders.map((_, i) => new Server({
      config: serverConfig(dir, i, founders, { autopilot: { ...defaults().autopilot, serverStabilizationTimeMs: 1000, cleanupDeadServers: true } }),
      nodeId: nodeId(i), logger: quietLogger,
    }));
    await Promise.all(servers.map((s) => s.start()));
    const leaderOf = () => servers.find((s) => s.raft.started && s.raft.node.isLeader());
    await waitFor('a leader', () => leaderOf(), 20_000);

    // Without -bootstrap-expect, joining through one address.
    const fourth = new Server({ config: serverConfig(dir, 3, ports, { bootstrapExpect: 0, retryJoinLan: [`127.0.0.1:${ports[0]}`] }), nodeId: nodeId(3), logger: quietLogger });
    servers.push(fourth);
    await fourth.start();
    const seen = new Set<string>();
    await waitFor('n4 promoted to voter', () => {
      const row = leaderOf()?.raftConfiguration().Servers.find((x) => x.Node === 'n4');
      if (row) seen.add(row.Voter ? 'voter' : 'learner');
      return row?.Voter;
    }, 20_000);
    assert.deepEqual([...seen].sort(), ['learner', 'voter']);
    assert.equal((await leaderOf()!.autopilotHealth()).servers.length, 4);

    // A follower dies; after server_stabilization_time without answers, autopilot removes it.
    const victim = servers.find((s) => s !== leaderOf() && s !== fourth)!;
    await victim.stop();
    servers = servers.filter((s) => s !== victim);
    await waitFor('the dead server is removed', () => {
      const conf = leaderOf()?.raftConfiguration();
      return conf && conf.Servers.length === 3 && !conf.Servers.some((x) => x.ID === victim.nodeId);
    }, 20_000);
    // The next autopilot round reports the smaller cluster, healthy again.
    const health = await waitFor('health of three', async () => {
      const h = await leaderOf()!.autopilotHealth();
      return h.servers.length === 3 && h.healthy ? h : undefined;
    }, 10_000);
    assert.equal(health.failureTolerance, 1);
    assert.equal((await fourth.apply(kvSet('after', 'cleanup'))).ok, true);
  });
});
