// Consistency modes on a follower: default reads wait for the leader's index (defaultRead), ?stale
// reads do not, ?max_stale falls back to a default read when the server lost touch with the leader.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, type Harness } from './helpers.ts';

/** A follower one write behind the leader: defaultRead applies the pending write (as catching up to
 *  the leader's commit index would) and counts its calls; consistentRead is counted apart. */
type Follower = Harness & { calls: { defaultRead: number; consistentRead: number }; pending: (() => void)[] };

function follower(): Follower {
  const h = harness() as Follower;
  h.calls = { defaultRead: 0, consistentRead: 0 };
  h.pending = [];
  h.raft.lastContactMs = 40;
  h.backend.defaultRead = async () => {
    h.calls.defaultRead++;
    await new Promise((r) => setImmediate(r));
    for (const f of h.pending.splice(0)) f();
  };
  h.backend.consistentRead = async () => {
    h.calls.consistentRead++;
  };
  return h;
}

function kvValue(body: string): string {
  return Buffer.from(JSON.parse(body)[0].Value, 'base64').toString();
}

describe('default-mode reads wait for the leader (defaultRead)', () => {
  test('a default read calls defaultRead once, before its query, and sees what the leader committed', async () => {
    const h = follower();
    h.apply({ type: 'kvSet', Key: 'k', Value: Buffer.from('old') });
    h.pending.push(() => h.apply({ type: 'kvSet', Key: 'k', Value: Buffer.from('new') }));
    const res = await h.req('GET', '/v1/kv/k');
    assert.equal(res.statusCode, 200);
    assert.equal(kvValue(res.body), 'new', 'the read ran after the follower caught up');
    assert.equal(h.calls.defaultRead, 1);
    assert.equal(res.headers['x-consul-lastcontact'], '0');
    assert.equal(res.headers['x-consul-effective-consistency'], 'leader');
    for (const url of ['/v1/catalog/nodes', '/v1/catalog/services', '/v1/health/state/any', '/v1/session/list']) {
      const before: number = h.calls.defaultRead;
      assert.equal((await h.req('GET', url)).statusCode, 200, url);
      assert.equal(h.calls.defaultRead, before + 1, url);
    }
    assert.equal(h.calls.consistentRead, 0);
    await h.close();
  });

  test('a read-only txn in default mode calls it too; a stale one does not', async () => {
    const h = follower();
    h.pending.push(() => h.apply({ type: 'kvSet', Key: 't', Value: Buffer.from('v') }));
    const res = await h.json<{ Results: { KV: { Value: string } }[] }>('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 't' } }]);
    assert.equal(res.status, 200);
    assert.equal(Buffer.from(res.body.Results[0]!.KV.Value, 'base64').toString(), 'v');
    assert.equal(h.calls.defaultRead, 1);
    assert.equal((await h.req('PUT', '/v1/txn?stale', [{ KV: { Verb: 'get', Key: 't' } }])).statusCode, 200);
    assert.equal(h.calls.defaultRead, 1);
    await h.close();
  });

  test('a blocking read calls it once, not again on each wake-up', async () => {
    const h = follower();
    await h.req('PUT', '/v1/kv/b', 'v1');
    const index = Number((await h.req('GET', '/v1/kv/b')).headers['x-consul-index']);
    const before = h.calls.defaultRead;
    const pending = h.req('GET', `/v1/kv/b?index=${index}&wait=10s`);
    // Parked on the store's watch before the writes (else it would just read the new value).
    for (let i = 0; i < 1000 && h.store.watchListenerCount() === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(h.store.watchListenerCount() > 0, 'the read is parked');
    await h.req('PUT', '/v1/kv/other', 'x'); // wakes nothing the read watches
    await h.req('PUT', '/v1/kv/b', 'v2');
    const res = await pending;
    assert.equal(kvValue(res.body), 'v2');
    assert.equal(h.calls.defaultRead, before + 1);
    await h.close();
  });

  test('?stale reads at once with the real last contact; ?consistent uses consistentRead instead', async () => {
    const h = follower();
    h.pending.push(() => assert.fail('a stale read must not wait for the leader'));
    const stale = await h.req('GET', '/v1/catalog/nodes?stale');
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.headers['x-consul-lastcontact'], '40');
    assert.equal(stale.headers['x-consul-effective-consistency'], 'stale');
    assert.equal(h.calls.defaultRead, 0);
    h.pending.length = 0;
    const consistent = await h.req('GET', '/v1/catalog/nodes?consistent');
    assert.equal(consistent.statusCode, 200);
    assert.equal(h.calls.defaultRead, 0);
    assert.equal(h.calls.consistentRead, 1);
    await h.close();
  });

  test('defaultRead failing with ERR_NO_LEADER is a 500 "No cluster leader"; ?stale still answers', async () => {
    const h = follower();
    h.raft.knownLeader = false;
    h.backend.defaultRead = async () => {
      throw Object.assign(new Error('No cluster leader'), { code: 'ERR_NO_LEADER' });
    };
    const res = await h.req('GET', '/v1/kv/k');
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'No cluster leader');
    const txn = await h.req('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 'k' } }]);
    assert.equal(txn.statusCode, 500);
    assert.equal(txn.body, 'No cluster leader');
    const stale = await h.req('GET', '/v1/kv/k?stale');
    assert.equal(stale.statusCode, 404);
    assert.equal(stale.headers['x-consul-knownleader'], 'false');
    await h.close();
  });
});

describe('?max_stale', () => {
  test('within the bound it is a stale read (max_stale alone implies ?stale)', async () => {
    const h = follower();
    h.raft.lastContactMs = 500;
    for (const url of ['/v1/catalog/nodes?stale&max_stale=1s', '/v1/catalog/nodes?max_stale=1s']) {
      const res = await h.req('GET', url);
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['x-consul-lastcontact'], '500', url);
      assert.equal(res.headers['x-consul-effective-consistency'], 'stale', url);
    }
    assert.equal(h.calls.defaultRead, 0);
    await h.close();
  });

  test('past the bound it is served as a default read, reporting last contact 0', async () => {
    const h = follower();
    h.raft.lastContactMs = 5000;
    h.pending.push(() => h.apply({ type: 'kvSet', Key: 'm', Value: Buffer.from('fresh') }));
    const res = await h.req('GET', '/v1/kv/m?stale&max_stale=2s');
    assert.equal(res.statusCode, 200);
    assert.equal(kvValue(res.body), 'fresh');
    assert.equal(h.calls.defaultRead, 1);
    assert.equal(res.headers['x-consul-lastcontact'], '0');
    assert.equal(res.headers['x-consul-effective-consistency'], 'leader');
    // The same fallback on the read-only txn path.
    const txn = await h.req('PUT', '/v1/txn?max_stale=2s', [{ KV: { Verb: 'get', Key: 'm' } }]);
    assert.equal(txn.statusCode, 200);
    assert.equal(txn.headers['x-consul-lastcontact'], '0');
    assert.equal(h.calls.defaultRead, 2);
    await h.close();
  });

  test('past the bound without a leader it fails like a default read', async () => {
    const h = follower();
    h.raft.lastContactMs = 60_000;
    h.raft.knownLeader = false;
    h.backend.defaultRead = async () => {
      throw Object.assign(new Error('No cluster leader'), { code: 'ERR_NO_LEADER' });
    };
    const res = await h.req('GET', '/v1/catalog/nodes?stale&max_stale=10s');
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'No cluster leader');
    await h.close();
  });

  test('bad values are a 400 with Consul\'s text; max_stale conflicts with ?consistent', async () => {
    const h = follower();
    const bad = await h.req('GET', '/v1/kv/k?max_stale=soon');
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.body, 'Invalid max_stale value "soon"');
    const both = await h.req('GET', '/v1/kv/k?consistent&max_stale=5s');
    assert.equal(both.statusCode, 400);
    assert.equal(both.body, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
    // A zero bound allows nothing stale: a plain default read.
    const zero = await h.req('GET', '/v1/kv/k?max_stale=0s');
    assert.equal(zero.headers['x-consul-effective-consistency'], 'leader');
    assert.equal(h.calls.defaultRead, 1);
    await h.close();
  });
});
