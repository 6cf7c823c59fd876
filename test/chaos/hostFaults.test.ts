// Host faults (hostFaults.ts): the disk-stall shim and libfaketime, each on a bare Node 24 process
// first (LevelDB writes stop while the flag is set and the event loop goes on; Date.now steps while
// performance.now does not), then a short chaos run of real agents with both faults, which must
// pass every checker and show that each fault happened: the stalled server's applied Raft index
// stood still while the others' advanced, and the stepped agent's HTTP Date header moved by the step;
// a lock-delay still held between the stepped clock and a true one (before the leader stamped its
// own clock on every write, a server stepped ±60 s let a lock be retaken inside it).
// clock-jump (both clocks forward, kept) has its own short run: an agent fakes one clock or both.
// Needs Linux, gcc and libfaketime (installed by deploy/install-host-fault-deps.sh as root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binDir, repoRoot } from '../support/paths.ts';
import { HostFaults, prepareHostFaults, type HostFaultTools } from './hostFaults.ts';
import { parseArgs, type ChaosOptions } from './options.ts';
import { runChaos } from './run.ts';

let tools: HostFaultTools = {};
let why = '';
try {
  tools = prepareHostFaults(['disk-stall', 'clock-step']);
} catch (err) {
  why = (err as Error).message;
}
const node = path.join(binDir, 'node');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `script` under Node 24 with `env`; resolves with its stdout lines as they come. */
function child(script: string, env: Record<string, string>) {
  const p = spawn(node, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  p.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return { lines, exited, kill: () => p.kill('SIGKILL') };
}

test('disk-stall shim: LevelDB writes under the data dir stop while the flag is set, the event loop does not', { skip: why || false, timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-stall-test-'));
  const h = new HostFaults({ stallLib: tools.stallLib });
  const agent = { name: 'x', dir, url: '' };
  const classic = path.join(repoRoot, 'node_modules', 'classic-level', 'index.js');
  // Every 100 ms: the loop's tick and how many synced puts have completed.
  const c = child(`
    import { ClassicLevel } from ${JSON.stringify(classic)};
    const db = new ClassicLevel(${JSON.stringify(path.join(dir, 'data', 'db'))});
    await db.open();
    let puts = 0, ticks = 0;
    setInterval(() => { ticks++; console.log(ticks + ' ' + puts); }, 100);
    for (;;) { await db.put('k' + puts, 'v'.repeat(100), { sync: true }); puts++; }
  `, h.env(agent));
  try {
    const last = () => c.lines.at(-1)?.split(' ').map(Number) ?? [0, 0];
    while (last()[1]! < 20) await sleep(50);
    h.setStall(agent, true);
    await sleep(300);
    const [ticksA, putsA] = last();
    await sleep(1500);
    const [ticksB, putsB] = last();
    assert.equal(putsB, putsA, 'no put completed during the stall');
    assert.ok(ticksB! - ticksA! >= 8, `the event loop kept ticking during the stall (${ticksB! - ticksA!} ticks in 1.5 s)`);
    const counts = h.stallCounts(agent);
    assert.ok(counts.held >= 1 && counts.holding >= 1, `the shim holds a call: ${JSON.stringify(counts)}`);
    h.setStall(agent, false);
    await sleep(800);
    assert.ok(last()[1]! > putsB! + 5, 'puts resume after the stall');
    assert.equal(h.stallCounts(agent).holding, 0);
  } finally {
    c.kill();
    await c.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('clock-step: libfaketime steps Node 24\'s Date.now both ways, performance.now does not move', { skip: why || false, timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-clock-test-'));
  const h = new HostFaults({ faketimeLib: tools.faketimeLib });
  const agent = { name: 'x', dir, url: '' };
  // Every 100 ms: (Date.now - true time as this child started) and performance.now, both in ms.
  const c = child(`
    const d0 = Date.now(), p0 = performance.now();
    setInterval(() => console.log((Date.now() - d0 - (performance.now() - p0)) + ' ' + (performance.now() - p0)), 100);
  `, h.env(agent));
  try {
    const skew = () => Number(c.lines.at(-1)?.split(' ')[0] ?? NaN);
    while (c.lines.length < 3) await sleep(50);
    assert.ok(Math.abs(skew()) < 1000, `no step yet: ${skew()}`);
    for (const offset of [90, -45, 0]) {
      h.setClockOffset(agent, offset);
      // libfaketime re-reads the file within FAKETIME_CACHE_DURATION (1 s).
      const by = Date.now() + 3000;
      while (Date.now() < by && Math.abs(skew() - offset * 1000) > 1000) await sleep(100);
      assert.ok(Math.abs(skew() - offset * 1000) <= 1000, `Date.now stepped to ${offset} s: skew ${skew()} ms`);
    }
    const p = c.lines.map((l) => Number(l.split(' ')[1]));
    for (let i = 1; i < p.length; i++) assert.ok(p[i]! - p[i - 1]! < 1000 && p[i]! >= p[i - 1]!, `performance.now went ${p[i - 1]} → ${p[i]}`);
  } finally {
    c.kill();
    await c.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('clock-jump: libfaketime moves Node 24\'s performance.now and Date.now forward together; a timer due in the gap fires at once', { skip: why || false, timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-jump-test-'));
  const h = new HostFaults({ faketimeLib: tools.faketimeLib, fakeMonotonic: true });
  const agent = { name: 'x', dir, url: '' };
  // Every 100 ms: performance.now and Date.now since the child started; "fired" when a 20 s timer fires.
  const c = child(`
    const d0 = Date.now(), p0 = performance.now();
    setInterval(() => console.log((performance.now() - p0) + ' ' + (Date.now() - d0)), 100);
    setTimeout(() => console.log('fired ' + (performance.now() - p0)), 20000);
  `, h.env(agent));
  try {
    while (c.lines.length < 3) await sleep(50);
    const t0 = Date.now();
    h.setClockOffset(agent, 30);
    while (Date.now() - t0 < 4000 && !c.lines.some((l) => l.startsWith('fired'))) await sleep(100);
    const fired = c.lines.find((l) => l.startsWith('fired'));
    assert.ok(fired, `the 20 s timer fired within ${Date.now() - t0} ms of a 30 s jump`);
    await sleep(300);
    const [mono, wall] = c.lines.filter((l) => !l.startsWith('fired')).at(-1)!.split(' ').map(Number);
    const real = Date.now() - t0;
    assert.ok(mono! >= 30_000 && mono! < 30_000 + real + 2000, `performance.now jumped 30 s: ${mono} ms after ${real} ms of real time`);
    assert.ok(Math.abs(wall! - mono!) < 500, `Date.now moved with it: ${wall} vs ${mono}`);
  } finally {
    c.kill();
    await c.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('chaos with disk-stall and clock-step: every checker passes, and both faults really happened', { skip: why || false, timeout: 150_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-host-'));
  const seed = process.env.TRELLIS_CHAOS_SEED ?? String(Math.floor(Math.random() * 1e9));
  const opts = parseArgs(['--faults', 'disk-stall,clock-step', '--duration', '32s', '--recovery', '4s', '--seed', seed, '--out', out]) as ChaosOptions;
  const { report } = await runChaos(opts, (l) => process.stdout.write(`# ${l}\n`));
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.equal(report.verdict.ok, true, `seed ${seed}: ${report.verdict.summary}\n${md}`);
  assert.ok(report.register.ok >= 100, `only ${report.register.ok} register operations answered`);
  const stalls = report.faults.filter((f) => f.fault === 'disk-stall');
  const steps = report.faults.filter((f) => f.fault === 'clock-step');
  assert.ok(stalls.length >= 1 && steps.length >= 1, `both faults ran: ${report.faults.map((f) => f.fault).join(', ')}\n${md}`);
  for (const f of stalls) {
    const st = f.stall!;
    assert.ok(st.calls >= 1, `the shim held writes on ${f.targets[0]}: ${f.detail}`);
    const adv = (p: [number | null, number | null]) => (p[0] === null || p[1] === null ? NaN : p[1] - p[0]);
    const others = Object.values(st.others).map(adv);
    // The stalled server cannot persist, so it applies (almost) nothing; the majority goes on.
    assert.ok(others.every((n) => n >= 20), `the other servers kept applying during the stall: ${f.detail}`);
    assert.ok(adv(st.target) <= Math.min(...others) / 4, `the stalled server's applied index stood still: ${f.detail}`);
  }
  for (const f of steps) {
    const ck = f.clock!;
    assert.ok(ck.observedSkewS !== null && Math.abs(ck.observedSkewS - ck.offsetS) <= 2, `${f.targets[0]}'s clock moved by ${ck.offsetS} s: ${f.detail}`);
    // Lock-delay across the stepped clock and a true one, both ways: refused both times.
    assert.equal(ck.lockDelay?.length, 2, `the lock-delay probe ran both ways: ${f.detail}`);
    for (const l of ck.lockDelay!) assert.match(l, /: held$/, f.detail);
  }
  for (const f of report.faults) assert.ok(f.leaderAfterHealMs !== undefined, `no leader within 30 s after healing ${f.fault}`);
  fs.rmSync(out, { recursive: true, force: true });
});

test('chaos with clock-jump: every checker passes; the agent\'s clocks really jumped', { skip: why || false, timeout: 90_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-jump-'));
  const seed = process.env.TRELLIS_CHAOS_SEED ?? String(Math.floor(Math.random() * 1e9));
  const opts = parseArgs(['--faults', 'clock-jump', '--duration', '18s', '--recovery', '4s', '--seed', seed, '--out', out]) as ChaosOptions;
  const { report } = await runChaos(opts, (l) => process.stdout.write(`# ${l}\n`));
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.equal(report.verdict.ok, true, `seed ${seed}: ${report.verdict.summary}\n${md}`);
  const jumps = report.faults.filter((f) => f.fault === 'clock-jump');
  assert.ok(jumps.length >= 1, md);
  for (const f of jumps) {
    const ck = f.clock!;
    assert.ok(ck.jumpS! > 0 && ck.offsetS >= ck.jumpS!, f.detail);
    assert.ok(ck.observedSkewS !== null && Math.abs(ck.observedSkewS - ck.offsetS) <= 2, `${f.targets[0]}'s clocks jumped to +${ck.offsetS} s: ${f.detail}`);
    for (const l of ck.lockDelay ?? []) assert.match(l, /: held$/, f.detail);
    assert.ok(f.leaderAfterHealMs !== undefined, `a leader after ${f.fault}`);
  }
  fs.rmSync(out, { recursive: true, force: true });
});
