// WAN federation through mesh gateways end to end (issue 15: "only the gateways' WAN addresses are
// linked"): onprem (primary) and cloud, each in its own network namespace (topology.ts, `wanfed`:
// between namespaces only the gateway's WAN port and the serf WAN port accept packets; the servers'
// RPC ports do not). Servers run with TLS and connect.enable_mesh_gateway_wan_federation, cloud with
// primary_gateways; each datacenter has a `trellis connect gateway -register` mesh gateway. ?dc=
// forwarding both ways, catalog/datacenters and config-entry replication work, and once the gateways
// know each other a server's calls go through its own gateway. With a datacenter's gateway stopped,
// no server can reach that datacenter (its servers are behind it), while its own servers still
// reach the other datacenter by dialling that one's gateway (WAN) directly, the fallback of
// server/wan.ts; with both stopped there is no path at all; starting them heals.
// Without namespaces (not root) the loopback fallback runs the same steps and says so: there only
// the code keeps server RPC on the gateways (test/federation/wanfedGateways.test.ts proves that
// with both gateways stopped while the RPC ports answer).
//
// Not yet through the gateways: WAN gossip (the serf WAN port still crosses), see README.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../support/index.ts';
import { FedCast, PRIMARY } from './fedCast.ts';

let cast: FedCast;

before(async () => {
  cast = await FedCast.create(undefined, { wanfed: true });
  try {
    // cloud retries its WAN join until onprem's pool is up; its primary_gateways name onprem's gateway.
    await Promise.all([cast.startServer('onprem'), cast.startServer('cloud')]);
    await Promise.all([cast.startGateway('onprem'), cast.startGateway('cloud')]);
  } catch (err) {
    process.stdout.write(`${cast.report()}\n`);
    throw err;
  }
}, { timeout: 240_000 });

afterEach((t) => {
  if ((t as { passed?: boolean }).passed === false && cast) process.stdout.write(`${cast.report()}\n`);
});

after(async () => { await cast?.stop(); }, { timeout: 60_000 });

async function kvVia(dc: 'onprem' | 'cloud', other: 'onprem' | 'cloud'): Promise<{ status: number; text: string }> {
  return cast.http(dc, 'GET', `/v1/kv/where?dc=${other}&raw`);
}

describe('WAN federation through mesh gateways', () => {
  test('between the namespaces only the gateways\' WAN ports (and WAN gossip) are reachable', { timeout: 60_000 }, async (t) => {
    if (cast.topo.mode !== 'netns') { t.skip(`loopback fallback: ${cast.topo.fallbackReason}`); return; }
    const on = cast.site('onprem');
    const cl = cast.site('cloud');
    assert.equal(await cast.topo.reachableFrom('cloud', on.wanHost, on.ports.server), false, 'onprem\'s server RPC port from cloud');
    assert.equal(await cast.topo.reachableFrom('onprem', cl.wanHost, cl.ports.server), false, 'cloud\'s server RPC port from onprem');
    assert.equal(await cast.topo.reachableFrom('cloud', on.wanHost, on.ports.gwWan), true, 'onprem\'s gateway WAN port from cloud');
    assert.equal(await cast.topo.reachableFrom('onprem', cl.wanHost, cl.ports.gwWan), true, 'cloud\'s gateway WAN port from onprem');
  });

  test('catalog/datacenters, ?dc= forwarding both ways and config-entry replication cross the gateways', { timeout: 180_000 }, async () => {
    await waitFor('onprem lists cloud', async () => (await cast.getJson<string[]>('onprem', '/v1/catalog/datacenters')).includes('cloud'), 60_000, 250);
    assert.deepEqual(await cast.getJson<string[]>('cloud', '/v1/catalog/datacenters'), ['cloud', 'onprem']);
    for (const dc of ['onprem', 'cloud'] as const) {
      const r = await cast.http(dc, 'PUT', '/v1/kv/where', `in ${dc}`);
      assert.equal(r.text, 'true', r.text);
    }
    await waitFor('onprem reads cloud\'s KV with ?dc=cloud', async () => { const r = await kvVia('onprem', 'cloud'); return r.status === 200 && r.text === 'in cloud'; }, 90_000, 500);
    await waitFor('cloud reads onprem\'s KV with ?dc=onprem', async () => { const r = await kvVia('cloud', 'onprem'); return r.status === 200 && r.text === 'in onprem'; }, 90_000, 500);
    await cast.putConfig({ Kind: 'service-defaults', Name: 'wanfed', Protocol: 'http' });
    await cast.waitReplicated(['cloud'], 'service-defaults', 'wanfed', 60_000);
    // The gateways carried server connections: onprem's to its server (from cloud), cloud's to its own.
    assert.ok(await cast.gatewayMetric(PRIMARY, 'consul_mesh_gateway_conns_total', { route: 'server' }) >= 1, 'onprem\'s gateway routed server connections');
    assert.ok(await cast.gatewayMetric('cloud', 'consul_mesh_gateway_conns_total', { route: 'server' }) >= 1, 'cloud\'s gateway routed server connections');
    // Once onprem's gateway has learnt cloud's gateways, onprem's server calls cloud through it.
    const before = await cast.gatewayMetric(PRIMARY, 'consul_mesh_gateway_conns_total', { route: 'remote', target: 'cloud' });
    await waitFor('a ?dc=cloud call from onprem crosses onprem\'s gateway', async () => {
      const r = await kvVia('onprem', 'cloud');
      assert.equal(r.text, 'in cloud');
      // A new connection per call is not guaranteed (channels are reused): a fresh one after the
      // first answers counts too.
      return await cast.gatewayMetric(PRIMARY, 'consul_mesh_gateway_conns_total', { route: 'remote', target: 'cloud' }) > before ||
        await cast.gatewayMetric(PRIMARY, 'consul_mesh_gateway_conns', { route: 'remote', target: 'cloud' }) >= 1;
    }, 60_000, 1000);
  });

  test('a stopped gateway cuts off its datacenter\'s servers; with both stopped there is no path; starting them heals', { timeout: 300_000 }, async () => {
    await cast.stopGateway(PRIMARY);
    await waitFor('cloud has no path to onprem', async () => (await kvVia('cloud', 'onprem')).text === 'No path to datacenter', 60_000, 1000);
    // onprem's server dials cloud's gateway (WAN) itself: the hop through onprem's gateway is gone, not this one.
    await waitFor('onprem still reads cloud', async () => (await kvVia('onprem', 'cloud')).text === 'in cloud', 60_000, 1000);
    await cast.stopGateway('cloud');
    await waitFor('onprem has no path to cloud', async () => (await kvVia('onprem', 'cloud')).text === 'No path to datacenter', 60_000, 1000);
    await Promise.all([cast.startGateway(PRIMARY), cast.startGateway('cloud')]);
    await waitFor('onprem reads cloud again', async () => (await kvVia('onprem', 'cloud')).text === 'in cloud', 90_000, 1000);
    await waitFor('cloud reads onprem again', async () => (await kvVia('cloud', 'onprem')).text === 'in onprem', 90_000, 1000);
  });
});
