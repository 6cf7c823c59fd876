// /v1/discovery-chain/:service: the compiled chain in Consul's shape, ?compile-dc, POST overrides,
// blocking on config entry changes, and Consul's answers for bad input and uncompilable chains.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, settle, type Harness } from './helpers.ts';

const CLUSTER = '11111111-2222-3333-4444-555555555555';
const TD = `${CLUSTER}.consul`;

function withCa(): Harness {
  const h = harness();
  h.apply({
    type: 'connectCASet',
    Config: { ClusterID: CLUSTER, Provider: 'consul', Config: {}, ForceWithoutCrossSigning: false },
    Roots: [{
      ID: 'r1', Name: 'Consul CA Primary Cert', SerialNumber: 7, SigningKeyID: 'aa:bb', ExternalTrustDomain: TD, NotBefore: '2026-01-01T00:00:00Z',
      NotAfter: '2036-01-01T00:00:00Z', RootCert: 'PEM', IntermediateCerts: null, Active: true, RotatedOutAt: '0001-01-01T00:00:00Z', PrivateKeyType: 'ec', PrivateKeyBits: 256,
    }],
    ProviderState: [{ ID: 'r1', PrivateKey: 'KEY', RootCert: 'PEM' }],
  } as never);
  return h;
}

type Chain = Record<string, any>;

describe('/v1/discovery-chain', () => {
  test('the default chain of a service with no entries, in Consul\'s field order', async () => {
    const h = withCa();
    try {
      const r = await h.json<{ Chain: Chain }>('GET', '/v1/discovery-chain/web');
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.body), ['Chain']);
      const c = r.body.Chain;
      assert.deepEqual(Object.keys(c), ['ServiceName', 'Namespace', 'Partition', 'Datacenter', 'Default', 'Protocol', 'StartNode', 'Nodes', 'Targets', 'AutoVirtualIPs', 'ManualVirtualIPs']);
      assert.equal(c.Datacenter, 'dc1');
      assert.equal(c.StartNode, 'resolver:web.default.default.dc1');
      assert.equal(c.Targets['web.default.default.dc1'].SNI, `web.default.dc1.internal.${TD}`);
      assert.ok(Number(r.headers['x-consul-index']) > 0);
      // ?compile-dc evaluates the chain in another datacenter.
      const other = await h.json<{ Chain: Chain }>('GET', '/v1/discovery-chain/web?compile-dc=dc2');
      assert.equal(other.body.Chain.StartNode, 'resolver:web.default.default.dc2');
    } finally {
      await h.close();
    }
  });

  test('router → splitter → resolver from written entries (A3/A4), durations as Consul prints them', async () => {
    const h = withCa();
    try {
      for (const e of [
        { Kind: 'service-defaults', Name: 'payments', Protocol: 'http' },
        { Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', ConnectTimeout: '3s', RequestTimeout: '10s',
          Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2', OnlyPassing: true } } },
        { Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] },
        { Kind: 'service-router', Name: 'payments', Routes: [{ Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { ServiceSubset: 'v2' } }] },
      ]) assert.equal((await h.json('PUT', '/v1/config', e)).body, true);
      const c = (await h.json<{ Chain: Chain }>('GET', '/v1/discovery-chain/payments')).body.Chain;
      assert.equal(c.Protocol, 'http');
      assert.equal(c.StartNode, 'router:payments.default.default');
      assert.deepEqual(c.Nodes[c.StartNode].Routes.map((r: any) => r.NextNode), ['resolver:v2.payments.default.default.dc1', 'splitter:payments.default.default']);
      assert.deepEqual(c.Nodes['splitter:payments.default.default'].Splits.map((s: any) => s.Weight), [90, 10]);
      assert.deepEqual(c.Nodes['resolver:v2.payments.default.default.dc1'].Resolver, {
        ConnectTimeout: '3s', RequestTimeout: 10_000_000_000, Target: 'v2.payments.default.default.dc1',
      });
      assert.deepEqual(c.Targets['v2.payments.default.default.dc1'].Subset, { Filter: 'Service.Meta.version == 2', OnlyPassing: true });
      assert.equal(c.Targets['v2.payments.default.default.dc1'].ConnectTimeout, '3s');
    } finally {
      await h.close();
    }
  });

  test('POST overrides: protocol, connect timeout, mesh gateway; snake_case keys; bad input is a 400', async () => {
    const h = withCa();
    try {
      const r = await h.json<{ Chain: Chain }>('POST', '/v1/discovery-chain/web', { OverrideProtocol: 'http', OverrideConnectTimeout: '7s', OverrideMeshGateway: { Mode: 'local' } });
      assert.equal(r.status, 200);
      const c = r.body.Chain;
      assert.equal(c.Protocol, 'http');
      assert.match(c.CustomizationHash, /^[0-9a-f]{8}$/);
      assert.equal(c.Nodes[c.StartNode].Resolver.ConnectTimeout, '7s');
      assert.deepEqual(c.Targets['web.default.default.dc1'].MeshGateway, { Mode: 'local' });
      const snake = await h.json<{ Chain: Chain }>('POST', '/v1/discovery-chain/web', { override_connect_timeout: 2_000_000_000 });
      assert.equal(snake.body.Chain.Nodes[snake.body.Chain.StartNode].Resolver.ConnectTimeout, '2s');
      const badMode = await h.req('POST', '/v1/discovery-chain/web', { OverrideMeshGateway: { Mode: 'sideways' } });
      assert.equal(badMode.statusCode, 400);
      assert.equal(badMode.body, 'Invalid OverrideMeshGateway.Mode parameter');
      const badDuration = await h.req('POST', '/v1/discovery-chain/web', { OverrideConnectTimeout: 'soon' });
      assert.equal(badDuration.statusCode, 400);
      assert.equal(badDuration.body, 'Request decoding failed: time: invalid duration "soon"');
      const badJson = await h.req('POST', '/v1/discovery-chain/web', '{');
      assert.equal(badJson.statusCode, 400);
      assert.match(badJson.body, /^Request decoding failed: /);
      const missing = await h.req('GET', '/v1/discovery-chain/');
      assert.equal(missing.statusCode, 400);
      assert.equal(missing.body, 'Missing chain name');
    } finally {
      await h.close();
    }
  });

  test('a write that would leave a chain uncompilable is refused and stores nothing; no CA yet is a 500', async () => {
    const h = withCa();
    try {
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web', Protocol: 'http' });
      const before = await h.json<{ Chain: Chain }>('GET', '/v1/discovery-chain/web');
      const refused = await h.req('PUT', '/v1/config', { Kind: 'service-router', Name: 'web', Routes: [{ Destination: { ServiceSubset: 'v9' } }] });
      assert.equal(refused.statusCode, 400);
      assert.equal(refused.body, 'service "web" does not have a subset named "v9"');
      // A redirect from a tcp service to an http one: the chain's services disagree on their protocol.
      const mixed = await h.req('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'api', Redirect: { Service: 'web' } });
      assert.equal(mixed.statusCode, 400);
      assert.equal(mixed.body, 'discovery chain "api" uses inconsistent protocols; service "web" has "http" which is not "tcp"');
      await h.json('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      assert.equal((await h.req('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'api', Redirect: { Service: 'web' } })).statusCode, 200);
      const loop = await h.req('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'web', Redirect: { Service: 'api' } });
      assert.equal(loop.statusCode, 400);
      assert.equal(loop.body, 'detected circular resolver redirect: [web.default.default.dc1 -> api.default.default.dc1 -> web.default.default.dc1]');
      assert.equal((await h.req('GET', '/v1/config/service-router/web')).statusCode, 404);
      const after = await h.json<{ Chain: Chain }>('GET', '/v1/discovery-chain/web');
      assert.equal(after.body.Chain.StartNode, before.body.Chain.StartNode);
    } finally {
      await h.close();
    }
    const bare = harness();
    try {
      const r = await bare.req('GET', '/v1/discovery-chain/web');
      assert.equal(r.statusCode, 500);
      assert.equal(r.body, 'no cluster ca config setup');
    } finally {
      await bare.close();
    }
  });

  test('a blocking read wakes on a config entry change and answers the new chain', async () => {
    const h = withCa();
    try {
      const first = await h.req('GET', '/v1/discovery-chain/currency');
      const index = first.headers['x-consul-index'];
      let done = false;
      const pending = h.req('GET', `/v1/discovery-chain/currency?index=${index}&wait=30s`).then((r) => {
        done = true;
        return r;
      });
      await settle();
      assert.equal(done, false);
      await h.json('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'currency', Redirect: { Datacenter: 'cloud' } });
      const res = await pending;
      assert.equal(res.statusCode, 200);
      assert.equal(JSON.parse(res.body).Chain.StartNode, 'resolver:currency.default.default.cloud');
      assert.ok(Number(res.headers['x-consul-index']) > Number(index));
    } finally {
      await h.close();
    }
  });
});
