// Blocking queries: wake-ups on relevant writes only, timeouts with jitter, index rules, cleanup.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness } from './helpers.ts';

const ms = () => performance.now();

/** Resolves once `n` blocking queries are parked on the store's watch (polls; fails after 5 s). */
async function parked(h: ReturnType<typeof harness>, n: number): Promise<void> {
  for (let i = 0; i < 1000 && h.store.watchListenerCount() < n; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(h.store.watchListenerCount() >= n, `${n} blocking queries parked (have ${h.store.watchListenerCount()})`);
}

/**
 * Bound on a wake-up after the write: generous for a loaded machine, far below the queries' 10 s
 * wait, so a query woken only by its timeout fails. How fast it is belongs in the benchmarks.
 */
const WAKE_WITHIN_MS = 3000;

describe('blocking queries', () => {
  test('a write to the watched key wakes a waiting read (not its timeout)', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/watched', 'v1');
    const first = await h.req('GET', '/v1/kv/watched');
    const index = Number(first.headers['x-consul-index']);
    const pending = h.req('GET', `/v1/kv/watched?index=${index}&wait=10s`);
    await parked(h, 1); // it really waits before the write
    const wrote = ms();
    await h.req('PUT', '/v1/kv/watched', 'v2');
    const res = await pending;
    const woke = ms();
    assert.equal(res.statusCode, 200);
    assert.ok(Number(res.headers['x-consul-index']) > index, 'index moved past the given one');
    assert.equal(Buffer.from(JSON.parse(res.body)[0].Value, 'base64').toString(), 'v2');
    assert.ok(woke - wrote < WAKE_WITHIN_MS, `woke ${woke - wrote} ms after the write: by its timeout, not the write`);
    await h.close();
  });

  test('an unrelated write does not wake it; it returns at the end of ?wait with the same index', async () => {
    let randomCalls = 0;
    const h = harness({ random: () => { randomCalls++; return 0; } });
    await h.req('PUT', '/v1/kv/watched', 'v1');
    const index = Number((await h.req('GET', '/v1/kv/watched')).headers['x-consul-index']);
    const started = ms();
    const pending = h.req('GET', `/v1/kv/watched?index=${index}&wait=300ms`);
    await parked(h, 1);
    await h.req('PUT', '/v1/kv/other', 'x');
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web' });
    const res = await pending;
    const elapsed = ms() - started;
    assert.equal(res.statusCode, 200);
    assert.equal(Number(res.headers['x-consul-index']), index);
    assert.ok(elapsed >= 290, `returned after ${elapsed} ms: an unrelated write woke it`);
    assert.ok(elapsed < 5000, `returned after ${elapsed} ms: the 300 ms wait did not end it`);
    assert.equal(randomCalls, 1, 'jitter drawn once per query');
    await h.close();
  });

  test('a catalog write wakes health/service of that service but not of another', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web' });
    await h.req('PUT', '/v1/agent/service/register', { Name: 'db' });
    const idx = Number((await h.req('GET', '/v1/health/service/web')).headers['x-consul-index']);
    const dbIdx = Number((await h.req('GET', '/v1/health/service/db')).headers['x-consul-index']);
    const webWait = h.req('GET', `/v1/health/service/web?index=${idx}&wait=10s`);
    const dbWait = h.req('GET', `/v1/health/service/db?index=${dbIdx}&wait=400ms`);
    await parked(h, 2);
    const t0 = ms();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v2'] });
    const web = await webWait;
    assert.ok(ms() - t0 < WAKE_WITHIN_MS, `web woke ${ms() - t0} ms after the write: by its timeout`);
    assert.deepEqual(JSON.parse(web.body)[0].Service.Tags, ['v2']);
    const db = await dbWait;
    assert.equal(Number(db.headers['x-consul-index']), dbIdx, 'db watcher was not woken by a web write');
    await h.close();
  });

  test('?index=0 never blocks; neither does a missing ?index', async () => {
    const h = harness();
    const t0 = ms();
    const res = await h.req('GET', '/v1/catalog/nodes?index=0&wait=5s');
    await h.req('GET', '/v1/catalog/nodes?wait=5s');
    assert.equal(res.statusCode, 200);
    assert.ok(ms() - t0 < 2500, 'both answered well before a 5 s wait');
    await h.close();
  });

  test('an index ahead of the store (it went backwards after a restore) answers at once', async () => {
    const h = harness();
    const t0 = ms();
    const res = await h.req('GET', '/v1/kv/?recurse&index=999999&wait=5s');
    assert.equal(res.statusCode, 404);
    assert.ok(ms() - t0 < 2500, 'answered well before its 5 s wait');
    assert.ok(Number(res.headers['x-consul-index']) >= 1);
    await h.close();
  });

  test('X-Consul-Index, KnownLeader and LastContact are on every read, 404s included; index ≥ 1', async () => {
    const h = harness();
    for (const url of ['/v1/kv/missing', '/v1/kv/?recurse', '/v1/catalog/nodes', '/v1/health/state/any', '/v1/session/list', '/v1/catalog/service/none']) {
      const res = await h.req('GET', url);
      assert.ok(Number(res.headers['x-consul-index']) >= 1, url);
      assert.equal(res.headers['x-consul-knownleader'], 'true', url);
      assert.equal(res.headers['x-consul-lastcontact'], '0', url);
      assert.equal(res.headers['x-consul-effective-consistency'], 'leader', url);
    }
    const stale = await h.req('GET', '/v1/catalog/nodes?stale&cached');
    assert.equal(stale.headers['x-consul-effective-consistency'], 'stale');
    assert.equal(stale.headers['x-cache'], 'MISS');
    assert.equal((await h.req('GET', '/v1/kv/x?consistent')).headers['x-consul-effective-consistency'], 'consistent');
    await h.close();
  });

  test('a wait over 10 minutes is clamped (not refused)', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/k', 'v');
    const idx = Number((await h.req('GET', '/v1/kv/k')).headers['x-consul-index']);
    const pending = h.req('GET', `/v1/kv/k?index=${idx}&wait=100h`);
    await parked(h, 1);
    await h.req('PUT', '/v1/kv/k', 'v2');
    assert.equal((await pending).statusCode, 200);
    await h.close();
  });

  test('closing the server ends blocked queries at once and leaves no watch listener behind', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/k', 'v');
    const idx = Number((await h.req('GET', '/v1/kv/k')).headers['x-consul-index']);
    const pending = [1, 2, 3].map(() => h.req('GET', `/v1/kv/k?index=${idx}&wait=5m`));
    await parked(h, 3);
    assert.equal(h.store.watchListenerCount(), 3);
    const t0 = ms();
    await h.close();
    for (const p of pending) assert.equal((await p).statusCode, 200);
    assert.ok(ms() - t0 < 1000);
    assert.equal(h.store.watchListenerCount(), 0);
  });
});

describe('blocking over a real socket', () => {
  test('a client that disconnects mid-wait releases its watch listeners', async () => {
    const h = harness();
    const { port } = await h.server.listen();
    await h.req('PUT', '/v1/kv/k', 'v');
    const idx = Number((await h.req('GET', '/v1/kv/k')).headers['x-consul-index']);
    const ac = new AbortController();
    const req = fetch(`http://127.0.0.1:${port}/v1/kv/k?index=${idx}&wait=5m`, { signal: ac.signal }).catch((e: Error) => e);
    await parked(h, 1);
    assert.equal(h.store.watchListenerCount(), 1);
    ac.abort();
    assert.ok((await req) instanceof Error);
    for (let i = 0; i < 100 && h.store.watchListenerCount() > 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(h.store.watchListenerCount(), 0);
    // The server is still fine.
    const ok = await fetch(`http://127.0.0.1:${port}/v1/kv/k`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'application/json');
    await h.close();
  });
});
