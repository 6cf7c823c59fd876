// A checker that never fails is not a checker: agents started with a planted bug
// (TRELLIS_CHAOS_PLANT, packages/agent/src/server/chaosPlant.ts) must be caught within a run shorter
// than the smoke run, by the checker that bug breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { netnsUnavailable } from '../support/netns.ts';
import { parseArgs, type ChaosOptions } from './options.ts';
import { runChaos } from './run.ts';

const why = netnsUnavailable();

async function planted(bug: string) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `trellis-chaos-${bug}-`));
  const opts = parseArgs(['--smoke', '--plant', bug, '--duration', '15s', '--recovery', '3s', '--faults', 'partition-leader', '--seed', '7', '--out', out]) as ChaosOptions;
  const { report } = await runChaos(opts, (l) => process.stdout.write(`# ${l}\n`));
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  fs.rmSync(out, { recursive: true, force: true });
  return { report, md };
}

test('stale-reads (consistent reads without ReadIndex) is reported as not linearizable, with a counterexample', { skip: why || false, timeout: 120_000 }, async () => {
  const { report, md } = await planted('stale-reads');
  assert.equal(report.verdict.ok, false);
  assert.equal(report.register.linearizable, false, md);
  assert.match(report.register.counterexample ?? '', /no linearization of its \d+ operations exists/);
  assert.match(md, /# Chaos run: FAIL[\s\S]*Linearizability counterexample/);
});

test('early-ack (KV writes acknowledged before commit) loses acknowledged increments and breaks linearizability', { skip: why || false, timeout: 120_000 }, async () => {
  const { report, md } = await planted('early-ack');
  assert.equal(report.verdict.ok, false);
  assert.equal(report.counter.ok, false, md);
  assert.equal(report.register.linearizable, false, md);
});
