// `trellis lock` against the fake agent: Consul's lock and semaphore recipes, mutual exclusion
// between real child processes, timeouts, lock loss and signals.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startFakeConsul, type FakeConsul } from './fakeConsul.ts';
import { captureIO } from './harness.ts';
import { execute, makeContext } from '../../src/cli/command.ts';
import { makeLockCommand, LOCK_FLAG_VALUE, SEMAPHORE_FLAG_VALUE } from '../../src/cli/commands/lock.ts';

const FAST = { waitMs: 500, retryMs: 50, monitorRetryMs: 50, sessionTtl: '2s', killGraceMs: 500 };
const lock = makeLockCommand(FAST);

let fake: FakeConsul;
let tmp: string;

function runLock(args: string[], signals?: import('node:events').EventEmitter) {
  const cap = captureIO({ env: { CONSUL_HTTP_ADDR: fake.addr, PATH: process.env['PATH'] }, ...(signals ? { signals } : {}) });
  const done = execute(lock, args, makeContext(cap.io)).then((code) => ({ code, stdout: cap.stdout(), stderr: cap.stderr() }));
  return { done, signals: cap.signals, stdout: () => cap.stdout() };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Reads "start <t>" / "end <t>" lines the children appended, in time order. */
function intervals(file: string): Array<{ kind: string; t: bigint }> {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => {
    const [kind, t] = l.split(' ');
    return { kind: kind!, t: BigInt(t!) };
  }).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
}

function maxConcurrency(file: string): number {
  let cur = 0;
  let max = 0;
  for (const e of intervals(file)) {
    cur += e.kind === 'start' ? 1 : -1;
    max = Math.max(max, cur);
  }
  return max;
}

before(async () => {
  fake = await startFakeConsul();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-lock-'));
});
after(async () => {
  await fake.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  fake.kv.clear();
  fake.sessions.clear();
});

describe('lock (-n 1)', () => {
  test('holds <prefix>/.lock with Consul\'s flag while the child runs, then cleans up; exit code is the child\'s', async () => {
    const { done } = runLock(['svc/leader', 'echo held=$CONSUL_LOCK_HELD; sleep 0.3; exit 3']);
    await until(() => !!fake.kv.get('svc/leader/.lock')?.Session, 'the lock to be held');
    const held = fake.kv.get('svc/leader/.lock')!;
    assert.equal(held.Flags, LOCK_FLAG_VALUE);
    assert.ok(fake.sessions.has(held.Session), 'held by a live session');
    assert.match(fake.sessions.get(held.Session)!.Name, /^Trellis lock for 'echo held=\$CONSUL_LOCK_HELD; sleep 0\.3; exit 3' at 'svc\/leader'$/);
    const r = await done;
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'held=true\n');
    assert.equal(fake.kv.has('svc/leader/.lock'), false, 'the unused lock key is removed');
    assert.equal(fake.sessions.size, 0, 'the session is destroyed');
  });

  test('two holders never overlap', async () => {
    const log = path.join(tmp, 'mutex.log');
    fs.writeFileSync(log, '');
    const child = `echo start $(date +%s%N) >> ${log}; sleep 0.2; echo end $(date +%s%N) >> ${log}`;
    const a = runLock(['mutex', child]);
    const b = runLock(['mutex', child]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.deepEqual([ra.code, rb.code], [0, 0], ra.stderr + rb.stderr);
    assert.deepEqual(intervals(log).map((e) => e.kind), ['start', 'end', 'start', 'end']);
    assert.equal(maxConcurrency(log), 1);
  });

  test('-timeout gives up while someone else holds the lock', async () => {
    fake.sessions.set('other', { Name: 'other', TTL: '', Behavior: 'release' });
    fake.kv.set('busy/.lock', { Key: 'busy/.lock', Value: Buffer.alloc(0), Flags: LOCK_FLAG_VALUE, CreateIndex: 1, ModifyIndex: 1, LockIndex: 1, Session: 'other' });
    const started = Date.now();
    const r = await runLock(['-timeout=300ms', 'busy', 'echo should-not-run']).done;
    const took = Date.now() - started;
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'Shutdown triggered or timeout during lock acquisition\n');
    assert.ok(took >= 280 && took < 2000, `gave up after ${took}ms`);
    assert.deepEqual([...fake.sessions.keys()], ['other'], 'our session is destroyed');
  });

  test('waits for a holder to release, then runs', async () => {
    fake.sessions.set('other', { Name: 'other', TTL: '', Behavior: 'release' });
    fake.kv.set('wait/.lock', { Key: 'wait/.lock', Value: Buffer.alloc(0), Flags: LOCK_FLAG_VALUE, CreateIndex: 1, ModifyIndex: 1, LockIndex: 1, Session: 'other' });
    const seen = fake.requests.length;
    const { done } = runLock(['wait', 'echo ran']);
    // It saw the key held and now waits in a blocking read of it (as Consul's api.Lock does).
    await until(() => fake.requests.slice(seen).some((r) => r.method === 'GET' && r.path === '/v1/kv/wait/.lock' && Number(r.query.get('index')) > 0), 'a blocking read of the lock key');
    assert.equal(fake.kv.get('wait/.lock')!.Session, 'other');
    fake.invalidateSession('other');
    const r = await done;
    assert.deepEqual([r.code, r.stdout], [0, 'ran\n']);
  });

  test('losing the session kills the child and fails', async () => {
    const { done } = runLock(['lost', 'sleep 10']);
    await until(() => !!fake.kv.get('lost/.lock')?.Session, 'the lock to be held');
    const started = Date.now();
    fake.invalidateSession(fake.kv.get('lost/.lock')!.Session);
    const r = await done;
    assert.equal(r.code, 143, 'the child died of SIGTERM');
    assert.match(r.stderr, /^Lock lost, killing child\n/);
    assert.ok(Date.now() - started < 3000, 'the child was killed promptly');
  });

  test('SIGTERM is passed to the child and the lock is released', async () => {
    const { done, signals, stdout } = runLock(['sig', 'echo running; sleep 10']);
    // The child runs (not just the lock held: a signal before the child starts ends the wait for
    // the lock instead, with exit 1).
    await until(() => stdout().includes('running'), 'the child to run');
    signals.emit('SIGTERM');
    const r = await done;
    assert.equal(r.code, 143);
    assert.equal(fake.kv.has('sig/.lock'), false);
    assert.equal(fake.sessions.size, 0);
  });

  test('a key that is not a lock is a conflict, not overwritten', async () => {
    fake.put('cfg/.lock', 'user data', 7n);
    const r = await runLock(['cfg', 'echo no']).done;
    assert.deepEqual([r.code, r.stderr], [1, 'Lock acquisition failed: Existing key does not match lock use\n']);
    assert.equal(fake.kv.get('cfg/.lock')!.Value.toString(), 'user data');
    assert.equal(fake.sessions.size, 0);
  });

  test('`<prefix> -- <child...>`: the `--` separates, it is not handed to the child (where sh -c would refuse it)', async () => {
    const r = await runLock(['dash', '--', 'echo', 'ran under the lock']).done;
    assert.deepEqual([r.code, r.stderr], [0, '']);
    assert.equal(fake.kv.has('dash/.lock'), false);
  });

  test('argument checks', async () => {
    assert.equal((await runLock(['only-prefix']).done).stderr, 'Key prefix and child command must be specified\n');
    assert.equal((await runLock(['only-prefix', '--']).done).stderr, 'Key prefix and child command must be specified\n');
    assert.equal((await runLock(['-n=0', 'p', 'true']).done).stderr, 'Lock holder limit must be positive\n');
  });
});

describe('semaphore (-n > 1)', () => {
  test('at most N holders at once, coordinated through <prefix>/.lock', async () => {
    const log = path.join(tmp, 'sem.log');
    fs.writeFileSync(log, '');
    const child = `echo start $(date +%s%N) >> ${log}; sleep 0.3; echo end $(date +%s%N) >> ${log}`;
    const runs = [runLock(['-n=2', 'pool', child]), runLock(['-n=2', 'pool', child]), runLock(['-n=2', 'pool', child])];
    await until(() => !!fake.kv.get('pool/.lock'), 'the semaphore key');
    const sem = fake.kv.get('pool/.lock')!;
    assert.equal(sem.Flags, SEMAPHORE_FLAG_VALUE);
    const lockValue = JSON.parse(sem.Value.toString());
    assert.equal(lockValue.Limit, 2);
    const results = await Promise.all(runs.map((r) => r.done));
    assert.deepEqual(results.map((r) => r.code), [0, 0, 0], results.map((r) => r.stderr).join(''));
    assert.equal(maxConcurrency(log), 2);
    assert.equal(intervals(log).length, 6);
    assert.equal(fake.kv.size, 0, 'contender entries and the semaphore key are cleaned up');
  });

  test('a limit that disagrees with the holders\' is refused', async () => {
    fake.put('pool2/.lock', JSON.stringify({ Limit: 3, Holders: {} }), SEMAPHORE_FLAG_VALUE);
    const r = await runLock(['-n=2', 'pool2', 'true']).done;
    assert.deepEqual([r.code, r.stderr], [1, 'Lock acquisition failed: semaphore limit conflict (lock: 3, local: 2)\n']);
  });
});
