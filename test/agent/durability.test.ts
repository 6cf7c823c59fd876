// Durability of a server agent with -data-dir (not -dev): concurrent writers, kill -9 in the middle
// of their writes, restart on the same data dir. A write the agent acknowledged (200 `true`) was
// committed through Raft and synced to disk first, so it must be there after the crash; a write in
// flight at the crash may or may not be, but nothing may come back that was never written.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, sleep, closeIdleSockets } from '../support/index.ts';

let agent: AgentProcess;
before(async () => { agent = await AgentProcess.start({ name: 'durability', mode: 'server' }); });
after(async () => { await agent?.dispose(); closeIdleSockets(); });
afterEach((t) => printLogsIfFailed(t, agent));

interface KvEntry { Key: string; Value: string | null; ModifyIndex: number }

const decode = (v: string | null) => (v === null ? '' : Buffer.from(v, 'base64').toString());

/** Everything under a prefix as key -> value. */
async function dump(prefix: string): Promise<Map<string, string>> {
  const r = await agent.request('GET', `/v1/kv/${prefix}?recurse&consistent`);
  if (r.status === 404) return new Map();
  assert.equal(r.status, 200, r.text);
  return new Map(r.json<KvEntry[]>().map((e) => [e.Key, decode(e.Value)]));
}

interface WriterLog {
  /** key -> value of every acknowledged write. */
  acked: Map<string, string>;
  /** key -> values sent without an answer (in flight at the crash). */
  inFlight: Map<string, string>;
  /** Per writer: the sequence number of the last acknowledged overwrite of its "last" key. */
  lastAcked: number[];
}

/**
 * `writers` concurrent clients, each writing distinct keys `<prefix>/w<i>/<n>` and overwriting
 * `<prefix>/last/w<i>` with n, until one of their requests fails (the agent died).
 */
function startWriters(prefix: string, writers: number): { log: WriterLog; done: Promise<void> } {
  const log: WriterLog = { acked: new Map(), inFlight: new Map(), lastAcked: Array(writers).fill(-1) };
  const write = async (key: string, value: string): Promise<boolean> => {
    log.inFlight.set(key, value);
    try {
      const r = await agent.request('PUT', `/v1/kv/${key}`, { body: value, timeoutMs: 10_000 });
      assert.equal(r.status, 200, `PUT ${key}: ${r.status} ${r.text}`);
      assert.equal(r.text, 'true');
      log.inFlight.delete(key);
      log.acked.set(key, value);
      return true;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      return false; // connection refused or reset: the agent is gone, and this write's fate is unknown
    }
  };
  const done = Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let n = 0; ; n++) {
      if (!(await write(`${prefix}/w${w}/${String(n).padStart(6, '0')}`, `w${w}-${n}`))) return;
      if (!(await write(`${prefix}/last/w${w}`, String(n)))) return;
      log.lastAcked[w] = n;
    }
  })).then(() => undefined);
  return { log, done };
}

function checkSurvived(log: WriterLog, now: Map<string, string>, what: string): void {
  const missing = [...log.acked].filter(([k, v]) => k.includes('/w') && !k.includes('/last/') && now.get(k) !== v);
  assert.deepEqual(missing.slice(0, 10), [], `${what}: ${missing.length} of ${log.acked.size} acknowledged writes lost or changed`);
  for (const [k, v] of now) {
    if (k.includes('/last/')) continue;
    assert.ok(log.acked.get(k) === v || log.inFlight.get(k) === v, `${what}: ${k}=${v} was never written`);
  }
  log.lastAcked.forEach((n, w) => {
    const key = [...log.acked.keys()].find((k) => k.endsWith(`/last/w${w}`));
    if (n < 0 || key === undefined) return;
    const got = Number(now.get(key));
    // The last overwrite acknowledged, or the one in flight after it; never an older value.
    assert.ok(got === n || got === n + 1, `${what}: ${key} is ${got}, the last acknowledged value was ${n}`);
  });
}

test('kill -9 during concurrent writes, restart on the same data dir: every acknowledged write is there', async () => {
  // State besides KV that must survive too: a catalog registration and a session holding a lock.
  const reg = await agent.request('PUT', '/v1/catalog/register', { body: { Node: 'db-1', Address: '10.0.0.7', Service: { ID: 'pg', Service: 'postgres', Port: 5432 } } });
  assert.equal(reg.status, 200, reg.text);
  const sess = (await agent.request('PUT', '/v1/session/create', { body: { Name: 'keeper', LockDelay: '0s' } })).json<{ ID: string }>().ID;
  assert.equal((await agent.request('PUT', `/v1/kv/locks/primary?acquire=${sess}`, { body: 'me' })).text, 'true');
  const nodeIdBefore = fs.readFileSync(path.join(agent.dataDir, 'node-id'), 'utf8');

  for (const round of [1, 2]) {
    const { log, done } = startWriters(`dur${round}`, 8);
    // Let the writers get going, then crash the agent under them.
    const until = Date.now() + 5000;
    while (log.acked.size < 300 && Date.now() < until) await sleep(20);
    await sleep(Math.floor(Math.random() * 50)); // kill at an arbitrary point, not right after a check
    const indexBefore = Math.max(0, ...(await Promise.all([agent.request('GET', '/v1/kv/?recurse&stale')])).map((r) => r.index).filter(Number.isFinite));
    const exit = await agent.kill();
    assert.equal(exit.signal, 'SIGKILL');
    await done;
    assert.ok(log.acked.size >= 100, `round ${round}: only ${log.acked.size} writes acknowledged before the kill`);

    await agent.restart();
    const now = await dump(`dur${round}/`);
    checkSurvived(log, now, `round ${round}`);
    const after = await agent.request('GET', '/v1/kv/?recurse');
    assert.ok(after.index >= indexBefore, `round ${round}: X-Consul-Index went back from ${indexBefore} to ${after.index}`);
    if (round === 2) {
      // Round 1's data survived a second crash as well.
      assert.ok((await dump('dur1/')).size > 0);
    }
  }

  // A graceful restart keeps everything too, and new writes continue above the old indexes.
  const beforeStop = await agent.request('GET', '/v1/kv/?recurse');
  const stopped = await agent.stop();
  assert.deepEqual(stopped, { code: 0, signal: null });
  await agent.restart();
  const afterStart = await agent.request('GET', '/v1/kv/?recurse&consistent');
  const keysOf = (r: { json<T>(): T }) => r.json<KvEntry[]>().map((e) => `${e.Key}@${e.ModifyIndex}`);
  const lost = keysOf(beforeStop).filter((k) => !keysOf(afterStart).includes(k));
  const gained = keysOf(afterStart).filter((k) => !keysOf(beforeStop).includes(k));
  assert.deepEqual({ lost: lost.slice(0, 10), lostCount: lost.length, gained: gained.slice(0, 10) }, { lost: [], lostCount: 0, gained: [] },
    `after a graceful stop and restart (index before ${beforeStop.index}, after ${afterStart.index})`);
  assert.equal(afterStart.text, beforeStop.text);
  const w = await agent.request('PUT', '/v1/kv/after-restart', { body: 'x' });
  assert.equal(w.text, 'true');
  const [e] = (await agent.request('GET', '/v1/kv/after-restart')).json<KvEntry[]>();
  assert.ok(e!.ModifyIndex > beforeStop.index, `new write index ${e!.ModifyIndex} not above ${beforeStop.index}`);

  const pg = (await agent.request('GET', '/v1/catalog/service/postgres')).json<Array<{ Node: string; ServicePort: number }>>();
  assert.deepEqual(pg.map((s) => [s.Node, s.ServicePort]), [['db-1', 5432]]);
  const lock = (await agent.request('GET', '/v1/kv/locks/primary')).json<Array<{ Session?: string }>>()[0]!;
  assert.equal(lock.Session, sess, 'the session and its lock survived the crashes');
  assert.equal(fs.readFileSync(path.join(agent.dataDir, 'node-id'), 'utf8'), nodeIdBefore, 'same node id after restart');
});

test('right after a restart, a default read is not older than what was acknowledged before it', async () => {
  // Enough entries that replaying the log takes several apply batches (the first failure seen was a
  // read at index 1024 of 1239, i.e. mid-replay; 4000 more entries make the window wide).
  const KEYS = 4000;
  await Promise.all(Array.from({ length: 32 }, async (_, w) => {
    for (let i = w; i < KEYS; i += 32) {
      const r = await agent.request('PUT', `/v1/kv/replay/${String(i).padStart(5, '0')}`, { body: 'x' });
      assert.equal(r.text, 'true');
    }
  }));
  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    const before = await agent.request('GET', '/v1/kv/replay/?keys');
    assert.equal(before.json<string[]>().length, KEYS);
    if (how === 'SIGTERM') await agent.stop();
    else await agent.kill();
    await agent.restart();
    // The agent said it is ready (it names a leader): what it serves now is what clients get.
    const after = await agent.request('GET', '/v1/kv/replay/?keys');
    assert.ok(after.index >= before.index && after.status === 200 && after.json<string[]>().length === KEYS,
      `after ${how} and restart, the first default read answered index ${after.index} with ${after.status === 200 ? after.json<string[]>().length : after.status} keys; before: index ${before.index}, ${KEYS} keys`);
  }
});
