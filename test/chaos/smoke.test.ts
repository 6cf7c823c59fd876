// The CI chaos run (`npm run chaos -- --smoke`): 3 servers and a client in network namespaces, 45 s
// of leader isolation, partition, kill -9, SIGSTOP and packet loss under the register, lock and
// counter workloads, then 8 s of recovery. Every checker must pass, and must have had something to
// check. The seed is random (printed; TRELLIS_CHAOS_SEED=N repeats one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { netnsUnavailable } from '../support/netns.ts';
import { parseArgs, SMOKE_FAULTS, type ChaosOptions } from './options.ts';
import { runChaos } from './run.ts';

const why = netnsUnavailable();

test('chaos smoke: linearizable, no lost acknowledged increment, no two lock holders', { skip: why || false, timeout: 170_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-smoke-'));
  const seed = process.env.TRELLIS_CHAOS_SEED ?? String(Math.floor(Math.random() * 1e9));
  const opts = parseArgs(['--smoke', '--seed', seed, '--out', out]) as ChaosOptions;
  const lines: string[] = [];
  const { report } = await runChaos(opts, (l) => { lines.push(l); process.stdout.write(`# ${l}\n`); });
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.equal(report.verdict.ok, true, `seed ${seed}: ${report.verdict.summary}\n${md}`);
  assert.equal(report.register.linearizable, true);
  assert.equal(report.counter.ok, true, report.counter.explanation);
  assert.deepEqual(report.lock.violations, []);
  // The checkers had real histories, and the faults really happened and were healed.
  assert.ok(report.register.ok >= 200, `only ${report.register.ok} register operations answered`);
  assert.ok(report.counter.acked >= 20, `only ${report.counter.acked} increments acknowledged`);
  assert.ok(report.lock.holds >= 5, `only ${report.lock.holds} lock holds`);
  assert.ok(report.faults.length >= 3, `only ${report.faults.length} faults injected`);
  assert.ok(new Set(report.faults.map((f) => f.fault)).size >= 3, 'at least three kinds of fault');
  for (const f of report.faults) {
    assert.ok(SMOKE_FAULTS.includes(f.fault));
    assert.ok(f.end !== undefined && f.end > f.start, `${f.fault} was healed`);
  }
  assert.ok(report.phases.fault.failed > 0, 'faults made some requests fail (or the faults did nothing)');
  // Every cluster recovers: a leader named by all servers after each heal.
  for (const f of report.faults) assert.ok(f.leaderAfterHealMs !== undefined, `no leader within 30 s after healing ${f.fault}`);
  for (const file of ['report.json', 'report.md', 'latency.svg']) assert.ok(fs.statSync(path.join(out, file)).size > 100, file);
  assert.match(fs.readFileSync(path.join(out, 'latency.svg'), 'utf8'), /<svg[\s\S]*fill="#f4b183"/);
  fs.rmSync(out, { recursive: true, force: true });
});
