// npm run bench:raft — three Raft nodes in three processes (gRPC transport, level storage on local
// disk); the leader's process runs a closed-loop load of 64-byte proposals at concurrency 1, 16 and 64
// for 10 s each. Prints commits/s, p50, p99, and this machine's synced-write rate (dd oflag=dsync, 4 KiB)
// measured in the same run, plus RSS of a node after applying --entries (default 1,000,000) with snapshots on.
//   npm run bench:raft [-- --seconds 10 --entries 1000000]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ProcCluster } from '../test/support/proccluster.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, entries: { type: 'string', default: '1000000' } } });
const seconds = Number(values.seconds);
const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'trellis-bench-raft-'));

function ddSyncRate(): string {
  const f = path.join(dir, 'dd.bin');
  const err = execFileSync('sh', ['-c', `dd if=/dev/zero of=${f} bs=4k count=2000 oflag=dsync 2>&1 >/dev/null`], { encoding: 'utf8' });
  const m = /copied, ([\d.]+) s/.exec(err);
  return m ? `${Math.round(2000 / Number(m[1]))} synced 4 KiB writes/s` : err.trim();
}

const cluster = new ProcCluster(['a', 'b', 'c'], dir);
try {
  console.log(`disk: ${ddSyncRate()} (dd bs=4k count=2000 oflag=dsync in ${dir})`);
  await cluster.boot();
  const leader = await cluster.leader();
  console.log(`| concurrency | commits/s | p50 ms | p99 ms | errors |`);
  console.log(`|---:|---:|---:|---:|---:|`);
  for (const c of [1, 16, 64]) {
    const r = await cluster.rpc(leader, { op: 'load', concurrency: c, durationMs: seconds * 1000 }, seconds * 1000 + 60_000);
    if (!r.ok) throw new Error(r.error);
    console.log(`| ${c} | ${Math.round(r.commits / r.seconds)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
  }
  const entries = Number(values.entries);
  if (entries > 0) {
    process.stdout.write(`memory: applying ${entries} entries at concurrency 64 ...`);
    let done = 0;
    const t0 = Date.now();
    while (done < entries) {
      const r = await cluster.rpc(leader, { op: 'load', concurrency: 64, durationMs: 5000 }, 120_000);
      done += r.commits;
      process.stdout.write(` ${done}`);
    }
    const st = await cluster.rpc(leader, { op: 'status' });
    const rss = (st.rss / 1048576).toFixed(0);
    console.log(`\nmemory: leader RSS ${rss} MB after ${st.status.appliedIndex} applied entries (snapshot index ${st.status.snapshotIndex}), ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
} finally {
  await cluster.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
