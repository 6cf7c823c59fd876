// Tools Consul users already have, pointed at a real `trellis agent -dev` process: the npm `consul`
// client library (v2) for KV, catalog, health, session, agent, txn and status calls, and `dig` for
// DNS. Each test asserts what the client hands its caller, i.e. what an application would see.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EventEmitter } from 'node:events';
import Consul from 'consul';
import { AgentProcess, printLogsIfFailed, waitFor, closeIdleSockets } from '../support/index.ts';

const execFileP = promisify(execFile);

let agent: AgentProcess;
// The client's typings are narrower than what it sends and returns (txn operations, KV Session,
// includeResponse); every assertion below checks the shapes themselves.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let consul: any;

before(async () => {
  agent = await AgentProcess.start({ name: 'clients' });
  consul = new Consul({ host: '127.0.0.1', port: agent.ports.http });
});
after(async () => {
  consul?.destroy();
  await agent?.dispose();
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, agent));

/**
 * The client's `ctx` option: an EventEmitter (papi requires one) whose includeResponse makes every
 * call resolve to [response, body], so a test sees the status and headers the application gets.
 */
function responseCtx(): EventEmitter & { includeResponse: true } {
  return Object.assign(new EventEmitter(), { includeResponse: true as const });
}

async function withResponse<T>(call: (ctx: EventEmitter) => Promise<[{ statusCode: number; headers: Record<string, string> }, T]>) {
  const [res, body] = await call(responseCtx());
  return { status: res.statusCode, headers: res.headers, body };
}

describe('npm consul client', () => {
  test('status: leader is this agent\'s server address, peers lists it', async () => {
    const leader = await consul.status.leader();
    assert.equal(leader, `127.0.0.1:${agent.ports.server}`);
    assert.deepEqual(await consul.status.peers(), [leader]);
  });

  test('kv: set, get, keys, flags, recurse, del', async () => {
    assert.equal(await consul.kv.set('clients/app/config', 'hello'), true);
    assert.equal(await consul.kv.set({ key: 'clients/app/flagged', value: 'v', flags: 42 }), true);
    const got = await consul.kv.get('clients/app/config');
    assert.equal(got.Key, 'clients/app/config');
    assert.equal(got.Value, 'hello');
    assert.equal(got.Flags, 0);
    assert.ok(got.CreateIndex > 0 && got.ModifyIndex >= got.CreateIndex, JSON.stringify(got));
    assert.equal((await consul.kv.get('clients/app/flagged')).Flags, 42);
    assert.deepEqual(await consul.kv.keys('clients/app/'), ['clients/app/config', 'clients/app/flagged']);
    assert.deepEqual(await consul.kv.keys({ key: 'clients/', separator: '/' }), ['clients/app/']);
    const all = await consul.kv.get({ key: 'clients/app/', recurse: true });
    assert.deepEqual(all.map((e: { Key: string; Value: string }) => [e.Key, e.Value]), [['clients/app/config', 'hello'], ['clients/app/flagged', 'v']]);
    assert.equal(await consul.kv.get('clients/missing'), undefined);
    // A binary value survives the round trip byte for byte.
    const bytes = Buffer.from([0, 255, 1, 254, 10, 13]);
    assert.equal(await consul.kv.set('clients/bin', bytes), true);
    assert.deepEqual((await consul.kv.get({ key: 'clients/bin', buffer: true })).Value, bytes);
    assert.equal(await consul.kv.del('clients/app/config'), true);
    assert.equal(await consul.kv.get('clients/app/config'), undefined);
    assert.equal(await consul.kv.del({ key: 'clients/', recurse: true }), true);
    assert.deepEqual(await consul.kv.keys({ key: 'clients/' }).catch((e: { statusCode?: number }) => e.statusCode), 404);
  });

  test('kv: check-and-set takes the current ModifyIndex and refuses a stale one', async () => {
    await consul.kv.set('cas/key', 'v1');
    const first = await consul.kv.get('cas/key');
    // cas=0 creates only when the key is absent.
    const create = await withResponse((ctx) => consul.kv.set({ key: 'cas/key', value: 'nope', cas: 0, ctx }));
    assert.deepEqual([create.status, create.body], [200, false]);
    const ok = await withResponse((ctx) => consul.kv.set({ key: 'cas/key', value: 'v2', cas: first.ModifyIndex, ctx }));
    assert.deepEqual([ok.status, ok.body], [200, true]);
    const stale = await withResponse((ctx) => consul.kv.set({ key: 'cas/key', value: 'v3', cas: first.ModifyIndex, ctx }));
    assert.deepEqual([stale.status, stale.body], [200, false]);
    const now = await consul.kv.get('cas/key');
    assert.equal(now.Value, 'v2');
    assert.ok(now.ModifyIndex > first.ModifyIndex);
    const delStale = await withResponse((ctx) => consul.kv.del({ key: 'cas/key', cas: first.ModifyIndex, ctx }));
    assert.deepEqual([delStale.status, delStale.body], [200, false]);
    assert.equal(await consul.kv.del({ key: 'cas/key', cas: now.ModifyIndex }), true);
    assert.equal(await consul.kv.get('cas/key'), undefined);
  });

  test('agent: self, members, service register with a TTL check, check pass, deregister', async () => {
    const self = await consul.agent.self();
    assert.equal(self.Config.NodeName, 'clients');
    assert.equal(self.Config.Datacenter, 'dc1');
    assert.equal(self.Config.Server, true);
    const members = await consul.agent.members();
    assert.equal(members.length, 1);
    assert.equal(members[0].Name, 'clients');
    assert.equal(members[0].Status, 1); // serf's "alive"
    assert.equal(members[0].Tags.role, 'consul');

    await consul.agent.service.register({
      name: 'api', id: 'api-1', port: 9090, tags: ['v2', 'primary'], meta: { team: 'core' },
      check: { ttl: '30s', name: 'api ttl' },
    });
    const services = await consul.agent.service.list();
    assert.equal(services['api-1'].Service, 'api');
    assert.equal(services['api-1'].Port, 9090);
    assert.deepEqual(services['api-1'].Tags, ['v2', 'primary']);
    assert.deepEqual(services['api-1'].Meta, { team: 'core' });
    const checks = await consul.agent.check.list();
    assert.equal(checks['service:api-1'].Status, 'critical'); // a TTL check starts critical
    // Registered locally, the service is in the catalog and unhealthy until the TTL is passed.
    await waitFor('api in the catalog', async () => (await consul.catalog.service.nodes('api')).length === 1);
    assert.deepEqual(await consul.health.service({ service: 'api', passing: true }), []);

    await consul.agent.check.pass({ id: 'service:api-1', note: 'all good' });
    assert.equal((await consul.agent.check.list())['service:api-1'].Status, 'passing');
    const healthy = await consul.health.service({ service: 'api', passing: true });
    assert.equal(healthy.length, 1);
    assert.equal(healthy[0].Service.ID, 'api-1');
    assert.equal(healthy[0].Service.Port, 9090);
    assert.equal(healthy[0].Node.Node, 'clients');
    const apiCheck = healthy[0].Checks.find((c: { CheckID: string }) => c.CheckID === 'service:api-1');
    assert.equal(apiCheck.Output, 'all good');

    // A node-level check through agent/check/register.
    await consul.agent.check.register({ name: 'disk', id: 'disk', ttl: '60s' });
    await consul.agent.check.pass('disk');
    const nodeHealth = await consul.health.node('clients');
    assert.equal(nodeHealth[0].CheckID, 'serfHealth'); // Consul lists serfHealth first
    assert.equal(nodeHealth.find((c: { CheckID: string }) => c.CheckID === 'disk').Status, 'passing');
    await consul.agent.check.deregister('disk');

    await consul.agent.service.deregister('api-1');
    assert.deepEqual(await consul.agent.service.list(), {});
    assert.deepEqual(await consul.catalog.service.nodes('api'), []);
  });

  test('catalog: register an external node with a service and a check; nodes, services, service nodes, node; health checks', async () => {
    await consul.catalog.register({
      node: 'ext-db', address: '10.1.2.3', datacenter: 'dc1',
      service: { service: 'postgres', id: 'pg-1', port: 5432, tags: ['primary'] },
      check: { node: 'ext-db', checkid: 'pg-alive', name: 'pg alive', status: 'passing', serviceid: 'pg-1' },
    });
    const nodes = await consul.catalog.node.list();
    assert.deepEqual(nodes.map((n: { Node: string }) => n.Node).sort(), ['clients', 'ext-db']);
    assert.equal(nodes.find((n: { Node: string }) => n.Node === 'ext-db').Address, '10.1.2.3');
    const services = await consul.catalog.service.list();
    assert.deepEqual(services.postgres, ['primary']);
    assert.ok('consul' in services, `the servers' consul service is listed: ${JSON.stringify(services)}`);
    const pg = await consul.catalog.service.nodes('postgres');
    assert.equal(pg.length, 1);
    assert.deepEqual([pg[0].Node, pg[0].Address, pg[0].ServiceID, pg[0].ServicePort, pg[0].ServiceTags], ['ext-db', '10.1.2.3', 'pg-1', 5432, ['primary']]);
    const tagged = await consul.catalog.service.nodes({ service: 'postgres', tag: 'replica' });
    assert.deepEqual(tagged, []);
    const node = await consul.catalog.node.services('ext-db');
    assert.equal(node.Node.Node, 'ext-db');
    assert.equal(node.Services['pg-1'].Port, 5432);
    const checks = await consul.health.checks('postgres');
    assert.deepEqual(checks.map((c: { CheckID: string; Status: string }) => [c.CheckID, c.Status]), [['pg-alive', 'passing']]);
    const critical = await consul.health.state('critical');
    assert.ok(!critical.some((c: { CheckID: string }) => c.CheckID === 'pg-alive'));

    await consul.catalog.deregister({ node: 'ext-db' });
    assert.deepEqual((await consul.catalog.node.list()).map((n: { Node: string }) => n.Node), ['clients']);
    assert.equal((await consul.catalog.service.list()).postgres, undefined);
  });

  test('session: create, info, list, node, renew, lock with it, destroy releases the lock', async () => {
    const { ID: id } = await consul.session.create({ name: 'worker', ttl: '30s', behavior: 'release', lockdelay: '0s' });
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const info = await consul.session.info(id);
    assert.equal(info.ID, id);
    assert.equal(info.Name, 'worker');
    assert.equal(info.TTL, '30s');
    assert.equal(info.Behavior, 'release');
    assert.equal(info.Node, 'clients');
    assert.ok((await consul.session.list()).some((s: { ID: string }) => s.ID === id));
    assert.ok((await consul.session.node('clients')).some((s: { ID: string }) => s.ID === id));
    const renewed = await consul.session.renew(id);
    assert.equal(renewed[0].ID, id);

    assert.equal(await consul.kv.set({ key: 'svc/leader', value: 'me', acquire: id }), true);
    assert.equal((await consul.kv.get('svc/leader')).Session, id);
    await consul.session.destroy(id);
    assert.equal(await consul.session.info(id), undefined);
    const after = await consul.kv.get('svc/leader');
    assert.equal(after.Value, 'me', 'release keeps the key');
    assert.equal(after.Session, undefined, 'and drops the lock holder');
  });

  test('txn: atomic KV set/cas/get, node and service operations, and a failing op rolls back all', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const ok = await consul.transaction.create([
      { KV: { Verb: 'set', Key: 'txn/a', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'txn/b', Value: b64('2') } },
      { KV: { Verb: 'get', Key: 'txn/a' } },
      { Node: { Verb: 'set', Node: { Node: 'txn-node', Address: '10.9.9.9' } } },
      { Service: { Verb: 'set', Node: 'txn-node', Service: { ID: 'cache-1', Service: 'cache', Port: 6379 } } },
    ]);
    assert.equal(ok.Errors, null);
    assert.equal(ok.Results.length, 5);
    assert.equal(ok.Results[2].KV.Key, 'txn/a');
    assert.equal(Buffer.from(ok.Results[2].KV.Value, 'base64').toString(), '1');
    assert.equal(ok.Results[3].Node.Node, 'txn-node');
    assert.equal(ok.Results[4].Service.ID, 'cache-1');
    assert.equal((await consul.catalog.service.nodes('cache'))[0].ServicePort, 6379);

    const aIndex = ok.Results[2].KV.ModifyIndex;
    // The second op's CAS is stale: nothing of the transaction may be applied.
    const failed = await withResponse((ctx) => consul.transaction.create([
      { KV: { Verb: 'set', Key: 'txn/c', Value: b64('3') } },
      { KV: { Verb: 'cas', Key: 'txn/a', Value: b64('x'), Index: aIndex + 1000 } },
    ], { ctx })).catch((err: { statusCode: number; response?: { body: unknown } }) => ({ status: err.statusCode, body: err.response?.body, headers: {} }));
    assert.equal(failed.status, 409);
    const errors = (failed.body as { Errors: Array<{ OpIndex: number; What: string }> }).Errors;
    assert.equal(errors.length, 1);
    assert.equal(errors[0].OpIndex, 1);
    assert.match(errors[0].What, /index/i);
    assert.equal(await consul.kv.get('txn/c'), undefined);
    assert.equal((await consul.kv.get('txn/a')).Value, '1');

    await consul.catalog.deregister({ node: 'txn-node' });
    await consul.kv.del({ key: 'txn/', recurse: true });
  });

  test('blocking read through the client: index + wait returns after a write with the new index', async () => {
    await consul.kv.set('watch/k', 'a');
    const [res] = await consul.kv.get({ key: 'watch/k', ctx: responseCtx() });
    const index = Number(res.headers['x-consul-index']);
    const pending = consul.kv.get({ key: 'watch/k', index, wait: '5s', ctx: responseCtx() });
    setTimeout(() => { void consul.kv.set('watch/k', 'b'); }, 100);
    const [res2, body] = await pending;
    assert.ok(Number(res2.headers['x-consul-index']) > index);
    assert.equal(body.Value, 'b');
  });
});

describe('dig', () => {
  test('web.service.consul SRV answers the registered instance with its port; A answers its address; unknown is NXDOMAIN', async () => {
    await consul.catalog.register({
      node: 'web-host', address: '127.0.0.2',
      service: { service: 'web', id: 'web-1', port: 8080, tags: ['blue'] },
    });
    const dig = async (...q: string[]) => (await execFileP('dig', ['@127.0.0.1', '-p', String(agent.ports.dns), '+time=2', '+tries=1', ...q])).stdout;

    const srv = await dig('web.service.consul', 'SRV', '+short');
    // priority weight port target
    assert.match(srv.trim(), /^1 1 8080 web-host\.node\.dc1\.consul\.$/);
    const full = await dig('web.service.consul', 'SRV');
    assert.match(full, /status: NOERROR/);
    assert.match(full, /web-host\.node\.dc1\.consul\.\s+\d+\s+IN\s+A\s+127\.0\.0\.2/, 'the target\'s address rides in the additional section');

    assert.equal((await dig('web.service.consul', 'A', '+short')).trim(), '127.0.0.2');
    assert.equal((await dig('blue.web.service.consul', 'SRV', '+short')).trim(), '1 1 8080 web-host.node.dc1.consul.');
    assert.equal((await dig('green.web.service.consul', 'SRV', '+short')).trim(), '');
    assert.equal((await dig('web.service.dc1.consul', 'SRV', '+short')).trim(), '1 1 8080 web-host.node.dc1.consul.');
    assert.equal((await dig('web-host.node.consul', 'A', '+short')).trim(), '127.0.0.2');
    // Over TCP too.
    assert.equal((await dig('+tcp', 'web.service.consul', 'SRV', '+short')).trim(), '1 1 8080 web-host.node.dc1.consul.');

    const missing = await dig('nope.service.consul', 'SRV');
    assert.match(missing, /status: NXDOMAIN/);
    assert.match(missing, /AUTHORITY: 1/);
    assert.match(missing, /IN\s+SOA/);

    // Only passing instances: a critical check takes web-1 out of the answer.
    await consul.catalog.register({
      node: 'web-host', address: '127.0.0.2', skipnodeupdate: true,
      check: { node: 'web-host', checkid: 'web-down', name: 'web down', status: 'critical', serviceid: 'web-1' },
    });
    assert.equal((await dig('web.service.consul', 'SRV', '+short')).trim(), '');
    await consul.catalog.deregister({ node: 'web-host' });
  });
});
