// A server whose data dir fills up (ENOSPC on the Raft log write) must not go on as if healthy:
// the write that hit the full disk is answered with an error naming the disk, the server stops
// claiming leadership and serving default (lease) reads at once, and it exits non-zero so its
// supervisor restarts it (etcd's choice; raftServer.ts explains why not an in-process resume).
// Restarted once space is freed, it has every acknowledged write and takes new ones.
//
// Real process, real disk: the data dir is a small tmpfs (needs root to mount; skipped otherwise),
// filled with a file of our own so that a few KV writes reach ENOSPC, then freed by deleting it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, closeIdleSockets, sleep, type HttpResult } from '../support/index.ts';

function mountTmpfs(dir: string, size: string): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message}`;
  }
}

test('disk full: the write fails naming the disk, the server stops leading and exits 1; restarted with space it has every acknowledged write', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-diskfull-'));
  const data = path.join(root, 'data');
  fs.mkdirSync(data);
  const cannot = mountTmpfs(data, '16m');
  if (cannot) {
    fs.rmSync(root, { recursive: true, force: true });
    t.skip(cannot);
    return;
  }
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ name: 'diskfull', mode: 'server', dir: root });

    // Leave about 1 MiB free: a few 64 KiB values then fill the Raft log's disk.
    const filler = path.join(data, 'filler');
    const st = fs.statfsSync(data);
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, st.bavail * st.bsize - (1 << 20))));

    const acked = new Map<string, string>();
    let failed: HttpResult | undefined;
    for (let i = 0; i < 200 && !failed; i++) {
      const value = `v${i}-${'x'.repeat(64 * 1024)}`;
      const r = await agent.request('PUT', `/v1/kv/fill/${i}`, { body: value });
      if (r.status === 200) {
        assert.equal(r.text.trim(), 'true');
        acked.set(`fill/${i}`, value);
      } else {
        failed = r;
      }
    }
    assert.ok(failed, 'the disk never filled up');
    assert.ok(acked.size > 0, 'no write succeeded before the disk filled');
    t.diagnostic(`the write on the full disk: ${failed.status} ${failed.text.trim()}`);
    assert.equal(failed.status, 500, failed.text);
    assert.match(failed.text, /no space left on device/i);
    assert.ok(failed.text.includes(data), `the error names the data dir: ${failed.text}`);

    // From now on it is not a healthy leader: if it still answers (it exits after a short grace),
    // it names no leader and serves no default read.
    const leader = await agent.request('GET', '/v1/status/leader', { timeoutMs: 5000 }).catch(() => undefined);
    if (leader) assert.equal(leader.json(), '', `a server that cannot write still reports a leader: ${leader.text}`);
    const read = await agent.request('GET', '/v1/kv/fill/0', { timeoutMs: 5000 }).catch(() => undefined);
    if (read) {
      assert.equal(read.status, 500, `a default read was served: ${read.status} ${read.text.slice(0, 200)}`);
      assert.match(read.text, /no space left on device/i);
    }
    t.diagnostic(`then: status/leader ${leader ? `${leader.status} ${leader.text}` : 'no answer (exited)'}; default read ${read ? `${read.status} ${read.text.slice(0, 80)}` : 'no answer (exited)'}`);
    const exit = await Promise.race([agent.waitExit(), sleep(30_000).then(() => undefined)]);
    assert.deepEqual(exit, { code: 1, signal: null }, 'the server exits with status 1 for its supervisor');

    // Space is freed; the supervisor's restart recovers every acknowledged write and takes new ones.
    fs.rmSync(filler);
    await agent.restart();
    for (const [key, value] of acked) {
      const r = await agent.request('GET', `/v1/kv/${key}?raw`);
      assert.equal(r.status, 200, `${key} after restart: ${r.status}`);
      assert.equal(r.text, value, `${key} lost or changed after restart`);
    }
    const after = await agent.request('PUT', '/v1/kv/after-restart', { body: 'ok' });
    assert.equal(after.status, 200, after.text);
    assert.equal((await agent.request('GET', '/v1/kv/after-restart?raw')).text, 'ok');
  } catch (err) {
    // The agent's log is the evidence; the temp dir is removed below.
    if (agent) process.stderr.write(`\n[e2e] agent diskfull log ends:\n${agent.logTail(80)}\n`);
    throw err;
  } finally {
    await agent?.dispose();
    closeIdleSockets();
    try {
      execFileSync('umount', [data], { stdio: 'pipe' });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
});
