// WAN federation through mesh gateways end to end (issue 15: "only the gateways' WAN addresses are
// linked"): onprem (primary) and cloud, each in its own network namespace (topology.ts, `wanfed`:
// between namespaces only the gateway's WAN port accepts packets; the servers' RPC and serf WAN
// ports do not). Servers run with TLS and connect.enable_mesh_gateway_wan_federation, cloud with
// primary_gateways (its WAN join goes through onprem's gateway); each datacenter has a
// `trellis connect gateway -register` mesh gateway. WAN gossip crosses the gateways too
// (server/wanGossip.ts): `members -wan` shows both servers alive, a killed server is failed in the
// other datacenter's view and alive again once restarted. ?dc=
// forwarding both ways, catalog/datacenters and config-entry replication work, and once the gateways
// know each other a server's calls go through its own gateway. With a datacenter's gateway stopped,
// no server can reach that datacenter (its servers are behind it), while its own servers still
// reach the other datacenter by dialling that one's gateway (WAN) directly, the fallback of
// server/wan.ts; with both stopped there is no path at all; starting them heals.
// Without namespaces (not root) the loopback fallback runs the same steps and says so: there only
// the code keeps server RPC on the gateways (test/federation/wanfedGateways.test.ts proves that
// with both gateways stopped while the RPC ports answer).
//
// Figures (WAN join after the gateways pass, failure detection across the gateways) are printed as
// `# wanfed:` lines.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../support/index.ts';
import { FedCast, PRIMARY } from './fedCast.ts';

let cast: FedCast;
/** When onprem's gateway process was started (the earliest cloud's WAN join through it can succeed). */
let primaryGatewayStartedAt = 0;

interface WanMember { Name: string; Status: number; Tags: Record<string, string> }
/** serf member status numbers: 1 alive, 3 left, 4 failed. */
const ALIVE = 1;
const FAILED = 4;

async function wanStatus(dc: 'onprem' | 'cloud', name: string): Promise<number | undefined> {
  const r = await cast.http(dc, 'GET', '/v1/agent/members?wan=1');
  if (r.status !== 200) return undefined;
  return r.json<WanMember[]>().find((m) => m.Name === name)?.Status;
}

/** `trellis members -wan` in `dc`: Node -> Status column. */
async function membersWan(dc: 'onprem' | 'cloud'): Promise<Map<string, string>> {
  const r = await cast.cli(dc, ['members', '-wan']);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  return new Map(rows.map((c) => [c[0]!, c[2]!]));
}

before(async () => {
  cast = await FedCast.create(undefined, { wanfed: true });
  try {
    // cloud retries its WAN join until onprem's pool is up; its primary_gateways name onprem's gateway.
    await Promise.all([cast.startServer('onprem'), cast.startServer('cloud')]);
    primaryGatewayStartedAt = Date.now();
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
  test('WAN gossip crosses the gateways: `members -wan` in each datacenter shows both servers alive', { timeout: 120_000 }, async () => {
    await waitFor('each datacenter sees both servers alive in the WAN pool', async () =>
      await wanStatus('onprem', 'cloud-server.cloud') === ALIVE && await wanStatus('cloud', 'onprem-server.onprem') === ALIVE, 90_000, 100);
    // cloud's server logs its join through primary_gateways (it retries every second until onprem's gateway routes).
    const joined = /^(\S+) \[INFO\]\s+agent\.server\.wan: \(WAN\) joined through the primary/m.exec(cast.servers.get('cloud')!.output());
    assert.ok(joined, 'cloud\'s server logged its WAN join through primary_gateways');
    process.stdout.write(`# wanfed: cloud joined the WAN pool through onprem's gateway ${Date.parse(joined[1]!) - primaryGatewayStartedAt} ms after that gateway's process was started (joins retried every 1 s)\n`);
    for (const dc of ['onprem', 'cloud'] as const) {
      const m = await membersWan(dc);
      assert.equal(m.get('onprem-server.onprem'), 'alive', `${dc}: ${JSON.stringify([...m])}`);
      assert.equal(m.get('cloud-server.cloud'), 'alive', `${dc}: ${JSON.stringify([...m])}`);
    }
    // Still alive after several WAN probe rounds (probe interval 5 s): packets keep flowing both ways.
    await new Promise((r) => setTimeout(r, 12_000));
    assert.equal(await wanStatus('onprem', 'cloud-server.cloud'), ALIVE);
    assert.equal(await wanStatus('cloud', 'onprem-server.onprem'), ALIVE);
  });

  test('between the namespaces only the gateways\' WAN ports are reachable', { timeout: 60_000 }, async (t) => {
    if (cast.topo.mode !== 'netns') { t.skip(`loopback fallback: ${cast.topo.fallbackReason}`); return; }
    const on = cast.site('onprem');
    const cl = cast.site('cloud');
    assert.equal(await cast.topo.reachableFrom('cloud', on.wanHost, on.ports.server), false, 'onprem\'s server RPC port from cloud');
    assert.equal(await cast.topo.reachableFrom('onprem', cl.wanHost, cl.ports.server), false, 'cloud\'s server RPC port from onprem');
    // WAN gossip's port (libp2p TCP; its UDP is dropped by the same rule set) does not cross either.
    assert.equal(await cast.topo.reachableFrom('cloud', on.wanHost, on.ports.serfWan), false, 'onprem\'s serf WAN port from cloud');
    assert.equal(await cast.topo.reachableFrom('onprem', cl.wanHost, cl.ports.serfWan), false, 'cloud\'s serf WAN port from onprem');
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
    // (WAN gossip from cloud to onprem is cut now as well, so within the WAN failure detection
    // time, ~30-50 s, onprem would mark cloud's server failed and have no path either: read it now.)
    await waitFor('onprem still reads cloud', async () => (await kvVia('onprem', 'cloud')).text === 'in cloud', 60_000, 1000);
    await cast.stopGateway('cloud');
    await waitFor('onprem has no path to cloud', async () => (await kvVia('onprem', 'cloud')).text === 'No path to datacenter', 60_000, 1000);
    await Promise.all([cast.startGateway(PRIMARY), cast.startGateway('cloud')]);
    await waitFor('onprem reads cloud again', async () => (await kvVia('onprem', 'cloud')).text === 'in cloud', 90_000, 1000);
    await waitFor('cloud reads onprem again', async () => (await kvVia('cloud', 'onprem')).text === 'in onprem', 90_000, 1000);
  });

  test('a killed server is failed in the other datacenter\'s view across the gateways, and alive again once restarted', { timeout: 300_000 }, async () => {
    // Everything healthy first (the previous test restarted the gateways).
    await waitFor('both servers alive in both views', async () =>
      await wanStatus('onprem', 'cloud-server.cloud') === ALIVE && await wanStatus('cloud', 'onprem-server.onprem') === ALIVE, 90_000, 250);
    const server = cast.servers.get('cloud')!;
    const killedAt = Date.now();
    server.child.kill('SIGKILL');
    await server.exited;
    await waitFor('onprem sees cloud\'s server failed', async () => await wanStatus('onprem', 'cloud-server.cloud') === FAILED, 120_000, 100);
    process.stdout.write(`# wanfed: cloud's server (SIGKILL) failed in onprem's WAN view after ${Date.now() - killedAt} ms (probe 5 s, timeout 3 s, suspicion x6)\n`);
    assert.equal((await membersWan('onprem')).get('cloud-server.cloud'), 'failed');
    assert.equal((await kvVia('onprem', 'cloud')).text, 'No path to datacenter');
    const restartAt = Date.now();
    await cast.startServer('cloud');
    await waitFor('onprem sees cloud\'s server alive again', async () => await wanStatus('onprem', 'cloud-server.cloud') === ALIVE, 90_000, 100);
    process.stdout.write(`# wanfed: restarted cloud server alive in onprem's WAN view ${Date.now() - restartAt} ms after its start\n`);
    await waitFor('onprem reads cloud again', async () => (await kvVia('onprem', 'cloud')).text === 'in cloud', 90_000, 1000);
    await waitFor('cloud reads onprem again', async () => (await kvVia('cloud', 'onprem')).text === 'in onprem', 90_000, 1000);
  });
});
