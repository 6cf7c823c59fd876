// Throughput of LevelLogStore.save() with sync=true, by batch size (the driver persists one Ready
// per save, so batch size is how many proposals a Ready carries).
//   npx node packages/raft/bench/storage.ts [entryBytes=64] [seconds per batch size=2]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelLogStore } from '../src/storage/level.ts';
import type { Entry } from '../src/core/types.ts';

const entryBytes = Number(process.argv[2] ?? 64);
const seconds = Number(process.argv[3] ?? 2);
const dir = await mkdtemp(join(tmpdir(), 'trellis-bench-storage-'));
try {
  const store = new LevelLogStore(dir);
  await store.open();
  const data = new Uint8Array(entryBytes).fill(0x5a);
  let next = 1;
  console.log(`LevelLogStore save(sync=true), ${entryBytes}-byte entries, ${seconds}s per row, dir ${dir}`);
  for (const batch of [1, 16, 64, 256]) {
    let saves = 0;
    const start = performance.now();
    const latencies: number[] = [];
    while (performance.now() - start < seconds * 1000) {
      const entries: Entry[] = [];
      for (let i = 0; i < batch; i++) entries.push({ index: next++, term: 1, kind: 'normal', data });
      const t0 = performance.now();
      await store.save(entries, { term: 1, vote: 'a', commit: next - 1 }, true);
      latencies.push(performance.now() - t0);
      saves++;
    }
    const secs = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(2);
    console.log(`batch ${String(batch).padStart(3)}: ${(saves / secs).toFixed(0).padStart(6)} saves/s ` +
      `${((saves * batch) / secs).toFixed(0).padStart(8)} entries/s   p50 ${p(0.5)} ms  p99 ${p(0.99)} ms`);
  }
  await store.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
