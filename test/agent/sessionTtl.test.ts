// Session TTLs against a real agent's clock. Consul invalidates a session at twice its TTL (the
// grace a client gets for a late renewal); then Behavior "release" unlocks its keys and "delete"
// deletes them, while a session renewed in time keeps its lock. The shortest TTL Consul accepts is
// 10 s, so this file takes ~22 s: it runs the three cases in one window.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, printLogsIfFailed, sleep, closeIdleSockets } from '../support/index.ts';

let agent: AgentProcess;
before(async () => { agent = await AgentProcess.start({ name: 'session-ttl' }); });
after(async () => { await agent?.dispose(); closeIdleSockets(); });
afterEach((t) => printLogsIfFailed(t, agent));

interface KvEntry { Key: string; Session?: string; Value: string }

async function session(body: Record<string, unknown>): Promise<string> {
  const r = await agent.request('PUT', '/v1/session/create', { body: { TTL: '10s', LockDelay: '0s', ...body } });
  assert.equal(r.status, 200, r.text);
  return r.json<{ ID: string }>().ID;
}

async function acquire(key: string, id: string): Promise<void> {
  const r = await agent.request('PUT', `/v1/kv/${key}?acquire=${id}`, { body: id });
  assert.deepEqual([r.status, r.text], [200, 'true'], `acquire ${key}`);
}

/** Blocks on `key` until `done(entry or undefined)` holds; returns the ms since `t0` when it did. */
async function watchUntil(key: string, t0: number, done: (e: KvEntry | undefined) => boolean, limitMs: number): Promise<number> {
  let index = 0;
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed > limitMs) throw new Error(`${key}: condition not reached within ${limitMs} ms`);
    const r = await agent.request('GET', `/v1/kv/${key}?index=${index}&wait=30s`);
    const entry = r.status === 200 ? r.json<KvEntry[]>()[0] : undefined;
    if (r.status !== 200 && r.status !== 404) throw new Error(`${key}: ${r.status} ${r.text}`);
    if (done(entry)) return performance.now() - t0;
    index = r.index;
  }
}

test('TTL 10s: release and delete behaviours fire at ~2×TTL; a renewed session keeps its lock', async () => {
  const t0 = performance.now();
  const released = await session({ Name: 'ttl-release', Behavior: 'release' });
  const deleted = await session({ Name: 'ttl-delete', Behavior: 'delete' });
  const renewed = await session({ Name: 'ttl-renewed', Behavior: 'release' });
  await acquire('ttl/release', released);
  await acquire('ttl/delete', deleted);
  await acquire('ttl/renewed', renewed);

  // Renew every 4 s, well inside the TTL, until the others have expired.
  let renewing = true;
  const renewer = (async () => {
    while (renewing) {
      await sleep(4000);
      if (!renewing) break;
      const r = await agent.request('PUT', `/v1/session/renew/${renewed}`);
      assert.equal(r.status, 200, `renew: ${r.text}`);
    }
  })();

  try {
    const [releaseMs, deleteMs] = await Promise.all([
      watchUntil('ttl/release', t0, (e) => e !== undefined && e.Session === undefined, 26_000),
      watchUntil('ttl/delete', t0, (e) => e === undefined, 26_000),
    ]);
    // Consul's timer is 2×TTL from creation (or the last renewal); allow for scheduling slack.
    for (const [what, ms] of [['release', releaseMs], ['delete', deleteMs]] as const) {
      assert.ok(ms >= 19_000, `${what}: invalidated after ${ms.toFixed(0)} ms, before 2×TTL`);
      assert.ok(ms <= 24_000, `${what}: invalidated after ${ms.toFixed(0)} ms, well past 2×TTL`);
    }
    const rel = (await agent.request('GET', '/v1/kv/ttl/release')).json<KvEntry[]>()[0]!;
    assert.equal(Buffer.from(rel.Value, 'base64').toString(), released, 'release keeps the value');
    const info = await agent.request('GET', `/v1/session/info/${released}`);
    assert.deepEqual([info.status, info.json()], [200, []], 'the expired session is gone (Consul answers an empty list)');

    const kept = (await agent.request('GET', '/v1/kv/ttl/renewed')).json<KvEntry[]>()[0]!;
    assert.equal(kept.Session, renewed, 'the renewed session still holds its lock past 2×TTL of its creation');
  } finally {
    renewing = false;
    await renewer;
  }
});

test('TTLs outside 10s–24h or unparsable are refused with "Invalid Session TTL"', async () => {
  for (const ttl of ['9s', '25h', 'soon', '-10s']) {
    const r = await agent.request('PUT', '/v1/session/create', { body: { TTL: ttl } });
    assert.equal(r.status, 400, `TTL ${ttl}: ${r.status} ${r.text}`);
    assert.match(r.text, /^Invalid Session TTL/, `TTL ${ttl}`);
  }
  const before = (await agent.request('GET', '/v1/session/list')).json<unknown[]>().length;
  const ok = await agent.request('PUT', '/v1/session/create', { body: { TTL: '10.5s' } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await agent.request('GET', '/v1/session/list')).json<unknown[]>().length, before + 1);
});
