// Client agents and serfHealth, with real processes on loopback: 3 servers (-bootstrap-expect 3,
// joined through LAN gossip) and 5 client agents joined to them.
//   - every agent sees all 8 members alive; the catalog lists all 8 nodes with serfHealth passing;
//   - a service registered on a client shows in catalog/service at once and in a server's DNS;
//     KV writes and reads through a client reach the servers (forwarded);
//   - a user event fired on a client reaches every agent once;
//   - kill -9 a client: serfHealth critical within 10 s, its service leaves DNS and ?passing;
//     restart it: passing again;
//   - graceful leave of a client: status left (3) in members, deregistered from the catalog.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentProcess, runTrellis } from '../support/index.ts';
import { Cluster, FAST_RAFT, waitFor } from '../cluster/cluster.ts';

interface MemberRow { Name: string; Status: number; Tags: Record<string, string> }
interface HealthRow { Node: string; CheckID: string; Status: string }

describe('client agents, gossip membership and serfHealth', () => {
  let c: Cluster;
  const clients: AgentProcess[] = [];
  let failed = true;

  const dnsSrv = async (name: string): Promise<string[]> => {
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([`127.0.0.1:${c.servers[0]!.ports.dns}`]);
    try {
      return (await r.resolveSrv(name)).map((x) => `${x.name}:${x.port}`).sort();
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOTFOUND') return [];
      throw err;
    }
  };
  const serfHealth = async (node: string): Promise<string | undefined> => {
    const checks = await c.servers[0]!.getJson<HealthRow[]>(`/v1/health/node/${node}`);
    return checks.find((h) => h.CheckID === 'serfHealth')?.Status;
  };

  before(async () => {
    c = await Cluster.create(3, { config: FAST_RAFT });
    await c.formed();
    const joins = c.servers.flatMap((s) => ['-retry-join', s.serfAddr]);
    const started = await Promise.all([1, 2, 3, 4, 5].map((i) => AgentProcess.start({
      mode: 'client', name: `c${i}`, args: [...joins, '-retry-interval', '1s'], readyTimeoutMs: 30_000,
    })));
    clients.push(...started);
  });

  after(async () => {
    if (failed) {
      c.dumpLogs(40);
      for (const a of clients) console.log(`---- ${a.name}\n${a.logTail(30)}`);
    }
    await Promise.all(clients.map((a) => a.dispose({ keepDir: failed })));
    await c?.dispose({ keep: failed });
  });

  test('every agent lists all 8 members alive, and the catalog has them all passing', async () => {
    const names = [...c.servers.map((s) => s.name), ...clients.map((a) => a.name)].sort();
    await waitFor('8 alive members everywhere', async () => {
      for (const url of [...c.servers.map((s) => s.url), ...clients.map((a) => a.url)]) {
        const r = await fetch(`${url}/v1/agent/members`);
        const rows = (await r.json()) as MemberRow[];
        const alive = rows.filter((m) => m.Status === 1).map((m) => m.Name).sort();
        if (JSON.stringify(alive) !== JSON.stringify(names)) return undefined;
      }
      return true;
    }, 30_000);
    const clientRow = (await clients[0]!.getJson<MemberRow[]>('/v1/agent/members')).find((m) => m.Name === 'c2')!;
    assert.equal(clientRow.Tags.role, 'node');
    await waitFor('every node passing serfHealth', async () => {
      const rows = await c.servers[1]!.getJson<HealthRow[]>('/v1/health/state/any');
      const passing = rows.filter((h) => h.CheckID === 'serfHealth' && h.Status === 'passing').map((h) => h.Node).sort();
      return JSON.stringify(passing) === JSON.stringify(names) ? true : undefined;
    }, 20_000);
    // `trellis members` on a client: Consul's columns, every member.
    const out = await runTrellis(['members', '-http-addr', clients[2]!.httpAddr]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout.split('\n')[0]!, /^Node\s+Address\s+Status\s+Type\s+Build\s+Protocol\s+DC\s+Partition\s+Segment/);
    assert.equal(out.stdout.trim().split('\n').length, 9);
    assert.match(out.stdout, /\nc4\s+127\.0\.0\.1:\d+\s+alive\s+client\s/);
  });

  test('a service registered on a client is in the catalog when the call returns, and in DNS', async () => {
    const a = clients[0]!;
    const reg = await a.request('PUT', '/v1/agent/service/register', { body: { Name: 'web', ID: 'web-c1', Port: 8080 } });
    assert.equal(reg.status, 200, reg.text);
    const rows = await c.servers[2]!.getJson<Array<{ Node: string; ServicePort: number }>>('/v1/catalog/service/web');
    assert.deepEqual(rows.map((r) => [r.Node, r.ServicePort]), [['c1', 8080]]);
    // Read back through another client (forwarded to a server).
    const viaClient = await clients[1]!.getJson<Array<{ Node: { Node: string } }>>('/v1/health/service/web?passing');
    assert.deepEqual(viaClient.map((r) => r.Node.Node), ['c1']);
    assert.deepEqual(await dnsSrv('web.service.consul'), ['c1.node.dc1.consul:8080']);
  });

  test('client agents serve DNS too: lookups forwarded to a server (?stale) answer SRV and node A', async () => {
    // The owning client and another one: neither has a catalog of its own.
    for (const agent of [clients[0]!, clients[1]!]) {
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([`127.0.0.1:${agent.ports.dns}`]);
      const srv = async (): Promise<string[]> => (await r.resolveSrv('web.service.consul')).map((x) => `${x.name}:${x.port}`).sort();
      // A stale read may trail the leader by a moment: wait for it, then assert the exact answer.
      await waitFor(`web SRV via ${agent.name}'s DNS`, async () => ((await srv()).length > 0 ? true : undefined), 5000);
      assert.deepEqual(await srv(), ['c1.node.dc1.consul:8080'], agent.name);
      assert.deepEqual(await r.resolve4('c1.node.consul'), ['127.0.0.1'], agent.name);
    }
  });

  test('KV through a client is forwarded: writes land on the servers, errors keep their status', async () => {
    const put = await clients[3]!.request('PUT', '/v1/kv/app/config', { body: 'v1' });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.text, 'true');
    const got = await c.servers[0]!.request('GET', '/v1/kv/app/config?raw');
    assert.equal(got.text, 'v1');
    const viaClient = await clients[4]!.request('GET', '/v1/kv/app/config?raw');
    assert.equal(viaClient.text, 'v1');
    assert.ok(Number(viaClient.headers['x-consul-index']) > 0);
    const missing = await clients[4]!.request('GET', '/v1/kv/app/nope');
    assert.equal(missing.status, 404);
    const bad = await clients[4]!.request('PUT', '/v1/kv/app/x?cas=notanumber', { body: 'x' });
    assert.equal(bad.status, 400, bad.text);
  });

  test('a user event fired on a client reaches every agent once', async () => {
    const fire = await clients[1]!.request('PUT', '/v1/event/fire/deploy', { body: 'build-42' });
    assert.equal(fire.status, 200, fire.text);
    const id = (JSON.parse(fire.text) as { ID: string }).ID;
    await waitFor('the event on all 8 agents', async () => {
      for (const url of [...c.servers.map((s) => s.url), ...clients.map((a) => a.url)]) {
        const evs = (await (await fetch(`${url}/v1/event/list?name=deploy`)).json()) as Array<{ ID: string; Payload: string }>;
        if (evs.filter((e) => e.ID === id).length !== 1) return undefined;
        assert.equal(Buffer.from(evs[0]!.Payload, 'base64').toString(), 'build-42');
      }
      return true;
    }, 15_000);
  });

  test('checks run on the client that owns them: HTTP status reaches the catalog; DeregisterCriticalServiceAfter removes the service', async () => {
    let code = 200;
    const app = http.createServer((_req, res) => { res.writeHead(code); res.end(code === 200 ? 'all good' : 'down'); });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const port = (app.address() as AddressInfo).port;
    try {
      const a = clients[1]!;
      const reg = await a.request('PUT', '/v1/agent/service/register', { body: {
        Name: 'api', ID: 'api-c2', Port: port,
        Checks: [
          { CheckID: 'api-http', HTTP: `http://127.0.0.1:${port}/health`, Interval: '1s', DeregisterCriticalServiceAfter: '4s' },
          { CheckID: 'api-tcp', TCP: `127.0.0.1:${port}`, Interval: '1s' },
        ],
      } });
      assert.equal(reg.status, 200, reg.text);
      const apiChecks = async () => (await c.servers[0]!.getJson<Array<HealthRow & { Output: string }>>('/v1/health/checks/api'))
        .sort((x, y) => x.CheckID.localeCompare(y.CheckID));
      await waitFor('both checks passing in the catalog', async () =>
        (await apiChecks()).every((h) => h.Status === 'passing') && (await apiChecks()).length === 2 ? true : undefined, 10_000);
      const [httpCheck, tcpCheck] = await apiChecks();
      assert.equal(httpCheck!.Output, `HTTP GET http://127.0.0.1:${port}/health: 200 OK Output: all good`);
      assert.match(tcpCheck!.Output, /^TCP connect 127\.0\.0\.1:\d+: Success$/);
      const local = await a.getJson<Record<string, { Status: string }>>('/v1/agent/checks');
      assert.equal(local['api-http']!.Status, 'passing');

      code = 503;
      await waitFor('the HTTP check critical in the catalog', async () =>
        (await apiChecks()).find((h) => h.CheckID === 'api-http')?.Status === 'critical' ? true : undefined, 10_000);
      assert.deepEqual(await c.servers[0]!.getJson<unknown[]>('/v1/health/service/api?passing'), []);
      // Critical for 4 s: the owning agent deregisters the service, and the catalog follows.
      await waitFor('api deregistered', async () =>
        (await c.servers[0]!.getJson<unknown[]>('/v1/catalog/service/api')).length === 0 ? true : undefined, 15_000);
      assert.equal((await a.getJson<Record<string, unknown>>('/v1/agent/services'))['api-c2'], undefined);
    } finally {
      app.close();
    }
  });

  test('bad check definitions are refused with a 400 naming the problem, and change nothing', async () => {
    const a = clients[2]!;
    const script = await a.request('PUT', '/v1/agent/check/register', { body: { Name: 'sh', Args: ['/bin/true'], Interval: '10s' } });
    assert.equal(script.status, 400, script.text);
    assert.match(script.text, /Scripts are disabled on this agent/);
    const docker = await a.request('PUT', '/v1/agent/check/register', { body: { Name: 'd', DockerContainerID: 'abc', Args: ['x'], Interval: '10s' } });
    assert.equal(docker.status, 400, docker.text);
    const noInterval = await a.request('PUT', '/v1/agent/check/register', { body: { Name: 'h', HTTP: 'http://127.0.0.1:1/' } });
    assert.equal(noInterval.status, 400, noInterval.text);
    assert.match(noInterval.text, /Interval must be > 0/);
    assert.deepEqual(await a.getJson<Record<string, unknown>>('/v1/agent/checks'), {});
  });

  test('kill -9 a client: serfHealth critical within 10 s and out of DNS; restarted: passing again', async () => {
    const a = clients[0]!;
    await a.kill();
    // The 10 s bound is the wait's deadline: waitFor throws when it passes.
    await waitFor('c1 serfHealth critical', async () => (await serfHealth('c1')) === 'critical' ? true : undefined, 10_000);
    assert.deepEqual(await dnsSrv('web.service.consul'), []);
    assert.deepEqual(await c.servers[0]!.getJson<unknown[]>('/v1/health/service/web?passing'), []);
    // The node and its service stay in the catalog (a failed node may come back).
    assert.equal((await c.servers[0]!.getJson<unknown[]>('/v1/catalog/service/web')).length, 1);

    await a.restart();
    await waitFor('c1 serfHealth passing again', async () => (await serfHealth('c1')) === 'passing' ? true : undefined, 20_000);
    // Its API registration was kept in its data dir: the restarted agent holds it again.
    await waitFor('c1 holds web-c1 again', async () =>
      (await a.getJson<Record<string, { Port: number }>>('/v1/agent/services'))['web-c1']?.Port === 8080 ? true : undefined, 10_000);
    assert.deepEqual(await dnsSrv('web.service.consul'), ['c1.node.dc1.consul:8080']);
  });

  test('graceful leave of a client: status left, deregistered from the catalog', async () => {
    const a = clients[4]!;
    const r = await a.request('PUT', '/v1/agent/leave');
    assert.equal(r.status, 200, r.text);
    await waitFor('c5 left in members', async () => {
      const rows = await c.servers[0]!.getJson<MemberRow[]>('/v1/agent/members');
      return rows.find((m) => m.Name === 'c5')?.Status === 3 ? true : undefined;
    }, 15_000);
    await waitFor('c5 deregistered', async () => {
      const nodes = await c.servers[0]!.getJson<Array<{ Node: string }>>('/v1/catalog/nodes');
      return nodes.some((n) => n.Node === 'c5') ? undefined : true;
    }, 15_000);
    failed = false;
  });
});
