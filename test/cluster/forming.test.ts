// Three real server processes form one cluster through -bootstrap-expect 3 and -retry-join; writes
// sent to a follower are forwarded to the leader; reads in every consistency mode answer on every
// server (a default read on a follower sees the leader's latest write); the operator endpoints show
// the configuration.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runTrellis } from '../support/index.ts';
import { Cluster, FAST_RAFT, waitFor, type ServerProc } from './cluster.ts';

describe('three servers with -bootstrap-expect 3', () => {
  let c: Cluster;
  let leader: ServerProc;
  let failed = false;

  before(async () => {
    c = await Cluster.create(3, { config: FAST_RAFT });
    leader = await c.formed();
  });
  after(async () => {
    if (failed) c.dumpLogs();
    await c?.dispose();
  });

  const check = (name: string, fn: () => Promise<void>) => test(name, async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  check('one cluster: every server names the same leader and the same three voters', async () => {
    for (const s of c.servers) {
      const conf = await s.getJson<{ Servers: Array<{ Node: string; Address: string; Leader: boolean; Voter: boolean }> }>('/v1/operator/raft/configuration');
      assert.deepEqual(conf.Servers.map((x) => x.Node).sort(), ['s1', 's2', 's3']);
      assert.ok(conf.Servers.every((x) => x.Voter));
      assert.deepEqual(conf.Servers.filter((x) => x.Leader).map((x) => x.Address), [leader.rpcAddr]);
    }
    // Every founder writes the first configuration itself; safety needs them to be identical.
    const sets = c.servers.map((s) => /bootstrapping the cluster with the agreed founding set: members=(\{[^}]*\})/.exec(s.log())?.[1]);
    assert.ok(sets.every((x) => x !== undefined), 'every founder bootstrapped');
    assert.equal(new Set(sets).size, 1, 'with the identical configuration');
  });

  check('a write to a follower is forwarded to the leader and readable everywhere', async () => {
    const follower = c.servers.find((s) => s !== leader)!;
    const put = await follower.request('PUT', '/v1/kv/forwarded', { body: 'via-follower' });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.text, 'true');
    for (const s of c.servers) {
      const r = await s.request('GET', '/v1/kv/forwarded?raw&consistent');
      assert.equal(r.status, 200, `${s.name}: ${r.text}`);
      assert.equal(r.text, 'via-follower');
      assert.equal(r.headers['x-consul-knownleader'], 'true');
    }
  });

  check('CAS through a follower keeps its semantics (the leader decides)', async () => {
    const follower = c.servers.find((s) => s !== leader)!;
    assert.equal((await follower.request('PUT', '/v1/kv/cas?cas=0', { body: 'first' })).text, 'true');
    assert.equal((await follower.request('PUT', '/v1/kv/cas?cas=0', { body: 'second' })).text, 'false');
    const r = await leader.request('GET', '/v1/kv/cas?raw&consistent');
    assert.equal(r.text, 'first');
  });

  check('stale reads answer on a follower with X-Consul-LastContact', async () => {
    const follower = c.servers.find((s) => s !== leader)!;
    const r = await follower.request('GET', '/v1/kv/forwarded?stale');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-consul-knownleader'], 'true');
    assert.match(String(r.headers['x-consul-lastcontact']), /^\d+$/);
  });

  check('a default-mode read on a follower right after a write to the leader sees the write', async () => {
    // Read-your-writes through the leader's index: the follower asks the leader for its commit index
    // (under its lease) and waits until it has applied it, so no retry or sleep is needed here.
    const followers = c.servers.filter((s) => s !== leader);
    for (let i = 0; i < 20; i++) {
      const put = await leader.request('PUT', '/v1/kv/ryw', { body: `v${i}` });
      assert.equal(put.status, 200, put.text);
      const f = followers[i % followers.length]!;
      const r = await f.request('GET', '/v1/kv/ryw?raw');
      assert.equal(r.status, 200, `${f.name}: ${r.text}`);
      assert.equal(r.text, `v${i}`, `${f.name} read its own (the leader's) write ${i}`);
      assert.equal(r.headers['x-consul-lastcontact'], '0');
      assert.equal(r.headers['x-consul-effective-consistency'], 'leader');
    }
  });

  check('status/leader and status/peers agree on every server', async () => {
    for (const s of c.servers) {
      assert.equal(await s.getJson<string>('/v1/status/leader'), leader.rpcAddr);
      assert.deepEqual((await s.getJson<string[]>('/v1/status/peers')).sort(), c.servers.map((x) => x.rpcAddr).sort());
    }
  });

  check('snapshot save on one follower and restore on another reset every server', async () => {
    const [f1, f2] = c.servers.filter((s) => s !== leader);
    assert.equal((await leader.request('PUT', '/v1/kv/snap/kept', { body: 'in the snapshot' })).status, 200);
    const file = path.join(os.tmpdir(), `trellis-cluster-snap-${process.pid}.snap`);
    try {
      const save = await runTrellis(['snapshot', 'save', '-http-addr', `127.0.0.1:${f1!.ports.http}`, file]);
      assert.equal(save.code, 0, save.stderr);
      assert.match(save.stdout + save.stderr, /Saved and verified snapshot to index \d+/);
      assert.equal((await leader.request('PUT', '/v1/kv/snap/lost', { body: 'after the snapshot' })).status, 200);
      const restore = await runTrellis(['snapshot', 'restore', '-http-addr', `127.0.0.1:${f2!.ports.http}`, file]);
      assert.equal(restore.code, 0, restore.stderr);
      for (const s of c.servers) {
        const keys = await s.getJson<string[]>('/v1/kv/snap/?keys&consistent');
        assert.deepEqual(keys, ['snap/kept'], s.name);
      }
      assert.equal((await f2!.request('PUT', '/v1/kv/snap/after-restore', { body: 'x' })).status, 200, 'writes continue');
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  check('the leader reconciles every server into the catalog as a consul instance', async () => {
    const rows = await waitFor('three consul instances', async () => {
      const r = await leader.getJson<Array<{ Node: string; ServicePort: number }>>('/v1/catalog/service/consul?consistent');
      return r.length === 3 ? r : undefined;
    }, 15_000);
    assert.deepEqual(rows.map((r) => `${r.Node}:${r.ServicePort}`).sort(), c.servers.map((s) => `${s.name}:${s.ports.server}`).sort());
  });
});
