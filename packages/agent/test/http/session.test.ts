// /v1/session and /v1/txn and /v1/event.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLockDelay } from '../../src/http/routes/session.ts';
import { harness, NODE } from './helpers.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('sessions', () => {
  test('create with Consul\'s defaults; info, list, node', async () => {
    const h = harness();
    const created = await h.json<{ ID: string }>('PUT', '/v1/session/create', '');
    assert.equal(created.status, 200);
    assert.match(created.body.ID, /^[0-9a-f-]{36}$/);
    const info = await h.json<Record<string, unknown>[]>('GET', `/v1/session/info/${created.body.ID}`);
    assert.equal(info.body.length, 1);
    const s = info.body[0]!;
    assert.equal(s.Node, NODE);
    assert.equal(s.LockDelay, 15e9);
    assert.equal(s.Behavior, 'release');
    assert.deepEqual(s.NodeChecks, ['serfHealth']);
    assert.equal(info.headers['x-consul-index'], String(s.ModifyIndex));
    assert.equal((await h.json<unknown[]>('GET', '/v1/session/list')).body.length, 1);
    assert.equal((await h.json<unknown[]>(`GET`, `/v1/session/node/${NODE}`)).body.length, 1);
    assert.deepEqual((await h.json('GET', '/v1/session/node/other')).body, []);
    assert.deepEqual((await h.json('GET', '/v1/session/info/00000000-0000-4000-8000-000000000000')).body, []);
    await h.close();
  });

  test('body fields, case-insensitive; naming checks replaces the serfHealth default', async () => {
    const h = harness();
    const { body } = await h.json<{ ID: string }>('PUT', '/v1/session/create', { name: 'lock', behavior: 'delete', ttl: '30s', lockdelay: '5s', nodechecks: [] });
    const s = h.store.sessionGet(body.ID).value!;
    assert.equal(s.Name, 'lock');
    assert.equal(s.Behavior, 'delete');
    assert.equal(s.TTL, '30s');
    assert.equal(s.LockDelay, 5e9);
    assert.deepEqual(s.NodeChecks, []);
    await h.close();
  });

  test('LockDelay: Go duration strings, nanoseconds, and small numbers meaning seconds', () => {
    const cases: [unknown, number][] = [['15s', 15e9], ['0.5s', 5e8], [5, 5e9], [999, 999e9], [2_000_000_000, 2e9], ['0s', 0], [0, 0]];
    for (const [input, ns] of cases) assert.equal(parseLockDelay(input), ns, String(input));
    assert.throws(() => parseLockDelay('soon'), /Request decode failed: time: invalid duration "soon"/);
    assert.throws(() => parseLockDelay(true), /Request decode failed/);
  });

  test('invalid sessions are refused with Consul\'s text and nothing is written', async () => {
    const h = harness();
    const cases: [unknown, number, RegExp][] = [
      [{ TTL: '5s' }, 400, /^Invalid Session TTL '5000000000', must be between \[10s=24h0m0s\]$/],
      [{ TTL: '25h' }, 400, /^Invalid Session TTL/],
      [{ TTL: 'soon' }, 400, /^Invalid Session TTL 'soon'/],
      [{ Behavior: 'explode' }, 400, /^Invalid Behavior setting 'explode'$/],
      [{ LockDelay: 'x' }, 400, /^Request decode failed: /],
      [{ Name: 1 }, 400, /^Request decode failed: json: cannot unmarshal number 1 into Go struct field Session.Name of type string$/],
      ['{', 400, /^Request decode failed: /],
      [{ Name: 'x', Timeout: '10s' }, 400, /^Request decode failed: json: unknown field "Timeout"$/],
      [{ Node: 'ghost' }, 500, /Missing node registration|ghost/],
      [{ NodeChecks: ['nope'] }, 500, /nope/],
    ];
    for (const [body, status, re] of cases) {
      const res = await h.req('PUT', '/v1/session/create', body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)} → ${res.body}`);
      assert.match(res.body, re);
    }
    // Refused commands may still take a Raft index (as in Consul); they leave no session behind.
    assert.deepEqual(h.store.sessionList().value, []);
    assert.equal(h.store.tableIndex('sessions'), 1);
    await h.close();
  });

  test('renew calls the leader\'s timer hook and answers the session; unknown is 404', async () => {
    const h = harness();
    const { body } = await h.json<{ ID: string }>('PUT', '/v1/session/create', { TTL: '10s' });
    const renewed = await h.json<{ ID: string }[]>('PUT', `/v1/session/renew/${body.ID}`);
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body[0]!.ID, body.ID);
    assert.deepEqual(h.renewed, [body.ID]);
    const missing = await h.req('PUT', '/v1/session/renew/00000000-0000-4000-8000-000000000000');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.body, "Session id '00000000-0000-4000-8000-000000000000' not found");
    h.backend.sessionTimers!.renew = async () => {
      throw Object.assign(new Error('not leader'), { code: 'ERR_NOT_LEADER' });
    };
    const nl = await h.req('PUT', `/v1/session/renew/${body.ID}`);
    assert.equal(nl.statusCode, 500);
    assert.equal(nl.body, 'No cluster leader');
    await h.close();
  });

  test('destroy; a missing ID is 400', async () => {
    const h = harness();
    const { body } = await h.json<{ ID: string }>('PUT', '/v1/session/create', '');
    assert.equal((await h.req('PUT', `/v1/session/destroy/${body.ID}`)).body, 'true');
    assert.equal(h.store.sessionGet(body.ID).value, null);
    const res = await h.req('PUT', '/v1/session/destroy/');
    assert.equal(res.statusCode, 400);
    assert.equal(res.body, 'Missing session');
    await h.close();
  });
});

describe('txn', () => {
  test('mixed KV ops apply atomically and answer Consul\'s shape', async () => {
    const h = harness();
    const res = await h.json<{ Results: { KV: Record<string, unknown> }[]; Errors: null }>('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: 'a', Value: b64('1') } },
      { kv: { verb: 'set', key: 'b', value: b64('2'), flags: 7 } },
      { KV: { Verb: 'get', Key: 'a' } },
    ]);
    assert.equal(res.status, 200);
    assert.equal(res.body.Errors, null);
    assert.equal(res.body.Results.length, 3);
    assert.equal(res.body.Results[0]!.KV.Value, null, 'write verbs blank the value, as Consul');
    assert.equal(res.body.Results[2]!.KV.Value, b64('1'));
    assert.equal(h.store.kvGet('b').value!.Flags, 7n);
    await h.close();
  });

  test('a read-only transaction is answered without a Raft write', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/r', 'x');
    const before = h.store.lastIndex();
    const res = await h.json<{ Results: { KV: { Value: string } }[] }>('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 'r' } }, { KV: { Verb: 'check-not-exists', Key: 'nope' } }]);
    assert.equal(res.status, 200);
    assert.equal(res.body.Results[0]!.KV.Value, b64('x'));
    assert.equal(res.headers['x-consul-knownleader'], 'true');
    assert.equal(h.store.lastIndex(), before);
    const missing = await h.json<{ Errors: unknown[] }>('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 'nope' } }]);
    assert.equal(missing.status, 409);
    assert.equal(missing.body.Errors.length, 1);
    h.raft.knownLeader = false;
    assert.equal((await h.req('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 'r' } }])).statusCode, 500);
    assert.equal((await h.req('PUT', '/v1/txn?stale', [{ KV: { Verb: 'get', Key: 'r' } }])).statusCode, 200);
    await h.close();
  });

  test('a failing op is 409 with Errors, and nothing is applied', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/a', 'old');
    const idx = h.store.kvGet('a').value!.ModifyIndex;
    const res = await h.json<{ Results: null; Errors: { OpIndex: number; What: string }[] }>('PUT', '/v1/txn', [
      { KV: { Verb: 'set', Key: 'new', Value: b64('x') } },
      { KV: { Verb: 'cas', Key: 'a', Value: b64('y'), Index: idx + 5 } },
    ]);
    assert.equal(res.status, 409);
    assert.equal(res.body.Results, null);
    assert.equal(res.body.Errors.length, 1);
    assert.equal(res.body.Errors[0]!.OpIndex, 1);
    assert.equal(h.store.kvGet('new').value, null);
    await h.close();
  });

  test('node, service and check ops', async () => {
    const h = harness();
    const res = await h.json<{ Results: unknown[]; Errors: unknown }>('PUT', '/v1/txn', [
      { Node: { Verb: 'set', Node: { Node: 'tn', Address: '10.9.9.9' } } },
      { Service: { Verb: 'set', Node: 'tn', Service: { Service: 'api', Port: 9 } } },
      { Check: { Verb: 'set', Check: { Node: 'tn', CheckID: 'api-alive', Status: 'passing', ServiceID: 'api', Definition: { TCP: '10.9.9.9:9', Interval: '5s' } } } },
    ]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(h.store.serviceNodes('api').value[0]!.Node, 'tn');
    assert.equal(h.store.nodeChecks('tn').value[0]!.Definition.Interval, '5s');
    await h.close();
  });

  test('limits and malformed bodies', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    const ops129 = Array.from({ length: 129 }, (_, i) => ({ KV: { Verb: 'set', Key: `k${i}`, Value: '' } }));
    const cases: [unknown, number, string | RegExp][] = [
      [ops129, 413, 'Transaction contains too many operations (129 > 128)'],
      [[{ KV: { Verb: 'set', Key: 'big', Value: Buffer.alloc(512 * 1024 + 1).toString('base64') } }], 413, /^Request body too large, max size: 524288 bytes$/],
      [[{ KV: { Verb: 'set', Key: 'k', Value: '***' } }], 400, /^Failed to parse body: .*base64/],
      [[{ KV: { Verb: 'set', Key: 'k' }, Node: { Verb: 'get', Node: { Node: 'x' } } }], 400, /exactly one of/],
      [[{ KV: { Verb: 'set', Key: 1 } }], 400, /^Failed to parse body: json: cannot unmarshal number 1 into Go struct field TxnOp.KV.Key of type string$/],
      [{ KV: {} }, 400, /^Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps$/],
      [[{ KV: { Verb: 'get', Key: 'k', Sesion: 'x' } }], 400, /^Failed to parse body: json: unknown field "Sesion"$/],
      ['[', 400, /^Failed to parse body: /],
      ['', 400, 'Failed to parse body: EOF'],
    ];
    for (const [body, status, want] of cases) {
      const res = await h.req('PUT', '/v1/txn', body);
      assert.equal(res.statusCode, status, res.body);
      if (typeof want === 'string') assert.equal(res.body, want);
      else assert.match(res.body, want);
    }
    // 128 ops are fine.
    assert.equal((await h.req('PUT', '/v1/txn', ops129.slice(1))).statusCode, 200);
    assert.equal(h.store.lastIndex(), before + 1);
    await h.close();
  });

  test('a KV value over the limit inside a small-enough body is 413 naming the key', async () => {
    const limits = { ...(await import('../../src/config/runtime.ts')).defaults().limits, kvMaxValueSizeBytes: 4 };
    const h = harness({ config: { limits } });
    const res = await h.req('PUT', '/v1/txn', [{ KV: { Verb: 'set', Key: 'k', Value: b64('12345') } }]);
    assert.equal(res.statusCode, 413);
    assert.equal(res.body, 'Value for key "k" is too large (5 > 4 bytes)');
    await h.close();
  });
});

describe('events', () => {
  test('fire answers the event; list shows it, filtered by ?name', async () => {
    const h = harness();
    const fired = await h.json<Record<string, unknown>>('PUT', '/v1/event/fire/deploy', 'v1.2');
    assert.equal(fired.status, 200);
    assert.deepEqual(Object.keys(fired.body), ['ID', 'Name', 'Payload', 'NodeFilter', 'ServiceFilter', 'TagFilter', 'Version', 'LTime']);
    assert.equal(fired.body.Payload, b64('v1.2'));
    await h.req('PUT', '/v1/event/fire/other');
    const list = await h.json<{ Name: string; Payload: unknown }[]>('GET', '/v1/event/list');
    assert.deepEqual(list.body.map((e) => e.Name), ['deploy', 'other']);
    assert.equal(list.body[1]!.Payload, null);
    assert.equal(list.headers['x-consul-index'], '3');
    assert.deepEqual((await h.json<{ Name: string }[]>('GET', '/v1/event/list?name=deploy')).body.map((e) => e.Name), ['deploy']);
    await h.close();
  });

  test('filters: an event for another node is not delivered here; bad filters are 400', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['blue'] });
    await h.req('PUT', '/v1/event/fire/a?node=other-node');
    await h.req('PUT', `/v1/event/fire/b?node=${NODE}`);
    await h.req('PUT', '/v1/event/fire/c?service=web&tag=green');
    await h.req('PUT', '/v1/event/fire/d?service=web&tag=bl');
    assert.deepEqual((await h.json<{ Name: string }[]>('GET', '/v1/event/list')).body.map((e) => e.Name), ['b', 'd']);
    assert.equal((await h.req('PUT', '/v1/event/fire/x?tag=a')).body, 'Cannot provide tag filter without service filter');
    assert.equal((await h.req('PUT', '/v1/event/fire/x?node=(')).statusCode, 400);
    assert.equal((await h.req('PUT', '/v1/event/fire/x', Buffer.alloc(600))).statusCode, 500);
    await h.close();
  });

  test('event/list blocks until a new event arrives', async () => {
    const h = harness();
    const first = await h.req('GET', '/v1/event/list');
    assert.equal(first.headers['x-consul-index'], '1');
    const pending = h.json<{ Name: string }[]>('GET', '/v1/event/list?index=1&wait=10s');
    for (let i = 0; i < 1000 && h.server.events.waiterCount() === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(h.server.events.waiterCount(), 1, 'the list is waiting');
    const t0 = performance.now();
    await h.req('PUT', '/v1/event/fire/wake');
    const res = await pending;
    // Woken by the event, not by its 10 s wait (a generous bound: speed is for the benchmarks).
    assert.ok(performance.now() - t0 < 3000, `answered ${performance.now() - t0} ms after the event`);
    assert.deepEqual(res.body.map((e) => e.Name), ['wake']);
    assert.equal(h.server.events.waiterCount(), 0);
    await h.close();
  });
});
