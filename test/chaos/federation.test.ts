// chaos --federation (federation.ts): two datacenters with mesh gateways in network namespaces, two
// seeded WAN partitions under local and cross-datacenter calls. Asserts what issue 16's workload (e)
// asks: local calls keep working during the partitions, cross-datacenter calls fail fast during them
// and succeed again soon after each heal, a config entry written in the primary during a partition
// reaches the secondary after the heal. The seed is random (printed; TRELLIS_CHAOS_SEED=N repeats one).
// The verdict's rules are also run on made-up histories, to show each of them can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { namespacesWithPrefix } from '../support/netns.ts';
import { parseArgs, type ChaosOptions } from './options.ts';
import { LIMITS, federationUnavailable, judge, partitionFigures, runFederationChaos, type FedCall } from './federation.ts';

const why = federationUnavailable();

test('chaos --federation, two WAN partitions: local calls stay up, cross-DC calls fail fast and recover, config replicates after the heal', { skip: why || false, timeout: 175_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-fed-'));
  const seed = process.env.TRELLIS_CHAOS_SEED ?? String(Math.floor(Math.random() * 1e9));
  const opts = parseArgs(['--federation', '--partitions', '2', '--seed', seed, '--out', out]) as ChaosOptions;
  assert.equal(opts.federation, true);
  const { report } = await runFederationChaos({ durationMs: opts.durationMs, seed: opts.seed, partitions: opts.partitions!, outDir: out }, (l) => process.stdout.write(`# ${l}\n`));
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.equal(report.verdict.ok, true, `seed ${seed}: ${report.verdict.failures.join('; ')}\n${md}`);
  assert.equal(report.partitions.length, 2);
  for (const p of report.partitions) {
    const n = `seed ${seed}, partition ${p.index + 1}`;
    assert.ok(p.end - p.start >= 6000, `${n}: window ${p.end - p.start} ms`);
    assert.ok(p.local.calls >= 10, `${n}: only ${p.local.calls} local calls`);
    assert.ok(p.local.availability! >= LIMITS.localAvailability, `${n}: local availability ${p.local.availability}`);
    assert.ok(p.cross.failed >= 1 && p.cross.ok === 0 && p.cross.failed >= p.cross.calls - 1, `${n}: cross calls during the partition: ${JSON.stringify(p.cross)}`);
    assert.ok(p.cross.maxMs! <= LIMITS.failFastMs, `${n}: a cross call sent during the partition took ${p.cross.maxMs} ms`);
    assert.ok(p.recoveredAfterMs !== null && p.recoveredAfterMs <= LIMITS.recoveryMs, `${n}: cross calls back ${p.recoveredAfterMs} ms after heal`);
    assert.equal(p.configAbsentDuringPartition, true, `${n}: config entry in cloud during the partition`);
    assert.ok(p.configReplicatedAfterMs !== null, `${n}: config entry not replicated after the heal`);
  }
  // Cross calls did succeed outside the partitions (the path was really exercised end to end).
  assert.ok(report.totals.cross.ok >= 10, `only ${report.totals.cross.ok} cross-datacenter calls succeeded`);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { calls: FedCall[] };
  assert.equal(json.calls.length, report.totals.local.calls + report.totals.cross.calls);
  fs.rmSync(out, { recursive: true, force: true });
});

test('the verdict fails on a hung cross call, a local outage, a link that was not cut, no recovery, a lost config entry', () => {
  // One partition 10-20 s; calls every 500 ms on both paths.
  const history = (o: { localFailFrom?: number; crossOkDuring?: boolean; hangMs?: number; backAt?: number }): FedCall[] => {
    const calls: FedCall[] = [];
    for (let at = 0; at < 60_000; at += 500) {
      const during = at >= 10_000 && at < 20_000;
      calls.push({ at, kind: 'local', ok: !(o.localFailFrom !== undefined && during && at >= o.localFailFrom), ms: 5, what: '' });
      const crossOk = during ? o.crossOkDuring === true : at < 10_000 || at >= (o.backAt ?? 21_000);
      calls.push({ at, kind: 'cross', ok: crossOk, ms: during && !crossOk ? (at === 12_000 && o.hangMs ? o.hangMs : 2000) : 8, what: '' });
    }
    return calls;
  };
  const verdict = (calls: FedCall[], replicated: number | null = 1500, absent = true) =>
    judge([partitionFigures(calls, { index: 0, start: 10_000, end: 20_000, configEntry: 'x', configAbsentDuringPartition: absent, configReplicatedAfterMs: replicated })], 1);
  assert.deepEqual(verdict(history({})), { ok: true, failures: [] });
  assert.equal(partitionFigures(history({}), { index: 0, start: 10_000, end: 20_000, configEntry: 'x', configAbsentDuringPartition: true, configReplicatedAfterMs: 1 }).recoveredAfterMs, 1000);
  assert.deepEqual(verdict(history({ hangMs: 7990 })).failures, []);
  assert.match(verdict(history({ hangMs: 9000 })).failures.join(), /took 9000 ms \(> 8000 ms: hung/);
  // A call sent during the partition that hangs and is answered only after the heal is no fast failure either.
  const late = history({}).map((c) => (c.kind === 'cross' && c.at === 19_500 ? { ...c, ok: true, ms: 9500 } : c));
  assert.match(verdict(late).failures.join(), /took 9500 ms \(> 8000 ms: hung/);
  assert.match(verdict(history({ localFailFrom: 19_500 })).failures.join(), /local availability 0\.95/);
  assert.match(verdict(history({ crossOkDuring: true })).failures.join(), /no cross-datacenter call failed.*succeeded through a cut WAN link/);
  assert.match(verdict(history({ backAt: 60_000 })).failures.join(), /never succeeded again/);
  assert.match(verdict(history({ backAt: 55_000 })).failures.join(), /succeeded again only 35000 ms after the heal/);
  assert.deepEqual(verdict(history({ backAt: 35_000 })).failures, []);
  assert.match(verdict(history({}), null).failures.join(), /did not reach cloud/);
  assert.match(verdict(history({}), 1500, false).failures.join(), /readable in cloud during the partition/);
  assert.match(judge([], 2).failures.join(), /only 0 partition\(s\) of 2/);
});

test('--federation options: refused with the single-datacenter flags, --partitions only with it', () => {
  assert.throws(() => parseArgs(['--federation', '--servers', '5']), /--federation takes only --duration, --seed, --out, --partitions; not --servers/);
  assert.throws(() => parseArgs(['--federation', '--faults', 'kill']), /not --faults/);
  assert.throws(() => parseArgs(['--partitions', '2']), /--partitions counts WAN partitions: it goes with --federation/);
  assert.throws(() => parseArgs(['--federation', '--partitions', '0']), /--partitions 0: must be between 1 and 20/);
  assert.throws(() => parseArgs(['--federation', '--duration', '60']), /a duration needs a unit/);
  const o = parseArgs(['--federation', '--duration', '90s', '--seed', '4']) as ChaosOptions;
  assert.deepEqual([o.federation, o.durationMs, o.seed, o.partitions], [true, 90_000, 4, undefined]);
});

test('Ctrl-C during `npm run chaos -- --federation` removes its namespaces and stops its processes', { skip: why || false, timeout: 120_000 }, async () => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-fed-int-'));
  const child = spawn(process.execPath, [path.join(import.meta.dirname, 'cli.ts'), '--federation', '--duration', '60s', '--seed', '1', '--out', outDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); if (/set up in/.test(out)) resolve(); });
    child.once('exit', () => reject(new Error(`exited before the cast was up:\n${out}`)));
  });
  const prefix = /network namespaces (\w+)-onprem/.exec(out)?.[1];
  assert.ok(prefix, out);
  assert.equal(namespacesWithPrefix(prefix).length, 4, 'the bridge and three datacenter namespaces exist while it runs');
  const procs = descendants(child.pid!);
  assert.ok(procs.length >= 10, `the run's processes (2 servers, 2 gateways, 4 apps, 4 sidecars): ${procs.length}`);
  child.kill('SIGINT');
  const exit = await new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  assert.ok(exit.code === 130 || exit.signal === 'SIGINT', `${JSON.stringify(exit)}\n${out}`);
  assert.deepEqual(namespacesWithPrefix(prefix), []);
  await new Promise((r) => setTimeout(r, 500));
  const alive = procs.filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
  assert.deepEqual(alive, [], 'no process of the run is left');
  fs.rmSync(outDir, { recursive: true, force: true });
});

/** Every process below `pid` (from ps). */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const out: number[] = [];
  const walk = (p: number) => { for (const [c, pp] of rows) if (pp === p) { out.push(c!); walk(c!); } };
  walk(pid);
  return out;
}
