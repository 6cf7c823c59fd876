// A lock holder loses its lock when its session is invalidated (real agent process):
//   - KV API: the key's Session is cleared at once, lock-delay keeps others out for the invalidated
//     session's LockDelay, then the waiting contender acquires;
//   - `trellis lock`: destroying the holder's session makes it print "Lock lost, killing child",
//     kill its child and exit non-zero, and a second `trellis lock` waiting on the same prefix then
//     acquires and runs its own child.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, waitFor, closeIdleSockets } from '../support/index.ts';

let agent: AgentProcess | undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-lockloss-'));
before(async () => { agent = await AgentProcess.start({ name: 'lockloss' }); });
after(async () => {
  await agent?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, agent));

interface KvEntry { Key: string; LockIndex: number; Session?: string }

async function session(lockDelay: string): Promise<string> {
  const r = await agent!.request('PUT', '/v1/session/create', { body: { Name: 'lockloss', LockDelay: lockDelay } });
  assert.equal(r.status, 200, r.text);
  return r.json<{ ID: string }>().ID;
}
const acquire = async (key: string, id: string) => (await agent!.request('PUT', `/v1/kv/${key}?acquire=${id}`, { body: 'x' })).text;
const entry = async (key: string) => (await agent!.getJson<KvEntry[]>(`/v1/kv/${key}`))[0]!;

test('KV API: destroying the holder\'s session clears the lock; after lock-delay the contender acquires', async () => {
  const a = await session('2s');
  const b = await session('0s');
  assert.equal(await acquire('svc/leader', a), 'true');
  assert.equal(await acquire('svc/leader', b), 'false', 'held by a');
  assert.equal((await entry('svc/leader')).Session, a);

  assert.equal((await agent!.request('PUT', `/v1/session/destroy/${a}`)).status, 200);
  const released = await entry('svc/leader');
  assert.equal(released.Session, undefined, 'the invalidated session no longer holds the key');
  assert.equal(released.LockIndex, 1);
  // Consul's lock-delay: for a's LockDelay after the invalidation, nobody acquires.
  assert.equal(await acquire('svc/leader', b), 'false', 'lock-delay is in force right after the invalidation');
  await waitFor('b acquires after the lock-delay', async () => (await acquire('svc/leader', b)) === 'true', 10_000, 200);
  const held = await entry('svc/leader');
  assert.equal(held.Session, b);
  assert.equal(held.LockIndex, 2);
});

test('trellis lock: the holder whose session is destroyed kills its child; a waiting contender takes over', { timeout: 90_000 }, async () => {
  const env = { CONSUL_HTTP_ADDR: agent!.httpAddr };
  const childPid = path.join(tmp, 'child.pid');
  // The child records its pid, then runs far longer than the test.
  const holder = runTrellis(['lock', 'jobs/nightly', `echo $$ > ${childPid}; exec sleep 120`], { env, timeoutMs: 80_000 });
  const held = await waitFor('the holder holds jobs/nightly/.lock and its child runs', async () => {
    const r = await agent!.request('GET', '/v1/kv/jobs/nightly/.lock');
    if (r.status !== 200 || !fs.existsSync(childPid) || fs.readFileSync(childPid, 'utf8').trim() === '') return undefined;
    const e = r.json<KvEntry[]>()[0]!;
    return e.Session ? e : undefined;
  }, 20_000, 100);
  const pid = Number(fs.readFileSync(childPid, 'utf8').trim());

  const sessions = async () => (await agent!.getJson<unknown[]>('/v1/session/list')).length;
  const before = await sessions();
  const contender = runTrellis(['lock', 'jobs/nightly', 'echo contender ran'], { env, timeoutMs: 80_000 });
  // The contender is waiting, not running: the key is still the holder's.
  await waitFor('the contender\'s session exists', async () => (await sessions()) === before + 1, 20_000, 100);
  assert.equal((await entry('jobs/nightly/.lock')).Session, held.Session);

  assert.equal((await agent!.request('PUT', `/v1/session/destroy/${held.Session}`)).status, 200);
  const h = await holder;
  assert.match(h.stderr, /Lock lost, killing child/);
  assert.notEqual(h.code, 0, 'the child did not finish its work under the lock');
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the child was killed');

  // The session's default lock-delay (15 s) plus one retry (5 s), then the contender runs.
  const c = await contender;
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, 'contender ran\n');
  // And it released and cleaned up when its child finished.
  assert.equal((await agent!.request('GET', '/v1/kv/jobs/nightly/.lock')).status, 404);
});
