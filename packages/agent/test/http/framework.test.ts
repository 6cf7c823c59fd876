// The conventions every endpoint shares: methods, errors, decoding, query options, headers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, DecodeError, type Schema } from '../../src/http/decode.ts';
import { mapError } from '../../src/http/errors.ts';
import { ServiceDefinitionSchema } from '../../src/http/schemas.ts';
import { Writable } from 'node:stream';
import pino from 'pino';
import { harness } from './helpers.ts';

describe('decode: Go encoding/json rules', () => {
  const schema: Schema = {
    name: 'T',
    strict: true,
    fields: { Name: 'string', Port: 'int', On: 'bool', Tags: 'stringArray', Meta: 'stringMap', TTL: 'duration', Sub: { object: { name: 'S', fields: { X: 'uint' } } } },
    aliases: { enable_tag: 'On' },
  };
  const ok: { name: string; input: unknown; want: Record<string, unknown> }[] = [
    { name: 'canonical keys', input: { Name: 'a', Port: 1 }, want: { Name: 'a', Port: 1 } },
    { name: 'lower-case keys', input: { name: 'a', port: 1 }, want: { Name: 'a', Port: 1 } },
    { name: 'mixed case keys', input: { nAmE: 'a' }, want: { Name: 'a' } },
    { name: 'snake_case alias', input: { enable_tag: true }, want: { On: true } },
    { name: 'null leaves the zero value', input: { Name: null, Port: 2 }, want: { Port: 2 } },
    { name: 'duration string', input: { TTL: '1m30s' }, want: { TTL: 90e9 } },
    { name: 'fractional duration', input: { ttl: '0.5s' }, want: { TTL: 5e8 } },
    { name: 'duration as nanoseconds', input: { TTL: 1000 }, want: { TTL: 1000 } },
    { name: 'map keys kept as sent', input: { meta: { Version: 'v1', lower: 'x' } }, want: { Meta: { Version: 'v1', lower: 'x' } } },
    { name: 'nested object keys', input: { sub: { x: 3 } }, want: { Sub: { X: 3 } } },
    { name: 'last duplicate wins', input: { name: 'a', Name: 'b' }, want: { Name: 'b' } },
  ];
  for (const c of ok) {
    test(`accepts: ${c.name}`, () => assert.deepEqual(decode(c.input, schema), c.want));
  }
  const bad: { name: string; input: unknown; message: string }[] = [
    { name: 'unknown field', input: { Foo: 1 }, message: 'json: unknown field "Foo"' },
    { name: 'nested unknown field is dropped (nested schema not strict)', input: { Sub: { Y: 1 } }, message: '' },
    { name: 'string for int', input: { Port: '80' }, message: 'json: cannot unmarshal string into Go struct field T.Port of type int' },
    { name: 'fraction for int', input: { Port: 1.5 }, message: 'json: cannot unmarshal number 1.5 into Go struct field T.Port of type int' },
    { name: 'negative uint', input: { Sub: { X: -1 } }, message: 'json: cannot unmarshal number -1 into Go struct field T.Sub.X of type uint64' },
    { name: 'number for bool', input: { On: 1 }, message: 'json: cannot unmarshal number 1 into Go struct field T.On of type bool' },
    { name: 'string for list', input: { Tags: 'a' }, message: 'json: cannot unmarshal string into Go struct field T.Tags of type []string' },
    { name: 'number in list', input: { Tags: ['a', 1] }, message: 'json: cannot unmarshal number 1 into Go struct field T.Tags of type string' },
    { name: 'number in map', input: { Meta: { a: 1 } }, message: 'json: cannot unmarshal number 1 into Go struct field T.Meta[a] of type string' },
    { name: 'bad duration', input: { TTL: '10' }, message: 'T.TTL: time: missing unit in duration "10"' },
    { name: 'array at the top', input: [], message: 'json: cannot unmarshal array into Go value of type structs.T' },
    { name: 'string at the top', input: 'x', message: 'json: cannot unmarshal string into Go value of type structs.T' },
  ];
  for (const c of bad) {
    test(`refuses: ${c.name}`, () => {
      if (c.message === '') {
        assert.deepEqual(decode(c.input, schema), { Sub: {} });
        return;
      }
      assert.throws(() => decode(c.input, schema), (e: unknown) => e instanceof DecodeError && e.message === c.message);
    });
  }
  test('service definitions accept the snake_case spellings Consul accepts', () => {
    const d = decode({ name: 'web', enable_tag_override: true, check: { script_args: ['x'], interval: '10s', deregister_critical_service_after: '1m' } }, ServiceDefinitionSchema);
    assert.deepEqual(d, { Name: 'web', EnableTagOverride: true, Check: { ScriptArgs: ['x'], Interval: 10e9, DeregisterCriticalServiceAfter: 60e9 } });
  });
});

describe('error mapping', () => {
  const cases: { name: string; err: unknown; status: number; body: string }[] = [
    { name: 'not leader', err: Object.assign(new Error('x'), { code: 'ERR_NOT_LEADER' }), status: 500, body: 'No cluster leader' },
    { name: 'no leader', err: Object.assign(new Error('x'), { code: 'ERR_NO_LEADER' }), status: 500, body: 'No cluster leader' },
    { name: 'invalid session keeps its text', err: Object.assign(new Error('invalid session "abc"'), { code: 'ERR_INVALID_SESSION' }), status: 500, body: 'invalid session "abc"' },
    { name: 'store validation', err: Object.assign(new Error('Must provide node'), { code: 'ERR_INVALID_REQUEST' }), status: 400, body: 'Must provide node' },
    { name: 'filter', err: Object.assign(new Error('Failed to create boolean expression evaluator: x'), { code: 'ERR_INVALID_FILTER' }), status: 400, body: 'Failed to create boolean expression evaluator: x' },
    { name: 'missing node is an RPC error', err: Object.assign(new Error('Missing node registration'), { code: 'ERR_MISSING_NODE' }), status: 500, body: 'Missing node registration' },
    { name: 'proposal too large', err: Object.assign(new Error('too big'), { code: 'ERR_PROPOSAL_TOO_LARGE' }), status: 413, body: 'too big' },
    { name: 'anything else', err: new Error('boom'), status: 500, body: 'boom' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const m = mapError(c.err);
      assert.equal(m.statusCode, c.status);
      assert.equal(m.body, c.body);
    });
  }
});

describe('dispatcher conventions', () => {
  test('a wrong method is 405 with Consul text and an Allow header; state unchanged', async () => {
    const h = harness();
    const cases: [string, string, string][] = [
      ['GET', '/v1/agent/service/register', 'OPTIONS,PUT'],
      ['POST', '/v1/kv/a', 'OPTIONS,GET,PUT,DELETE'],
      ['DELETE', '/v1/catalog/nodes', 'OPTIONS,GET'],
      ['GET', '/v1/txn', 'OPTIONS,PUT'],
      ['PUT', '/v1/status/leader', 'OPTIONS,GET'],
    ];
    const before = h.store.lastIndex();
    for (const [method, url, allow] of cases) {
      const res = await h.req(method, url, method === 'GET' ? undefined : 'x');
      assert.equal(res.statusCode, 405, `${method} ${url}`);
      assert.equal(res.body, `method ${method} not allowed`);
      assert.equal(res.headers.allow, allow);
      assert.match(String(res.headers['content-type']), /^text\/plain/);
    }
    assert.equal(h.store.lastIndex(), before);
    await h.close();
  });

  test('OPTIONS answers 200 with the allowed methods', async () => {
    const h = harness();
    const res = await h.req('OPTIONS', '/v1/session/create');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.allow, 'OPTIONS,PUT');
    await h.close();
  });

  test('unknown paths are 404 with Consul\'s hints; / names the agent', async () => {
    const h = harness();
    const v1 = await h.req('GET', '/v1/nope');
    assert.equal(v1.statusCode, 404);
    assert.equal(v1.body, 'Invalid URL path: not a recognized HTTP API endpoint\n');
    const v2 = await h.req('PUT', '/v2/kv/a', 'x');
    assert.equal(v2.statusCode, 404);
    assert.match(v2.body, /ensure the path starts with '\/v1\/'/);
    const root = await h.req('GET', '/');
    assert.equal(root.statusCode, 200);
    await h.close();
  });

  test('?pretty indents by four spaces and ends with a newline', async () => {
    const h = harness();
    const res = await h.req('GET', '/v1/status/peers?pretty');
    assert.equal(res.body, '[\n    "127.0.0.1:8300"\n]\n');
    assert.equal(res.headers['content-type'], 'application/json');
    await h.close();
  });

  test('?dc: ours or empty is fine, another is Consul\'s 500 "No path to datacenter"', async () => {
    const h = harness();
    assert.equal((await h.req('GET', '/v1/catalog/nodes?dc=dc1')).statusCode, 200);
    assert.equal((await h.req('GET', '/v1/catalog/nodes?dc=')).statusCode, 200);
    const res = await h.req('PUT', '/v1/kv/a?dc=dc2', 'v');
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'No path to datacenter');
    assert.equal(h.store.kvGet('a').value, null);
    // Agent endpoints are local and ignore ?dc.
    assert.equal((await h.req('GET', '/v1/agent/self?dc=dc2')).statusCode, 200);
    await h.close();
  });

  test('tokens are accepted and ignored', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/kv/t?token=secret', 'v')).statusCode, 200);
    assert.equal((await h.req('GET', '/v1/kv/t', undefined, { 'X-Consul-Token': 'secret' })).statusCode, 200);
    await h.close();
  });

  test('?stale with ?consistent is 400; bad ?index / ?wait are 400', async () => {
    const h = harness();
    const cases: [string, string][] = [
      ['/v1/catalog/nodes?stale&consistent', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
      ['/v1/catalog/nodes?index=abc', 'Invalid index'],
      ['/v1/catalog/nodes?index=-1', 'Invalid index'],
      ['/v1/catalog/nodes?index=1&wait=10', 'Invalid wait time'],
      ['/v1/kv/a?index=1&wait=forever', 'Invalid wait time'],
    ];
    for (const [url, body] of cases) {
      const res = await h.req('GET', url);
      assert.equal(res.statusCode, 400, url);
      assert.equal(res.body, body);
    }
    await h.close();
  });

  test('default reads need a leader; ?stale does not; ?consistent awaits consistentRead', async () => {
    const h = harness();
    h.raft.knownLeader = false;
    h.raft.lastContactMs = 1234;
    const res = await h.req('GET', '/v1/catalog/nodes');
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'No cluster leader');
    const stale = await h.req('GET', '/v1/catalog/nodes?stale');
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.headers['x-consul-knownleader'], 'false');
    assert.equal(stale.headers['x-consul-lastcontact'], '1234');
    h.raft.knownLeader = true;
    let reads = 0;
    h.backend.consistentRead = async () => {
      reads++;
    };
    assert.equal((await h.req('GET', '/v1/catalog/nodes?consistent')).statusCode, 200);
    assert.equal(reads, 1);
    await h.close();
  });

  test('writes without a leader are 500 "No cluster leader" and change nothing', async () => {
    const h = harness();
    h.failApply = Object.assign(new Error('not the leader'), { code: 'ERR_NOT_LEADER' });
    const before = h.store.lastIndex();
    for (const [m, u, b] of [['PUT', '/v1/kv/a', 'x'], ['PUT', '/v1/agent/service/register', { Name: 'web' }], ['PUT', '/v1/session/create', '']] as const) {
      const res = await h.req(m, u, b);
      assert.equal(res.statusCode, 500, u);
      assert.equal(res.body, 'No cluster leader');
    }
    assert.equal(h.store.lastIndex(), before);
    assert.deepEqual(h.backend.local.services(), []);
    await h.close();
  });

  test('paths are percent-decoded; control characters and broken escapes are 400', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/kv/a%2Fb%2Fc', 'v')).statusCode, 200);
    assert.ok(h.store.kvGet('a/b/c').value);
    assert.equal((await h.req('PUT', '/v1/agent/service/register', { Name: 'web', ID: 'service:web' })).statusCode, 200);
    assert.equal((await h.req('GET', '/v1/agent/service/service%3Aweb')).statusCode, 200);
    const ctl = await h.req('GET', '/v1/kv/a%00b');
    assert.equal(ctl.statusCode, 400);
    const broken = await h.req('GET', '/v1/kv/a%E0%A4%A');
    assert.equal(broken.statusCode, 400);
    await h.close();
  });

  test('http_config.response_headers go on every answer; block_endpoints answer 403', async () => {
    const h = harness({ config: { http: { responseHeaders: { 'Access-Control-Allow-Origin': '*' }, blockEndpoints: ['/v1/kv/secret'], allowWriteHttpFrom: [], maxHeaderBytes: 0, useCache: true } } });
    const ok = await h.req('GET', '/v1/status/leader');
    assert.equal(ok.headers['access-control-allow-origin'], '*');
    const blocked = await h.req('PUT', '/v1/kv/secret/x', 'v');
    assert.equal(blocked.statusCode, 403);
    assert.equal(blocked.body, 'Endpoint is blocked by agent configuration');
    assert.equal(blocked.headers['access-control-allow-origin'], '*');
    assert.equal(h.store.kvGet('secret/x').value, null);
    await h.close();
  });

  test('status endpoints', async () => {
    const h = harness();
    assert.deepEqual((await h.json('GET', '/v1/status/leader')).body, '127.0.0.1:8300');
    h.raft.leaderAddr = '';
    assert.deepEqual((await h.json('GET', '/v1/status/leader')).body, '');
    h.raft.peers = ['10.0.0.1:8300', '10.0.0.2:8300'];
    assert.deepEqual((await h.json('GET', '/v1/status/peers')).body, ['10.0.0.1:8300', '10.0.0.2:8300']);
    await h.close();
  });

  test('every request is measured as consul_api_http with method and path labels', async () => {
    const h = harness();
    await h.req('GET', '/v1/kv/a');
    await h.req('GET', '/v1/status/leader');
    const prom = (await h.req('GET', '/v1/agent/metrics?format=prometheus')).body;
    assert.match(prom, /consul_api_http_count\{method="GET",path="v1_kv__"\} 1/);
    assert.match(prom, /consul_api_http_count\{method="GET",path="v1_status_leader"\} 1/);
    await h.close();
  });
});

test('requests are logged at debug with the component name; tokens never appear', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  const h = harness({ logger: pino({ level: 'debug' }, sink) });
  await h.req('GET', '/v1/kv/a?token=s3cret');
  await h.close();
  const finished = lines.find((l) => l.msg === 'Request finished');
  assert.ok(finished, JSON.stringify(lines));
  assert.equal(finished.component, 'agent.http');
  assert.equal(finished.status, 404);
  assert.ok(!JSON.stringify(lines).includes('s3cret'));
});
