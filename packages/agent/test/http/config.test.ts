// /v1/config: write (with cas), read, list (blocking), delete (with cas), key spellings, bad input.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, settle } from './helpers.ts';

describe('/v1/config', () => {
  test('PUT answers true, GET answers the entry in Consul\'s shape, whatever the key spelling', async () => {
    const h = harness();
    try {
      const put = await h.json('PUT', '/v1/config', { kind: 'service-defaults', name: 'web', protocol: 'HTTP', max_inbound_connections: '5', meta: { Owner: 'team' } });
      assert.equal(put.status, 200);
      assert.equal(put.body, true);
      const get = await h.json<Record<string, unknown>>('GET', '/v1/config/service-defaults/web');
      assert.equal(get.status, 200);
      const index = get.body.ModifyIndex as number;
      assert.deepEqual(get.body, {
        Kind: 'service-defaults', Name: 'web', Protocol: 'http', TransparentProxy: {}, MeshGateway: {}, Expose: {},
        MaxInboundConnections: 5, Meta: { Owner: 'team' }, CreateIndex: index, ModifyIndex: index,
      });
      assert.equal(get.headers['x-consul-index'], String(index));
      // CamelCase, oddly cased and snake_case keys are the same fields. (The router's subset must
      // exist: a chain that would not compile is refused, as in Consul.)
      await h.json('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'web', Subsets: { v2: { Filter: 'Service.Meta.version == 2' } } });
      await h.json('PUT', '/v1/config', { Kind: 'service-router', Name: 'web', Routes: [{ match: { http: { path_prefix: '/admin', methods: ['get'] } }, destination: { service_subset: 'v2', RequestTimeout: '1.5s' } }] });
      const router = await h.json<Record<string, any>>('GET', '/v1/config/service-router/web');
      assert.deepEqual(router.body.Routes, [{ Match: { HTTP: { PathPrefix: '/admin', Methods: ['GET'] } }, Destination: { ServiceSubset: 'v2', RequestTimeout: '1.5s' } }]);
    } finally {
      await h.close();
    }
  });

  test('list by kind, 404 for a missing entry with Consul\'s text and an index', async () => {
    const h = harness();
    try {
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web' });
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api', Protocol: 'grpc' });
      await h.json('PUT', '/v1/config', { Kind: 'proxy-defaults', Config: { protocol: 'http' } });
      const list = await h.json<Array<{ Name: string }>>('GET', '/v1/config/service-defaults');
      assert.deepEqual(list.body.map((e) => e.Name), ['api', 'web']);
      assert.deepEqual((await h.json('GET', '/v1/config/service-router')).body, []);
      const pd = await h.json<Record<string, unknown>>('GET', '/v1/config/proxy-defaults/global');
      assert.equal(pd.body.Name, 'global');
      const missing = await h.req('GET', '/v1/config/service-defaults/nope');
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.body, 'Config entry not found for "service-defaults" / "nope"');
      assert.ok(Number(missing.headers['x-consul-index']) > 0);
      const bad = await h.req('GET', '/v1/config/nonsense');
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.body, 'invalid config entry kind: nonsense');
      // A kind Consul knows but Trellis does not store yet reads as empty, as in Consul.
      const gw = await h.req('GET', '/v1/config/ingress-gateway');
      assert.equal(gw.statusCode, 200);
      assert.equal(gw.body, '[]');
      assert.equal((await h.req('GET', '/v1/config/ingress-gateway/gw')).statusCode, 404);
      assert.equal((await h.req('DELETE', '/v1/config/nonsense/x')).body, 'invalid config entry kind: nonsense');
      assert.equal((await h.req('GET', '/v1/config/')).statusCode, 404);
      assert.equal((await h.req('GET', '/v1/config')).statusCode, 405);
    } finally {
      await h.close();
    }
  });

  test('a list blocks until an entry of its kind changes, not another kind', async () => {
    const h = harness();
    try {
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web' });
      const first = await h.req('GET', '/v1/config/service-defaults');
      const index = first.headers['x-consul-index'];
      let done = false;
      const pending = h.req('GET', `/v1/config/service-defaults?index=${index}&wait=30s`).then((r) => {
        done = true;
        return r;
      });
      await settle();
      await h.json('PUT', '/v1/config', { Kind: 'mesh', TransparentProxy: { MeshDestinationsOnly: true } });
      await settle();
      assert.equal(done, false, 'a write to another kind does not wake it');
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api' });
      const res = await pending;
      assert.equal(res.statusCode, 200);
      assert.deepEqual(JSON.parse(res.body).map((e: { Name: string }) => e.Name), ['api', 'web']);
      assert.ok(Number(res.headers['x-consul-index']) > Number(index));
    } finally {
      await h.close();
    }
  });

  test('a read of one entry blocks until that entry changes, and answers its deletion with a 404', async () => {
    const h = harness();
    try {
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web' });
      const first = await h.req('GET', '/v1/config/service-defaults/web');
      const index = Number(first.headers['x-consul-index']);
      let done = false;
      const pending = h.req('GET', `/v1/config/service-defaults/web?index=${index}&wait=30s`).then((r) => {
        done = true;
        return r;
      });
      await settle();
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api' });
      await settle();
      assert.equal(done, false, 'another entry of the kind does not wake it');
      await h.json('DELETE', '/v1/config/service-defaults/web');
      const res = await pending;
      assert.equal(res.statusCode, 404);
      assert.ok(Number(res.headers['x-consul-index']) > index);
    } finally {
      await h.close();
    }
  });

  test('cas on write and delete; delete answers {} without cas', async () => {
    const h = harness();
    try {
      assert.equal((await h.json('PUT', '/v1/config?cas=0', { Kind: 'service-defaults', Name: 'web' })).body, true);
      assert.equal((await h.json('PUT', '/v1/config?cas=0', { Kind: 'service-defaults', Name: 'web', Protocol: 'http' })).body, false);
      const idx = (await h.json<{ ModifyIndex: number }>('GET', '/v1/config/service-defaults/web')).body.ModifyIndex;
      assert.equal((await h.json('PUT', `/v1/config?cas=${idx + 100}`, { Kind: 'service-defaults', Name: 'web', Protocol: 'http' })).body, false);
      assert.equal((await h.json('PUT', `/v1/config?cas=${idx}`, { Kind: 'service-defaults', Name: 'web', Protocol: 'http' })).body, true);
      const now = (await h.json<{ ModifyIndex: number; Protocol: string }>('GET', '/v1/config/service-defaults/web')).body;
      assert.equal(now.Protocol, 'http');
      assert.equal((await h.json('DELETE', `/v1/config/service-defaults/web?cas=${idx}`)).body, false);
      assert.equal((await h.json('DELETE', `/v1/config/service-defaults/web?cas=${now.ModifyIndex}`)).body, true);
      assert.equal((await h.req('GET', '/v1/config/service-defaults/web')).statusCode, 404);
      const plain = await h.json('DELETE', '/v1/config/service-defaults/gone');
      assert.equal(plain.status, 200);
      assert.deepEqual(plain.body, {});
      assert.equal((await h.req('DELETE', '/v1/config/service-defaults')).body, 'Must provide both a kind and name to delete');
      assert.equal((await h.req('PUT', '/v1/config?cas=x', { Kind: 'mesh' })).statusCode, 400);
    } finally {
      await h.close();
    }
  });

  test('bad entries are 400 with the reason and change nothing', async () => {
    const h = harness();
    try {
      const cases: Array<{ name: string; body: unknown; message: string | RegExp }> = [
        { name: 'not JSON', body: '{"Kind":', message: 'Request decoding failed: unexpected EOF' },
        { name: 'no kind', body: { Name: 'web' }, message: 'Request decoding failed: Payload does not contain a kind/Kind key at the top level' },
        { name: 'unknown kind', body: { Kind: 'nonsense', Name: 'x' }, message: 'Request decoding failed: invalid config entry kind: nonsense' },
        { name: 'unknown key', body: { Kind: 'service-defaults', Name: 'web', Protocl: 'http' }, message: 'Request decoding failed: invalid config key "Protocl"' },
        { name: 'wrong type', body: { Kind: 'service-defaults', Name: 'web', MaxInboundConnections: 'many' }, message: /Request decoding failed: 'MaxInboundConnections' expected an integer/ },
        { name: 'proxy-defaults not global', body: { Kind: 'proxy-defaults', Name: 'other' }, message: 'invalid name ("other"), only "global" is supported' },
        { name: 'intention with Action and Permissions', body: { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Action: 'allow', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }] }, message: 'Sources[0].Action must be omitted if Permissions are specified' },
        { name: 'duplicate sources', body: { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Action: 'allow' }, { Name: 'api', Action: 'deny' }] }, message: 'Sources[1] defines "api" more than once' },
        { name: 'protocol gate', body: { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100 }] }, message: 'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or splitting behavior' },
      ];
      const before = h.store.tableIndex('config-entries');
      for (const c of cases) {
        const res = await h.req('PUT', '/v1/config', c.body);
        assert.equal(res.statusCode, 400, `${c.name}: ${res.body}`);
        if (typeof c.message === 'string') assert.equal(res.body, c.message, c.name);
        else assert.match(res.body, c.message, c.name);
      }
      assert.deepEqual(h.store.configEntriesAll().value, []);
      assert.equal(h.store.tableIndex('config-entries'), before);
    } finally {
      await h.close();
    }
  });

  test('intention precedence is computed on write and sources come back sorted by it', async () => {
    const h = harness();
    try {
      await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: '*', Action: 'deny' }, { Name: 'api', Action: 'allow', Precedence: 1 }] });
      const e = await h.json<{ Sources: Array<{ Name: string; Precedence: number; Type: string }> }>('GET', '/v1/config/service-intentions/web');
      assert.deepEqual(e.body.Sources.map((s) => [s.Name, s.Precedence, s.Type]), [['api', 9, 'consul'], ['*', 8, 'consul']]);
      await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: '*', Sources: [{ Name: '*', Action: 'deny' }] });
      const wild = await h.json<{ Sources: Array<{ Precedence: number }> }>('GET', '/v1/config/service-intentions/*');
      assert.equal(wild.body.Sources[0]!.Precedence, 5);
    } finally {
      await h.close();
    }
  });
});
