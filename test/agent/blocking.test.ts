// Blocking queries, index semantics, check-and-set and locks over real HTTP against a real agent
// process: what consul-template, Vault's Consul backend and `consul lock` depend on.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, printLogsIfFailed, sleep, waitFor, closeIdleSockets } from '../support/index.ts';

let agent: AgentProcess;
before(async () => { agent = await AgentProcess.start({ name: 'blocking' }); });
after(async () => { await agent?.dispose(); closeIdleSockets(); });
afterEach((t) => printLogsIfFailed(t, agent));

const put = (path: string, body: string = '') => agent.request('PUT', path, { body });
const get = (path: string) => agent.request('GET', path);

async function putOk(path: string, body = ''): Promise<void> {
  const r = await put(path, body);
  assert.equal(r.status, 200, `PUT ${path}: ${r.text}`);
  assert.equal(r.text, 'true', `PUT ${path}`);
}

/**
 * How long a blocked read is watched to prove it is still blocked: it must not answer while
 * nothing changed. Long enough that a read that does not block (it answers in a few ms) is caught
 * even on a loaded machine; the read's own wait is far longer, so a blocked read cannot time out
 * inside it.
 */
const STILL_BLOCKED_MS = 400;

/** A blocking read in flight, and whether it has answered yet. */
function blockingGet(path: string): { answered: () => boolean; done: Promise<{ r: Awaited<ReturnType<typeof get>>; at: number }> } {
  let answered = false;
  const done = get(path).then((r) => { answered = true; return { r, at: performance.now() }; });
  return { answered: () => answered, done };
}

/**
 * Wake-up bound after the change was acknowledged: generous for a loaded 2-core machine, yet far
 * below the reads' 10 s wait, so a read woken only by its timeout still fails. (How fast the
 * wake-up is belongs in the benchmarks, not here.)
 */
const WAKE_WITHIN_MS = 3000;

async function newSession(body: Record<string, unknown> = {}): Promise<string> {
  const r = await agent.request('PUT', '/v1/session/create', { body: { LockDelay: '0s', ...body } });
  assert.equal(r.status, 200, r.text);
  return r.json<{ ID: string }>().ID;
}

describe('blocking queries', () => {
  test('a write wakes a waiting read (not its timeout), with the write\'s index', async () => {
    await putOk('/v1/kv/wake/k', 'v0');
    for (let i = 1; i <= 3; i++) {
      const start = await get('/v1/kv/wake/k');
      const waiting = blockingGet(`/v1/kv/wake/k?index=${start.index}&wait=10s`);
      // Proves a negative (nothing changed, so the read must still be waiting): a fixed pause is the
      // only way to watch for something that must not happen.
      await sleep(STILL_BLOCKED_MS);
      assert.equal(waiting.answered(), false, 'the read answered while nothing changed: it did not block');
      await putOk('/v1/kv/wake/k', `v${i}`);
      const ackAt = performance.now();
      const { r, at } = await waiting.done;
      assert.equal(r.status, 200);
      assert.ok(r.index > start.index, `index moved: ${start.index} -> ${r.index}`);
      const [entry] = r.json<Array<{ Value: string; ModifyIndex: number }>>();
      assert.equal(Buffer.from(entry!.Value, 'base64').toString(), `v${i}`);
      assert.equal(entry!.ModifyIndex, r.index);
      assert.ok(at - ackAt < WAKE_WITHIN_MS, `woke ${(at - ackAt).toFixed(0)} ms after the write's ack: by its timeout, not the write`);
    }
  });

  test('an unrelated write does not wake a read: single key, prefix, catalog service', async () => {
    await putOk('/v1/kv/quiet/a', 'a');
    await putOk('/v1/kv/quiet/dir/x', 'x');
    await putOk('/v1/kv/noisy/seed', 's');
    const reg = await agent.request('PUT', '/v1/catalog/register', { body: { Node: 'quiet-node', Address: '10.0.0.5', Service: { Service: 'quiet', Port: 1 } } });
    assert.equal(reg.status, 200, reg.text);

    const reads = ['/v1/kv/quiet/a', '/v1/kv/quiet/dir/?recurse', '/v1/catalog/service/quiet'];
    const starts = await Promise.all(reads.map((p) => get(p)));
    const t0 = performance.now();
    const waits = reads.map((p, i) => agent.request('GET', `${p}${p.includes('?') ? '&' : '?'}index=${starts[i]!.index}&wait=1s`)
      .then((r) => ({ r, ms: performance.now() - t0 })));
    // Writes that touch nothing those reads read: another KV key (outside the prefix) and a
    // different service on another node.
    for (let i = 0; i < 10; i++) {
      await putOk(`/v1/kv/noisy/k${i}`, String(i));
      await putOk(`/v1/kv/quiet/dirX${i}`, String(i)); // shares the string prefix "quiet/dir" but not "quiet/dir/"
      await sleep(20);
    }
    const other = await agent.request('PUT', '/v1/catalog/register', { body: { Node: 'loud-node', Address: '10.0.0.6', Service: { Service: 'loud', Port: 2 } } });
    assert.equal(other.status, 200, other.text);
    const done = await Promise.all(waits);
    done.forEach(({ r, ms }, i) => {
      assert.equal(r.status, 200, reads[i]);
      assert.equal(r.index, starts[i]!.index, `${reads[i]}: the index moved on an unrelated write`);
      // wait=1s plus up to wait/16 of jitter; the read must have waited the full second.
      assert.ok(ms >= 950, `${reads[i]} returned after ${ms.toFixed(0)} ms: an unrelated write woke it`);
      assert.ok(ms < 3000, `${reads[i]} returned after ${ms.toFixed(0)} ms`);
    });
  });

  test('index=0 does not block; an index ahead of the current one returns at once', async () => {
    await putOk('/v1/kv/ahead/k', 'v');
    const now = await get('/v1/kv/ahead/k');
    const zero = await get('/v1/kv/ahead/k?index=0&wait=5s');
    assert.equal(zero.status, 200);
    assert.ok(zero.elapsedMs < 1000, `index=0 took ${zero.elapsedMs} ms`);
    const ahead = await get(`/v1/kv/ahead/k?index=${now.index + 1_000_000}&wait=5s`);
    assert.equal(ahead.status, 200);
    assert.ok(ahead.elapsedMs < 1000, `an index ahead took ${ahead.elapsedMs} ms`);
  });

  test('a blocked read on a missing key answers 404 with X-Consul-Index, and wakes when the key is created', async () => {
    const miss = await get('/v1/kv/later/k');
    assert.equal(miss.status, 404);
    assert.equal(miss.text, '');
    assert.ok(miss.index > 0, `X-Consul-Index on a 404: ${miss.headers['x-consul-index']}`);
    const waiting = blockingGet(`/v1/kv/later/k?index=${miss.index}&wait=10s`);
    await sleep(STILL_BLOCKED_MS); // proves a negative: no key yet, so the read must still be waiting
    assert.equal(waiting.answered(), false, 'the read on the missing key answered without a change');
    await putOk('/v1/kv/later/k', 'now');
    const ackAt = performance.now();
    const { r, at } = await waiting.done;
    assert.equal(r.status, 200);
    assert.equal(r.json<Array<{ Value: string }>>()[0]!.Value, Buffer.from('now').toString('base64'));
    assert.ok(at - ackAt < WAKE_WITHIN_MS, `woke ${(at - ackAt).toFixed(0)} ms after the write: by its timeout, not the write`);
  });
});

describe('indexes', () => {
  test('ModifyIndex grows with every write; X-Consul-Index of a list never goes backwards; concurrent writes get distinct indexes', async () => {
    let last = 0;
    for (let i = 0; i < 30; i++) {
      await putOk('/v1/kv/mono/seq', String(i));
      const r = await get('/v1/kv/mono/seq');
      const [e] = r.json<Array<{ ModifyIndex: number; CreateIndex: number }>>();
      assert.ok(e!.ModifyIndex > last, `write ${i}: ModifyIndex ${e!.ModifyIndex} after ${last}`);
      assert.equal(r.index, e!.ModifyIndex, 'a single key\'s X-Consul-Index is its ModifyIndex');
      last = e!.ModifyIndex;
    }

    // 8 writers × 10 distinct keys, at once; a reader polls the list index meanwhile.
    const seen: number[] = [];
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const r = await get('/v1/kv/mono/c/?recurse');
        if (r.status === 200) seen.push(r.index);
      }
    })();
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let k = 0; k < 10; k++) await putOk(`/v1/kv/mono/c/${w}-${k}`, 'x');
    }));
    writing = false;
    await reader;
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `list index went backwards: ${seen[i - 1]} -> ${seen[i]}`);
    const entries = (await get('/v1/kv/mono/c/?recurse')).json<Array<{ Key: string; ModifyIndex: number; CreateIndex: number }>>();
    assert.equal(entries.length, 80);
    const indexes = new Set(entries.map((e) => e.ModifyIndex));
    assert.equal(indexes.size, 80, 'every write is its own Raft entry with its own index');
    for (const e of entries) {
      assert.equal(e.CreateIndex, e.ModifyIndex);
      assert.ok(e.ModifyIndex > last);
    }
    const list = await get('/v1/kv/mono/?recurse');
    assert.equal(list.index, Math.max(...entries.map((e) => e.ModifyIndex)), 'a list\'s index is the highest it contains');
  });
});

describe('check-and-set', () => {
  test('16 concurrent CAS incrementers lose no update', async () => {
    await putOk('/v1/kv/counter', '0');
    const workers = 16;
    const perWorker = 8;
    let conflicts = 0;
    await Promise.all(Array.from({ length: workers }, async () => {
      for (let done = 0; done < perWorker;) {
        const r = await get('/v1/kv/counter');
        const [e] = r.json<Array<{ Value: string; ModifyIndex: number }>>();
        const n = Number(Buffer.from(e!.Value, 'base64').toString());
        const w = await put(`/v1/kv/counter?cas=${e!.ModifyIndex}`, String(n + 1));
        assert.equal(w.status, 200, w.text);
        if (w.text === 'true') done++;
        else {
          assert.equal(w.text, 'false');
          conflicts++;
        }
      }
    }));
    const final = (await get('/v1/kv/counter?raw')).text;
    assert.equal(final, String(workers * perWorker), `lost updates (conflicts seen: ${conflicts})`);
  });

  test('cas=0 creates only when absent; a CAS on a deleted key fails; delete with a stale cas fails', async () => {
    assert.equal((await put('/v1/kv/cas2/k?cas=0', 'first')).text, 'true');
    assert.equal((await put('/v1/kv/cas2/k?cas=0', 'second')).text, 'false');
    const [e] = (await get('/v1/kv/cas2/k')).json<Array<{ ModifyIndex: number }>>();
    assert.equal((await agent.request('DELETE', `/v1/kv/cas2/k?cas=${e!.ModifyIndex - 1}`)).text, 'false');
    assert.equal((await get('/v1/kv/cas2/k?raw')).text, 'first');
    assert.equal((await agent.request('DELETE', `/v1/kv/cas2/k?cas=${e!.ModifyIndex}`)).text, 'true');
    assert.equal((await put(`/v1/kv/cas2/k?cas=${e!.ModifyIndex}`, 'again')).text, 'false');
    assert.equal((await get('/v1/kv/cas2/k')).status, 404);
  });
});

describe('locks', () => {
  test('two sessions race for one lock: exactly one wins each round, only the holder can release', async () => {
    const a = await newSession({ Name: 'a' });
    const b = await newSession({ Name: 'b' });
    const wins = { [a]: 0, [b]: 0 };
    for (let round = 0; round < 20; round++) {
      const [ra, rb] = await Promise.all([
        put(`/v1/kv/race/lock?acquire=${a}`, 'a'),
        put(`/v1/kv/race/lock?acquire=${b}`, 'b'),
      ]);
      assert.deepEqual([ra.status, rb.status], [200, 200]);
      const outcome = [ra.text, rb.text].sort();
      assert.deepEqual(outcome, ['false', 'true'], `round ${round}: a=${ra.text} b=${rb.text}`);
      const winner = ra.text === 'true' ? a : b;
      const loser = winner === a ? b : a;
      wins[winner]!++;
      const [held] = (await get('/v1/kv/race/lock')).json<Array<{ Session: string; Value: string; LockIndex: number }>>();
      assert.equal(held!.Session, winner);
      assert.equal(Buffer.from(held!.Value, 'base64').toString(), winner === a ? 'a' : 'b', 'the winner\'s value was written, the loser\'s was not');
      // Re-acquiring by the holder succeeds; the other cannot release it.
      assert.equal((await put(`/v1/kv/race/lock?acquire=${winner}`, 'again')).text, 'true');
      assert.equal((await put(`/v1/kv/race/lock?release=${loser}`)).text, 'false');
      assert.equal((await get('/v1/kv/race/lock')).json<Array<{ Session: string }>>()[0]!.Session, winner);
      assert.equal((await put(`/v1/kv/race/lock?release=${winner}`)).text, 'true');
      const [free] = (await get('/v1/kv/race/lock')).json<Array<{ Session?: string; LockIndex: number }>>();
      assert.equal(free!.Session, undefined);
      assert.equal(free!.LockIndex, round + 1, 'LockIndex counts acquisitions');
    }
    assert.equal(wins[a]! + wins[b]!, 20);
  });

  test('a waiter blocked on the lock key wakes on the release (not its timeout) and takes the lock', async () => {
    for (let round = 0; round < 3; round++) {
      const holder = await newSession({ Name: `holder-${round}` });
      const waiter = await newSession({ Name: `waiter-${round}` });
      const key = `/v1/kv/handoff/${round}`;
      assert.equal((await put(`${key}?acquire=${holder}`, 'h')).text, 'true');
      assert.equal((await put(`${key}?acquire=${waiter}`, 'w')).text, 'false');
      const cur = await get(key);
      const woke = blockingGet(`${key}?index=${cur.index}&wait=10s`);
      await sleep(STILL_BLOCKED_MS); // proves a negative: the lock is held, so the waiter must still wait
      assert.equal(woke.answered(), false, 'the waiter answered while the lock was held: it did not block');
      assert.equal((await put(`${key}?release=${holder}`)).text, 'true');
      const releasedAt = performance.now();
      const { r, at } = await woke.done;
      assert.ok(at - releasedAt < WAKE_WITHIN_MS, `woke ${(at - releasedAt).toFixed(0)} ms after the release: by its timeout, not the release`);
      assert.equal(r.json<Array<{ Session?: string }>>()[0]!.Session, undefined);
      assert.equal((await put(`${key}?acquire=${waiter}`, 'w')).text, 'true');
    }
  });

  test('destroying the holder\'s session releases its lock, and its LockDelay holds others off', async () => {
    const holder = await newSession({ Name: 'delayed', LockDelay: '1s' });
    const other = await newSession({ Name: 'other' });
    assert.equal((await put(`/v1/kv/delayed?acquire=${holder}`, 'h')).text, 'true');
    const destroy = await agent.request('PUT', `/v1/session/destroy/${holder}`);
    assert.deepEqual([destroy.status, destroy.text], [200, 'true']);
    const destroyedAt = Date.now();
    const [e] = (await get('/v1/kv/delayed')).json<Array<{ Session?: string; Value: string }>>();
    assert.equal(e!.Session, undefined, 'released');
    assert.equal(Buffer.from(e!.Value, 'base64').toString(), 'h', 'Behavior release keeps the value');
    assert.equal((await put(`/v1/kv/delayed?acquire=${other}`, 'o')).text, 'false', 'inside the 1 s lock delay');
    await waitFor('the other session acquires once the lock delay is over', async () =>
      (await put(`/v1/kv/delayed?acquire=${other}`, 'o')).text === 'true', 10_000, 100);
    // The delay held it off for (about) the full second: the first success is not earlier.
    assert.ok(Date.now() - destroyedAt >= 900, `acquired ${Date.now() - destroyedAt} ms after the destroy, inside the 1 s lock delay`);
  });

  test('acquiring with a session that does not exist is 500 "invalid session"', async () => {
    const r = await put('/v1/kv/ghost?acquire=00000000-0000-4000-8000-000000000000', 'x');
    assert.equal(r.status, 500);
    assert.match(r.text, /^invalid session/);
    assert.equal((await get('/v1/kv/ghost')).status, 404);
  });
});
