// Script checks: real child processes (this Node binary with -e), no shell.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCheckRunner, type CheckRunner } from '../../src/checks/index.ts';
import type { CheckType } from '../../src/structs/check.ts';
import { alive, context, MS, nthReport, sleep, waitFor, type TestContext } from './helpers.ts';

const node = process.execPath;

function script(code: string, extra: Partial<CheckType> = {}): CheckType {
  return { ScriptArgs: [node, '-e', code], IntervalNs: 10_000 * MS, ...extra };
}

async function firstReport(ct: CheckType): Promise<{ status: string; output: string; ctx: TestContext }> {
  const ctx = context({ enableScriptChecks: true });
  const runner = startCheckRunner(ct, ctx);
  try {
    const r = await nthReport(ctx, 0);
    return { status: r.status, output: r.output, ctx };
  } finally {
    runner.stop();
  }
}

describe('script checks', () => {
  test('exit 0 is passing with stdout and stderr together; arguments reach the program unchanged', async () => {
    const r = await firstReport({
      ScriptArgs: [node, '-e', 'process.stdout.write("out:" + process.argv[1]); process.stderr.write("|err")', 'a b;$HOME'],
      IntervalNs: 10_000 * MS,
    });
    assert.equal(r.status, 'passing');
    assert.ok(['out:a b;$HOME|err', '|errout:a b;$HOME'].includes(r.output), r.output);
  });

  test('exit 1 is warning, exit 2 critical, each with its output', async () => {
    const warn = await firstReport(script('console.log("disk 85%"); process.exit(1)'));
    assert.deepEqual([warn.status, warn.output], ['warning', 'disk 85%\n']);
    const crit = await firstReport(script('console.error("disk 99%"); process.exit(2)'));
    assert.deepEqual([crit.status, crit.output], ['critical', 'disk 99%\n']);
  });

  test('a program that cannot start is critical', async () => {
    const r = await firstReport({ ScriptArgs: ['/nonexistent/check-disk'], IntervalNs: 10_000 * MS });
    assert.equal(r.status, 'critical');
    assert.match(r.output, /ENOENT/);
  });

  test('output is cut to OutputMaxSize the way TTL output is', async () => {
    const r = await firstReport(script('process.stdout.write("y".repeat(10000))', { OutputMaxSize: 64 }));
    assert.equal(r.output, `${'y'.repeat(64)} ... (captured 64 of 10000 bytes)`);
  });

  test('a run past Timeout is killed with its process group and reported as timed out', async () => {
    // The script starts a grandchild (in the script's process group), prints both pids and sleeps.
    const code = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
      console.log('pids ' + process.pid + ' ' + g.pid);
      setTimeout(() => {}, 20000);`;
    const r = await firstReport(script(code, { TimeoutNs: 400 * MS }));
    assert.equal(r.status, 'critical');
    const m = /^Timed out \(400ms\) running check\n\npids (\d+) (\d+)\n$/.exec(r.output);
    assert.ok(m, r.output);
    await waitFor('the script and its child to be killed', () => !alive(Number(m[1])) && !alive(Number(m[2])));
  });

  test('refused while script checks are disabled, naming the check', () => {
    assert.throws(() => startCheckRunner(script('0'), context({ checkId: 'mem', enableScriptChecks: false })),
      /^Error: check "mem": script checks are disabled on this agent/);
  });

  test('stop() kills a running script, reports nothing and leaves no timer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-script-'));
    const pidFile = path.join(dir, 'pid');
    const ctx = context({ enableScriptChecks: true });
    let runner: CheckRunner | undefined;
    try {
      runner = startCheckRunner(script(`require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setTimeout(() => {}, 20000)`,
        { IntervalNs: 50 * MS }), ctx);
      const pid = Number(await waitFor('the script to start', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8')));
      runner.stop();
      await waitFor('the script to be killed', () => !alive(pid));
      // Proves a negative (the killed run reports nothing, and no run follows): ten intervals pass.
      await sleep(500);
      assert.deepEqual(ctx.reports, []);
      assert.equal(ctx.timers.pending.size, 0);
    } finally {
      runner?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
