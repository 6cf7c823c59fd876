// WAN federation with real processes on loopback (distinct ports; the network-namespace suite is
// separate): three datacenters' servers in one WAN pool, members -wan, catalog/datacenters, and
// ?dc= requests answered by the other datacenter (catalog, kv, health, a blocking query across the
// forward, DNS names of other datacenters), from a server and from a client agent; the gossip
// key guards the WAN pool as it does the LAN pool. Bad input: unknown and malformed dc names, a
// WAN join to nowhere, WAN calls on a client agent.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, freePort, printLogsIfFailed, runTrellis, waitFor } from '../support/index.ts';

interface Member { Name: string; Addr: string; Port: number; Status: number; Tags: Record<string, string> }

describe('WAN federation: three datacenters', () => {
  let dc1: AgentProcess;
  let client1: AgentProcess;
  let dc2: AgentProcess;
  let dc3: AgentProcess;
  const all = (): AgentProcess[] => [dc1, client1, dc2, dc3].filter((a) => a !== undefined);

  before(async () => {
    dc1 = await AgentProcess.start({ name: 'fed-s1', mode: 'server', args: ['-datacenter', 'dc1'] });
    client1 = await AgentProcess.start({
      name: 'fed-c1', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-datacenter', 'dc1', '-retry-join', dc1.serfAddr, '-retry-interval', '1s'],
    });
    // dc2 joins dc1 with -join-wan (the start fails if it cannot); dc3 joins dc2 in the background.
    dc2 = await AgentProcess.start({ name: 'fed-s2', mode: 'server', args: ['-datacenter', 'dc2', '-join-wan', dc1.serfWanAddr] });
    dc3 = await AgentProcess.start({ name: 'fed-s3', mode: 'server', args: ['-datacenter', 'dc3', '-retry-join-wan', dc2.serfWanAddr, '-retry-interval-wan', '1s'] });
  });
  after(async () => {
    for (const a of all()) await a.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, ...all()));

  test('every server sees the others in the WAN pool, named <node>.<dc>', { timeout: 60_000 }, async () => {
    for (const s of [dc1, dc2, dc3]) {
      const names = await waitFor(`${s.name} sees three WAN members`, async () => {
        const r = await s.getJson<Member[]>('/v1/agent/members?wan=1');
        const alive = r.filter((m) => m.Status === 1).map((m) => m.Name).sort();
        return alive.length === 3 ? alive : undefined;
      }, 30_000, 200);
      assert.deepEqual(names, ['fed-s1.dc1', 'fed-s2.dc2', 'fed-s3.dc3']);
    }
    const rows = await dc1.getJson<Member[]>('/v1/agent/members?wan=1');
    const s2 = rows.find((m) => m.Name === 'fed-s2.dc2')!;
    assert.equal(s2.Port, dc2.ports.serfWan);
    assert.equal(s2.Tags.role, 'consul');
    assert.equal(s2.Tags.dc, 'dc2');
    assert.equal(s2.Tags.port, String(dc2.ports.server));
    // The LAN pool is unchanged: one datacenter, and the server advertises its WAN port there.
    const lan = await dc1.getJson<Member[]>('/v1/agent/members');
    assert.deepEqual(lan.map((m) => m.Name).sort(), ['fed-c1', 'fed-s1']);
    assert.equal(lan.find((m) => m.Name === 'fed-s1')!.Tags.wan_join_port, String(dc1.ports.serfWan));
    // ?filter applies to the WAN list as to the LAN list.
    const filtered = await dc1.getJson<Member[]>(`/v1/agent/members?wan=1&filter=${encodeURIComponent('Tags.dc == "dc3"')}`);
    assert.deepEqual(filtered.map((m) => m.Name), ['fed-s3.dc3']);
  });

  test('`trellis members -wan` prints Consul\'s columns for every server', { timeout: 30_000 }, async () => {
    const r = await runTrellis(['members', '-wan', '-http-addr', dc3.httpAddr]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^Node\s+Address\s+Status\s+Type\s+Build\s+Protocol\s+DC\s+Partition\s+Segment$/);
    const rows = lines.slice(1).map((l) => l.trim().split(/\s+/));
    assert.deepEqual(rows.map((c) => c[0]).sort(), ['fed-s1.dc1', 'fed-s2.dc2', 'fed-s3.dc3']);
    for (const c of rows) {
      assert.equal(c[2], 'alive');
      assert.equal(c[3], 'server');
      assert.equal(c[6], c[0]!.split('.')[1], 'DC column is the member\'s datacenter');
    }
    assert.ok(rows.some((c) => c[0] === 'fed-s1.dc1' && c[1] === dc1.serfWanAddr), r.stdout);
  });

  test('GET /v1/catalog/datacenters lists every datacenter, own first, from servers and clients', { timeout: 30_000 }, async () => {
    await waitFor('dc1 knows three datacenters', async () => (await dc1.getJson<string[]>('/v1/catalog/datacenters')).length === 3, 20_000, 200);
    assert.deepEqual(await dc1.getJson<string[]>('/v1/catalog/datacenters'), ['dc1', 'dc2', 'dc3']);
    assert.deepEqual(await client1.getJson<string[]>('/v1/catalog/datacenters'), ['dc1', 'dc2', 'dc3']);
    await waitFor('dc3 knows three datacenters', async () => (await dc3.getJson<string[]>('/v1/catalog/datacenters')).length === 3, 20_000, 200);
    assert.deepEqual(await dc3.getJson<string[]>('/v1/catalog/datacenters'), ['dc3', 'dc1', 'dc2']);
  });

  test('?dc= reads and writes are answered by the other datacenter (catalog, kv, health)', { timeout: 60_000 }, async () => {
    await waitFor('dc1 reaches dc3', async () => (await dc1.request('GET', '/v1/catalog/nodes?dc=dc3')).status === 200, 20_000, 200);
    // Catalog: dc3's own node list, not dc1's.
    const nodes = await client1.getJson<Array<{ Node: string; Datacenter: string }>>('/v1/catalog/nodes?dc=dc3');
    assert.deepEqual(nodes.map((n) => n.Node), ['fed-s3']);
    assert.equal(nodes[0]!.Datacenter, 'dc3');
    const local = await client1.getJson<Array<{ Node: string }>>('/v1/catalog/nodes');
    assert.deepEqual(local.map((n) => n.Node).sort(), ['fed-c1', 'fed-s1']);

    // KV: written in dc2 directly, read from dc1's client with ?dc=dc2; absent in dc1.
    assert.equal((await dc2.request('PUT', '/v1/kv/fed/where', { body: 'in-dc2' })).text, 'true');
    const r = await client1.request('GET', '/v1/kv/fed/where?dc=dc2&raw');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'in-dc2');
    assert.equal((await client1.request('GET', '/v1/kv/fed/where')).status, 404);
    // A write through dc1's client with ?dc=dc3 lands in dc3 only.
    assert.equal((await client1.request('PUT', '/v1/kv/fed/written?dc=dc3', { body: 'via-dc1' })).text, 'true');
    assert.equal((await dc3.request('GET', '/v1/kv/fed/written?raw')).text, 'via-dc1');
    assert.equal((await dc1.request('GET', '/v1/kv/fed/written')).status, 404);

    // Health: a service registered in dc2, seen from dc1 with ?dc=dc2.
    assert.equal((await dc2.request('PUT', '/v1/agent/service/register', { body: { Name: 'web', ID: 'web-1', Port: 8080 } })).status, 200);
    const health = await waitFor('web is in dc2\'s catalog', async () => {
      const h = await dc1.getJson<Array<{ Node: { Node: string; Datacenter: string }; Service: { ID: string } }>>('/v1/health/service/web?dc=dc2');
      return h.length === 1 ? h : undefined;
    }, 20_000, 200);
    assert.equal(health[0]!.Service.ID, 'web-1');
    assert.equal(health[0]!.Node.Datacenter, 'dc2');
    assert.deepEqual(await dc1.getJson<unknown[]>('/v1/health/service/web'), []);
  });

  test('DNS answers <name>.service.<dc>.consul and <node>.node.<dc>.consul from the other datacenter', { timeout: 30_000 }, async () => {
    const lookup = async (agent: AgentProcess, name: string, type: 'SRV' | 'A'): Promise<string[]> => {
      const r = new Resolver({ timeout: 3000, tries: 1 });
      r.setServers([`127.0.0.1:${agent.ports.dns}`]);
      try {
        return type === 'SRV' ? (await r.resolveSrv(name)).map((x) => `${x.name}:${x.port}`) : await r.resolve4(name);
      } catch (err) {
        return [`error ${(err as NodeJS.ErrnoException).code}`];
      }
    };
    // web-1 was registered in dc2 by the previous test.
    for (const agent of [dc1, client1]) {
      assert.deepEqual(await waitFor(`${agent.name} resolves web in dc2`, async () => {
        const r = await lookup(agent, 'web.service.dc2.consul', 'SRV');
        return r[0]?.startsWith('error') ? undefined : r;
      }, 15_000, 200), ['fed-s2.node.dc2.consul:8080']);
      assert.deepEqual(await lookup(agent, 'fed-s3.node.dc3.consul', 'A'), ['127.0.0.1']);
      // Not in dc1, and no datacenter "nowhere".
      assert.deepEqual(await lookup(agent, 'web.service.consul', 'SRV'), ['error ENOTFOUND']);
      assert.deepEqual(await lookup(agent, 'web.service.nowhere.consul', 'SRV'), ['error ENOTFOUND']);
    }
  });

  test('a blocking query waits in the other datacenter and returns on its change', { timeout: 60_000 }, async () => {
    assert.equal((await dc2.request('PUT', '/v1/kv/fed/block', { body: 'v1' })).text, 'true');
    const first = await client1.request('GET', '/v1/kv/fed/block?dc=dc2');
    assert.equal(first.status, 200);
    assert.ok(first.index > 0, 'X-Consul-Index comes from dc2');
    const started = Date.now();
    const blocked = client1.request('GET', `/v1/kv/fed/block?dc=dc2&index=${first.index}&wait=30s`, { timeoutMs: 40_000 });
    // The query is still waiting: nothing changed yet (bounded poll for "not returned").
    let settled = false;
    void blocked.then(() => { settled = true; });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(settled, false, 'the blocking query returned before dc2 changed');
    assert.equal((await dc2.request('PUT', '/v1/kv/fed/block', { body: 'v2' })).text, 'true');
    const second = await blocked;
    assert.equal(second.status, 200);
    assert.ok(second.index > first.index);
    assert.ok(Date.now() - started < 25_000, 'it returned on the change, not at the wait limit');
    const [entry] = second.json<Array<{ Value: string }>>();
    assert.equal(Buffer.from(entry!.Value, 'base64').toString(), 'v2');
  });

  test('an unknown or malformed ?dc= is Consul\'s "No path to datacenter" (500), nothing changes', { timeout: 30_000 }, async () => {
    for (const agent of [dc1, client1]) {
      for (const dc of ['nowhere', 'bad%20dc%21', '..%2F..', 'DC2']) {
        const g = await agent.request('GET', `/v1/catalog/nodes?dc=${dc}`);
        assert.equal(g.status, 500, `${agent.name} dc=${dc}`);
        assert.equal(g.text, 'No path to datacenter');
        const p = await agent.request('PUT', `/v1/kv/fed/never?dc=${dc}`, { body: 'x' });
        assert.equal(p.status, 500);
        assert.equal(p.text, 'No path to datacenter');
      }
    }
    for (const s of [dc1, dc2, dc3]) assert.equal((await s.request('GET', '/v1/kv/fed/never')).status, 404);
    // Agent-local endpoints ignore ?dc, as Consul's do.
    assert.equal((await client1.request('GET', '/v1/agent/self?dc=nowhere')).status, 200);
  });

  test('WAN calls on a client agent: Consul\'s errors; a WAN join to nowhere fails and changes nothing', { timeout: 60_000 }, async () => {
    const j = await client1.request('PUT', `/v1/agent/join/${dc2.serfWanAddr}?wan=1`);
    assert.equal(j.status, 500);
    assert.equal(j.text, 'Must be a server to join WAN cluster');
    // Consul encodes the client's nil WAN member list as null.
    assert.equal((await client1.request('GET', '/v1/agent/members?wan=1')).text, 'null');
    // `members -wan` there: no members, Consul's exit 2 and no output.
    const cliMembers = await runTrellis(['members', '-wan', '-http-addr', client1.httpAddr]);
    assert.equal(cliMembers.code, 2, cliMembers.stderr);
    assert.equal(cliMembers.stdout, '');
    const fl = await client1.request('PUT', '/v1/agent/force-leave/fed-s2.dc2?wan=1');
    assert.equal(fl.status, 500);
    assert.equal(fl.text, 'Must be a server to force-leave a node from the WAN cluster');
    const cli = await runTrellis(['join', '-wan', '-http-addr', client1.httpAddr, dc2.serfWanAddr]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /Must be a server to join WAN cluster/);

    const before = (await dc1.getJson<Member[]>('/v1/agent/members?wan=1')).map((m) => m.Name).sort();
    // A closed port, a malformed address, a port out of range.
    for (const addr of ['127.0.0.1:1', 'not an address', '127.0.0.1:70000']) {
      const r = await dc1.request('PUT', `/v1/agent/join/${encodeURIComponent(addr)}?wan=1`, { timeoutMs: 20_000 });
      assert.equal(r.status, 500, `join-wan ${addr}: ${r.text}`);
      assert.ok(r.text.length > 0);
    }
    assert.deepEqual((await dc1.getJson<Member[]>('/v1/agent/members?wan=1')).map((m) => m.Name).sort(), before);
    assert.equal((await dc1.request('GET', '/v1/status/leader')).status, 200, 'the server still answers');
  });

  test('`trellis join -wan` adds a new datacenter; stopping it makes ?dc= fail with No path to datacenter', { timeout: 90_000 }, async () => {
    const dc4 = await AgentProcess.start({ name: 'fed-s4', mode: 'server', args: ['-datacenter', 'dc4'] });
    try {
      const r = await runTrellis(['join', '-wan', '-http-addr', dc4.httpAddr, dc1.serfWanAddr]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Successfully joined cluster by contacting 1 nodes\./);
      await waitFor('dc3 sees dc4', async () => (await dc3.getJson<string[]>('/v1/catalog/datacenters')).includes('dc4'), 30_000, 200);
      assert.equal((await dc4.request('PUT', '/v1/kv/fed/dc4', { body: 'four' })).text, 'true');
      assert.equal((await dc3.request('GET', '/v1/kv/fed/dc4?dc=dc4&raw')).text, 'four');
      await dc4.kill();
      // Killed without leaving: until the WAN pool declares it failed, the dial is refused.
      const gone = await dc3.request('GET', '/v1/kv/fed/dc4?dc=dc4', { timeoutMs: 20_000 });
      assert.equal(gone.status, 500);
      assert.equal(gone.text, 'No path to datacenter');
      // force-leave -wan: the dead server is let go (leaving, then left); an unknown name is Consul's error.
      const unknown = await runTrellis(['force-leave', '-wan', '-http-addr', dc3.httpAddr, 'nobody.dc9']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /No node found with name 'nobody\.dc9'/);
      const fl = await runTrellis(['force-leave', '-wan', '-http-addr', dc3.httpAddr, 'fed-s4.dc4']);
      assert.equal(fl.code, 0, fl.stderr);
      await waitFor('fed-s4.dc4 is no longer alive in the WAN pool', async () => {
        const m = (await dc3.getJson<Member[]>('/v1/agent/members?wan=1')).find((x) => x.Name === 'fed-s4.dc4');
        return m === undefined || m.Status !== 1;
      }, 10_000, 100);
    } finally {
      await dc4.dispose();
    }
  });
});

describe('WAN federation: the gossip key', () => {
  const agents: AgentProcess[] = [];
  after(async () => {
    for (const a of agents) await a.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, ...agents));

  test('servers with the same -encrypt key join over the WAN; one with another key cannot, and learns nothing', { timeout: 60_000 }, async () => {
    const key = randomBytes(32).toString('base64');
    const a = await AgentProcess.start({ name: 'key-a', mode: 'server', args: ['-datacenter', 'ka', '-encrypt', key] });
    agents.push(a);
    const b = await AgentProcess.start({ name: 'key-b', mode: 'server', args: ['-datacenter', 'kb', '-encrypt', key, '-join-wan', a.serfWanAddr] });
    agents.push(b);
    const c = await AgentProcess.start({ name: 'key-c', mode: 'server', args: ['-datacenter', 'kc', '-encrypt', randomBytes(32).toString('base64')] });
    agents.push(c);
    await waitFor('ka sees kb', async () => (await a.getJson<string[]>('/v1/catalog/datacenters')).includes('kb'), 20_000, 200);
    const r = await c.request('PUT', `/v1/agent/join/${a.serfWanAddr}?wan=1`, { timeoutMs: 30_000 });
    assert.equal(r.status, 500);
    assert.match(r.text, /gossip key mismatch/);
    assert.deepEqual(await c.getJson<string[]>('/v1/catalog/datacenters'), ['kc']);
    assert.deepEqual((await a.getJson<string[]>('/v1/catalog/datacenters')).sort(), ['ka', 'kb']);
    assert.equal((await c.request('GET', '/v1/catalog/nodes?dc=ka')).text, 'No path to datacenter');
  });
});

describe('WAN federation: -join-wan at start', () => {
  test('-join-wan to an address nobody answers: the agent does not start, and says which flag and address', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-joinwan-'));
    try {
      const dead = await freePort();
      const r = await runTrellis(['agent', '-server', '-bootstrap', '-data-dir', dir, '-node', 'lonely', '-bind', '127.0.0.1', '-client', '127.0.0.1',
        '-http-port', String(await freePort()), '-dns-port', '-1', '-server-port', String(await freePort()),
        '-serf-lan-port', String(await freePort({ udp: true })), '-serf-wan-port', String(await freePort({ udp: true })),
        '-join-wan', `127.0.0.1:${dead}`], { timeoutMs: 45_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, new RegExp(`could not join the WAN pool through -join-wan 127\\.0\\.0\\.1:${dead}`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WAN federation: leaving', () => {
  const agents: AgentProcess[] = [];
  after(async () => {
    for (const a of agents) await a.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, ...agents));

  test('a server that leaves is "left" in the other datacenters\' WAN pool and its datacenter has no path', { timeout: 60_000 }, async () => {
    const a = await AgentProcess.start({ name: 'leave-a', mode: 'server', args: ['-datacenter', 'la'] });
    agents.push(a);
    const b = await AgentProcess.start({ name: 'leave-b', mode: 'server', args: ['-datacenter', 'lb', '-join-wan', a.serfWanAddr] });
    agents.push(b);
    await waitFor('la sees lb', async () => (await a.getJson<string[]>('/v1/catalog/datacenters')).includes('lb'), 20_000, 200);
    const r = await runTrellis(['leave', '-http-addr', b.httpAddr], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    await b.waitExit();
    const m = await waitFor('leave-b.lb is left', async () => {
      const row = (await a.getJson<Member[]>('/v1/agent/members?wan=1')).find((x) => x.Name === 'leave-b.lb');
      return row?.Status === 3 ? row : undefined;
    }, 15_000, 100);
    assert.equal(m.Status, 3, 'left (3), not failed (4)');
    assert.deepEqual(await a.getJson<string[]>('/v1/catalog/datacenters'), ['la']);
    assert.equal((await a.request('GET', '/v1/catalog/nodes?dc=lb')).text, 'No path to datacenter');
  });
});
