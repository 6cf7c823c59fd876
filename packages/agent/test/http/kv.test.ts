// /v1/kv: reads, writes, CAS, locks, limits.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, type Harness } from './helpers.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function session(h: Harness, body: unknown = {}): Promise<string> {
  const res = await h.json<{ ID: string }>('PUT', '/v1/session/create', body);
  assert.equal(res.status, 200);
  return res.body.ID;
}

describe('kv reads', () => {
  test('table of GETs', async () => {
    const h = harness();
    for (const [k, v] of [['app/a', 'A'], ['app/b/c', 'C'], ['app/b/d', 'D'], ['other', 'O']]) {
      await h.req('PUT', `/v1/kv/${k}`, v);
    }
    await h.req('PUT', '/v1/kv/empty', '');
    await h.req('PUT', '/v1/kv/flagged?flags=42', 'F');
    const cases: { name: string; url: string; status: number; body?: unknown; raw?: string }[] = [
      { name: 'single key', url: '/v1/kv/app/a', status: 200, body: [{ LockIndex: 0, Key: 'app/a', Flags: 0, Value: b64('A'), CreateIndex: 2, ModifyIndex: 2 }] },
      { name: 'missing key is 404 with an empty body', url: '/v1/kv/nope', status: 404, raw: '' },
      { name: 'empty key without recurse', url: '/v1/kv/', status: 400, raw: 'Missing key name' },
      { name: 'empty value is null', url: '/v1/kv/empty', status: 200, body: [{ LockIndex: 0, Key: 'empty', Flags: 0, Value: null, CreateIndex: 6, ModifyIndex: 6 }] },
      { name: 'flags', url: '/v1/kv/flagged', status: 200, body: [{ LockIndex: 0, Key: 'flagged', Flags: 42, Value: b64('F'), CreateIndex: 7, ModifyIndex: 7 }] },
      { name: 'raw', url: '/v1/kv/app/b/c?raw', status: 200, raw: 'C' },
      { name: 'keys under a prefix', url: '/v1/kv/app/?keys', status: 200, body: ['app/a', 'app/b/c', 'app/b/d'] },
      { name: 'keys folded at the separator', url: '/v1/kv/app/?keys&separator=/', status: 200, body: ['app/a', 'app/b/'] },
      { name: 'keys with the old spelling', url: '/v1/kv/app/?keys&seperator=/', status: 200, body: ['app/a', 'app/b/'] },
      { name: 'keys of the root', url: '/v1/kv/?keys&separator=/', status: 200, body: ['app/', 'empty', 'flagged', 'other'] },
      { name: 'keys of a missing prefix', url: '/v1/kv/zzz?keys', status: 404, raw: '' },
      { name: 'recurse', url: '/v1/kv/app/b?recurse', status: 200 },
      { name: 'recurse of a missing prefix', url: '/v1/kv/zzz?recurse', status: 404, raw: '' },
      { name: 'traversal in a key', url: '/v1/kv/a%2F..%2Fb', status: 400, raw: 'key contains path traversal sequence' },
    ];
    for (const c of cases) {
      const res = await h.req('GET', c.url);
      assert.equal(res.statusCode, c.status, c.name);
      if (c.body !== undefined) assert.deepEqual(JSON.parse(res.body), c.body, c.name);
      if (c.raw !== undefined) assert.equal(res.body, c.raw, c.name);
      // Every read answers with the index it saw, also a 404 (Consul's KV endpoint sets it before
      // looking at the result); a refused request never reached the store and has none.
      if (c.status === 400) assert.equal(res.headers['x-consul-index'], undefined, c.name);
      else assert.ok(Number(res.headers['x-consul-index']) >= 1, `${c.name}: X-Consul-Index ${res.headers['x-consul-index']}`);
    }
    const rec = JSON.parse((await h.req('GET', '/v1/kv/app/b?recurse')).body) as { Key: string }[];
    assert.deepEqual(rec.map((e) => e.Key), ['app/b/c', 'app/b/d']);
    const raw = await h.req('GET', '/v1/kv/app/b/c?raw');
    assert.equal(raw.headers['content-type'], 'text/plain');
    assert.equal(raw.headers['x-content-type-options'], 'nosniff');
    await h.close();
  });

  test('X-Consul-Index of a key is its ModifyIndex; of a missing key the KV index', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/a', '1');
    await h.req('PUT', '/v1/kv/b', '2');
    assert.equal((await h.req('GET', '/v1/kv/a')).headers['x-consul-index'], '2');
    assert.equal((await h.req('GET', '/v1/kv/b')).headers['x-consul-index'], '3');
    assert.equal((await h.req('GET', '/v1/kv/c')).headers['x-consul-index'], '3');
    await h.close();
  });
});

describe('kv writes', () => {
  test('PUT and DELETE answer the JSON literal true', async () => {
    const h = harness();
    const put = await h.req('PUT', '/v1/kv/x', 'hello');
    assert.equal(put.body, 'true');
    assert.equal(put.headers['content-type'], 'application/json');
    assert.equal((await h.req('DELETE', '/v1/kv/x')).body, 'true');
    assert.equal(h.store.kvGet('x').value, null);
    // Deleting what is not there is still true.
    assert.equal((await h.req('DELETE', '/v1/kv/x')).body, 'true');
    await h.close();
  });

  test('binary values round-trip', async () => {
    const h = harness();
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    await h.req('PUT', '/v1/kv/bin', bytes, { 'content-type': 'application/octet-stream' });
    const raw = await h.server.app.inject({ method: 'GET', url: '/v1/kv/bin?raw' });
    assert.deepEqual(raw.rawPayload, bytes);
    await h.close();
  });

  test('CAS: 0 creates only when absent; N writes only at ModifyIndex N', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/kv/c?cas=0', 'first')).body, 'true');
    assert.equal((await h.req('PUT', '/v1/kv/c?cas=0', 'again')).body, 'false');
    const idx = h.store.kvGet('c').value!.ModifyIndex;
    assert.equal((await h.req('PUT', `/v1/kv/c?cas=${idx + 100}`, 'stale')).body, 'false');
    assert.equal((await h.req('PUT', `/v1/kv/c?cas=${idx}`, 'second')).body, 'true');
    assert.equal(Buffer.from(h.store.kvGet('c').value!.Value!).toString(), 'second');
    // Delete-CAS.
    assert.equal((await h.req('DELETE', `/v1/kv/c?cas=${idx}`)).body, 'false');
    const idx2 = h.store.kvGet('c').value!.ModifyIndex;
    assert.equal((await h.req('DELETE', `/v1/kv/c?cas=${idx2}`)).body, 'true');
    assert.equal(h.store.kvGet('c').value, null);
    await h.close();
  });

  test('concurrent CAS writers: exactly one wins per index', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/counter', '0');
    const idx = h.store.kvGet('counter').value!.ModifyIndex;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => h.req('PUT', `/v1/kv/counter?cas=${idx}`, String(i + 1))));
    assert.equal(results.filter((r) => r.body === 'true').length, 1);
    assert.equal(results.filter((r) => r.body === 'false').length, 9);
    await h.close();
  });

  test('DELETE ?recurse removes a tree; the empty prefix removes everything', async () => {
    const h = harness();
    for (const k of ['t/a', 't/b', 'u']) await h.req('PUT', `/v1/kv/${k}`, 'v');
    assert.equal((await h.req('DELETE', '/v1/kv/t?recurse')).body, 'true');
    assert.deepEqual(h.store.kvKeys('', '').value, ['u']);
    assert.equal((await h.req('DELETE', '/v1/kv/?recurse')).body, 'true');
    assert.deepEqual(h.store.kvKeys('', '').value, []);
    await h.close();
  });

  test('bad input is refused with 400 and changes nothing', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/keep', 'v');
    const before = h.store.lastIndex();
    const cases: [string, string, RegExp][] = [
      ['PUT', '/v1/kv/', /^Missing key name$/],
      ['DELETE', '/v1/kv/', /^Missing key name$/],
      ['PUT', '/v1/kv/x?cas=1&acquire=abc', /^Conflicting flags: /],
      ['PUT', '/v1/kv/x?acquire=a&release=b', /^Conflicting flags: /],
      ['DELETE', '/v1/kv/x?recurse&cas=1', /^Conflicting flags: /],
      ['PUT', '/v1/kv/x?flags=abc', /^Invalid flags/],
      ['PUT', '/v1/kv/x?cas=-1', /^Invalid cas index/],
      ['PUT', '/v1/kv//leading', /^key must not begin with a '\/'$/],
      ['PUT', '/v1/kv/a%2F..%2F..%2Fetc', /traversal/],
      ['PUT', '/v1/kv/sp%20ace', /invalid characters/],
    ];
    for (const [m, url, re] of cases) {
      const res = await h.req(m, url, 'v');
      assert.equal(res.statusCode, 400, url);
      assert.match(res.body, re, url);
    }
    assert.equal(h.store.lastIndex(), before);
    await h.close();
  });

  test('a value over 512 KiB is 413 with Consul\'s text; exactly 512 KiB is fine', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    const big = Buffer.alloc(512 * 1024 + 1, 'a');
    const res = await h.req('PUT', '/v1/kv/big', big);
    assert.equal(res.statusCode, 413);
    assert.equal(res.body, 'Request body(524289 bytes) too large, max size: 524288 bytes');
    assert.equal(h.store.lastIndex(), before);
    assert.equal((await h.req('PUT', '/v1/kv/big', Buffer.alloc(512 * 1024, 'a'))).statusCode, 200);
    await h.close();
  });

  test('kv_max_value_size from the config sets the limit', async () => {
    const h = harness({ config: { limits: { ...(await import('../../src/config/runtime.ts')).defaults().limits, kvMaxValueSizeBytes: 10 } } });
    const res = await h.req('PUT', '/v1/kv/k', '12345678901');
    assert.equal(res.statusCode, 413);
    assert.equal(res.body, 'Request body(11 bytes) too large, max size: 10 bytes');
    await h.close();
  });
});

describe('kv locks', () => {
  test('acquire, contend, release, reacquire', async () => {
    const h = harness();
    const s1 = await session(h, { LockDelay: '0s' });
    const s2 = await session(h, { LockDelay: '0s' });
    assert.equal((await h.req('PUT', `/v1/kv/lock?acquire=${s1}`, 'me')).body, 'true');
    const held = JSON.parse((await h.req('GET', '/v1/kv/lock')).body)[0];
    assert.equal(held.Session, s1);
    assert.equal(held.LockIndex, 1);
    assert.equal((await h.req('PUT', `/v1/kv/lock?acquire=${s2}`, 'you')).body, 'false');
    // Re-acquiring by the holder succeeds and updates the value.
    assert.equal((await h.req('PUT', `/v1/kv/lock?acquire=${s1}`, 'me2')).body, 'true');
    assert.equal((await h.req('PUT', `/v1/kv/lock?release=${s2}`, '')).body, 'false');
    assert.equal((await h.req('PUT', `/v1/kv/lock?release=${s1}`, '')).body, 'true');
    const released = JSON.parse((await h.req('GET', '/v1/kv/lock')).body)[0];
    assert.equal(released.Session, undefined);
    assert.equal((await h.req('PUT', `/v1/kv/lock?acquire=${s2}`, 'you')).body, 'true');
    assert.equal(JSON.parse((await h.req('GET', '/v1/kv/lock')).body)[0].LockIndex, 2);
    await h.close();
  });

  test('two sessions racing for one lock: exactly one holds it', async () => {
    const h = harness();
    const sessions = await Promise.all(Array.from({ length: 6 }, () => session(h)));
    const results = await Promise.all(sessions.map((s) => h.req('PUT', `/v1/kv/leader?acquire=${s}`, s)));
    const winners = sessions.filter((_, i) => results[i]!.body === 'true');
    assert.equal(winners.length, 1);
    assert.equal(h.store.kvGet('leader').value!.Session, winners[0]);
    await h.close();
  });

  test('an unknown session is 500 "invalid session ..."; the lock-delay answers false without a write', async () => {
    const h = harness();
    const res = await h.req('PUT', '/v1/kv/l?acquire=00000000-0000-4000-8000-000000000000', 'x');
    assert.equal(res.statusCode, 500);
    assert.match(res.body, /^invalid session/);
    assert.equal(h.store.kvGet('l').value, null);

    const s1 = await session(h); // default LockDelay 15 s
    assert.equal((await h.req('PUT', `/v1/kv/l?acquire=${s1}`, 'x')).body, 'true');
    assert.equal((await h.req('PUT', `/v1/session/destroy/${s1}`)).body, 'true');
    const s2 = await session(h);
    const before = h.store.lastIndex();
    assert.equal((await h.req('PUT', `/v1/kv/l?acquire=${s2}`, 'y')).body, 'false');
    assert.equal(h.store.lastIndex(), before, 'refused inside the lock-delay without a Raft write');
    await h.close();
  });

  test('destroying a session releases its locks (Behavior release) or deletes its keys (delete)', async () => {
    const h = harness();
    const rel = await session(h, { LockDelay: 0 });
    const del = await session(h, { Behavior: 'delete', LockDelay: 0 });
    await h.req('PUT', `/v1/kv/r?acquire=${rel}`, 'v');
    await h.req('PUT', `/v1/kv/d?acquire=${del}`, 'v');
    await h.req('PUT', `/v1/session/destroy/${rel}`);
    await h.req('PUT', `/v1/session/destroy/${del}`);
    assert.equal(h.store.kvGet('r').value!.Session, undefined);
    assert.equal(h.store.kvGet('d').value, null);
    await h.close();
  });
});
