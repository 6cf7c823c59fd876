// `npm run chaos` as a user runs it: bad input refused before anything starts (no namespace made),
// and Ctrl-C (SIGINT) during a run leaves no namespace and no agent behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { namespacesWithPrefix, netnsUnavailable } from '../support/netns.ts';
import { checkCounter, lockViolations } from './workloads.ts';
import { parseArgs, parseDuration } from './options.ts';
import { checkRegister, pruneUnobserved } from './run.ts';
import { lastFailureAfterHeal, latencySvg } from './report.ts';

const cli = path.join(import.meta.dirname, 'cli.ts');
const why = netnsUnavailable();

function runCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as NodeJS.ErrnoException & { code?: number }).code as unknown as number : 0, out: `${stdout}${stderr}` });
    });
  });
}

test('options: bad input is refused with a message naming it', () => {
  assert.throws(() => parseArgs(['--faults', 'partition,wobble']), /unknown fault "wobble"; known: partition/);
  assert.throws(() => parseArgs(['--duration', '120']), /a duration needs a unit .* e\.g\. 120s/);
  assert.throws(() => parseArgs(['--duration', 'soon']), /not a duration/);
  assert.throws(() => parseArgs(['--faults', 'disk']), /unknown fault "disk": did you mean disk-stall/);
  assert.throws(() => parseArgs(['--faults', 'clock']), /unknown fault "clock": did you mean clock-step/);
  assert.deepEqual((parseArgs(['--faults', 'disk-stall,clock-step']) as { faults: string[] }).faults, ['disk-stall', 'clock-step']);
  assert.ok(!(parseArgs([]) as { faults: string[] }).faults.includes('disk-stall'), 'host faults run only when named');
  assert.throws(() => parseArgs(['--faults', 'clock-step,clock-jump']), /clock-step and clock-jump cannot run together/);
  assert.throws(() => parseArgs(['--faults', 'netem']), /no netem qdisc/);
  assert.throws(() => parseArgs(['--servers', '4']), /use 3 or 5/);
  assert.throws(() => parseArgs(['--faults', 'partition-ring']), /needs --servers 5/);
  assert.throws(() => parseArgs(['--frobnicate']), /unknown option "--frobnicate"/);
  assert.throws(() => parseArgs(['--min-quorum', '4']), /--min-quorum 4: more than --servers 3/);
  assert.equal((parseArgs(['--min-quorum', '3']) as { minQuorum: number }).minQuorum, 3);
  assert.equal(parseDuration('--duration', '30m'), 1_800_000);
  const o = parseArgs(['--servers', '5', '--duration', '120s', '--faults', 'partition,kill,pause', '--seed', '42']);
  assert.ok(o !== 'help');
  assert.deepEqual([o.servers, o.durationMs, o.faults, o.seed], [5, 120_000, ['partition', 'kill', 'pause'], 42]);
});

test('checkers: lock overlaps and lost increments are found', () => {
  assert.equal(lockViolations([
    { worker: 0, session: 'a', agent: 's1', from: 0, to: 100 },
    { worker: 1, session: 'b', agent: 's2', from: 100, to: 200 },
  ]).length, 0);
  assert.equal(lockViolations([
    { worker: 0, session: 'a', agent: 's1', from: 0, to: 100 },
    { worker: 1, session: 'b', agent: 's2', from: 99, to: 200 },
  ]).length, 1);
  assert.equal(checkCounter(3, [1, 2, 3], 0).ok, true);
  assert.equal(checkCounter(4, [1, 2, 3], 1).ok, true);
  assert.match(checkCounter(2, [1, 2, 3], 5).explanation, /1 lost/);
  assert.match(checkCounter(5, [1, 2, 3], 1).explanation, /> 3 acknowledged \+ 1 indeterminate/);
  assert.match(checkCounter(3, [1, 2, 2, 3], 0).explanation, /acknowledged more than once.*2/);
});

test('register check: unobserved indeterminate writes are pruned first; a failed cas they could explain sends the check to the whole history; violations stay violations', () => {
  const put = (client: number, value: string, call: number, ret: number, known = true) =>
    ({ client, input: { kind: 'put' as const, key: 'k', value }, output: known ? { kind: 'put' as const } : undefined, call, ret: known ? ret : Infinity });
  const get = (client: number, value: string | null, call: number, ret: number) =>
    ({ client, input: { kind: 'get' as const, key: 'k' }, output: { kind: 'get' as const, value }, call, ret });
  const pending = Array.from({ length: 40 }, (_, i) => put(10 + i, `lost${i}`, 3 + i, 0, false));
  const h = [put(1, 'a', 1, 2), ...pending, get(2, 'a', 50, 51)];
  assert.equal(pruneUnobserved(h).length, 2);
  assert.equal(checkRegister(h).ok, true);
  // Read 'a' after 'b' was acknowledged later: not linearizable, with or without the pending writes.
  const bad = [put(1, 'a', 1, 2), put(1, 'b', 3, 4), ...pending, get(2, 'a', 60, 61)];
  assert.equal(checkRegister(bad).ok, false);
  const casFalse = [...h, { client: 3, input: { kind: 'cas' as const, key: 'k', expected: 'a', value: 'c' }, output: { kind: 'cas' as const, ok: false }, call: 52, ret: 53 }];
  assert.equal(pruneUnobserved(casFalse).length, 2 + 1 + 1); // one pending write kept for the failed cas
  assert.equal(checkRegister(casFalse).ok, true);
  // Only a pending write makes this cas fail (the register still holds 'a' when it runs): linearizable
  // with the write, not without it.
  const explained = [put(1, 'a', 1, 2), put(5, 'x', 3, 0, false),
    { client: 3, input: { kind: 'cas' as const, key: 'k', expected: 'a', value: 'c' }, output: { kind: 'cas' as const, ok: false }, call: 10, ret: 11 }];
  assert.equal(pruneUnobserved(explained).length, 3);
  assert.equal(checkRegister(explained).ok, true);
  // And without the pending write it really is not linearizable.
  assert.equal(checkRegister(explained.filter((op) => op.client !== 5)).ok, false);
});

test('the CLI refuses bad input and an existing namespace before making anything', { skip: why || false }, async () => {
  const bad = await runCli(['--faults', 'partition,bogus']);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /unknown fault "bogus"/);
  const noUnit = await runCli(['--duration', '90']);
  assert.equal(noUnit.code, 2);
  assert.match(noUnit.out, /--duration 90: a duration needs a unit/);
  const prefix = `tc${process.pid % 10000}`;
  execFileSync('ip', ['netns', 'add', `${prefix}-s2`]);
  try {
    const taken = await runCli(['--smoke', '--prefix', prefix]);
    assert.equal(taken.code, 2);
    assert.match(taken.out, new RegExp(`network namespace ${prefix}-s2 already exists; refusing`));
    assert.deepEqual(namespacesWithPrefix(prefix), [`${prefix}-s2`], 'nothing else was made');
  } finally {
    execFileSync('ip', ['netns', 'del', `${prefix}-s2`]);
  }
});

test('Ctrl-C during a run kills every agent and removes every namespace', { skip: why || false, timeout: 120_000 }, async () => {
  const prefix = `tq${process.pid % 10000}`;
  const child = spawn(process.execPath, [cli, '--smoke', '--prefix', prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (/cluster formed/.test(out)) resolve();
    });
    child.once('exit', () => reject(new Error(`exited before the cluster formed:\n${out}`)));
  });
  assert.equal(namespacesWithPrefix(prefix).length, 5, 'the bridge, 3 servers and 1 client namespaces exist while it runs');
  child.kill('SIGINT');
  const exit = await new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  assert.equal(exit.signal, 'SIGINT', out);
  assert.deepEqual(namespacesWithPrefix(prefix), []);
  // No agent process of this run is left (their command lines name the run's namespace prefix dir).
  const left = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`trellis-chaos-${prefix}-`); } catch { return false; }
  });
  assert.deepEqual(left, [], `agents left running: ${left.join(', ')}`);
  assert.match(out, /SIGINT: agents killed/);
});

test('the latency plot of a 30-minute run (300,000 requests) is drawn, with one dot per pixel and colour', () => {
  const samples = Array.from({ length: 300_000 }, (_, i) => ({
    workload: 'register' as const, kind: 'read', agent: 's1', at: i * 6, latencyMs: 1 + (i % 50), outcome: (i % 97 === 0 ? 'fail' : 'ok') as 'ok' | 'fail',
  }));
  const svg = latencySvg(samples, [{ fault: 'kill', start: 1000, end: 9000, targets: ['s1'], detail: 'kill -9 s1' }], 1_800_000, 3000);
  assert.match(svg, /^<svg[\s\S]*<\/svg>$/);
  const dots = svg.match(/<circle /g)?.length ?? 0;
  assert.ok(dots > 1000 && dots < 120_000, `${dots} dots`);
  assert.match(svg, /fill="#c62828"/);
});

test('last failure after a heal: a request the next fault failed is that fault\'s, not this one\'s recovery', () => {
  const at = (t: number, latencyMs: number, outcome: 'ok' | 'fail') => ({ workload: 'register' as const, kind: 'write', agent: 's1', at: t, latencyMs, outcome });
  const faults = [
    { fault: 'kill' as const, start: 1000, end: 9000, targets: ['s1'], detail: 'kill -9 s1' },
    { fault: 'pause' as const, start: 14_000, end: 20_000, targets: ['s2'], detail: 'SIGSTOP s2' },
  ];
  const samples = [
    at(9500, 40, 'fail'), // the first fault's recovery: 0.5 s after its heal
    at(10_000, 30, 'ok'),
    at(13_950, 3000, 'fail'), // sent before the second fault, failed by it
    at(21_000, 20, 'ok'),
  ];
  assert.deepEqual(lastFailureAfterHeal(samples, faults), [500, null]);
  // The same failure, had it ended before the next fault began, is the first fault's.
  assert.deepEqual(lastFailureAfterHeal([...samples, at(13_000, 50, 'fail')], faults), [4000, null]);
});
