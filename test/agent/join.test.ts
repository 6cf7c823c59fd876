// PUT /v1/agent/join/<address> with real processes: a client agent started alone (no -join, so no
// servers and no leader) is joined to a server through its HTTP API; afterwards each lists the
// other as alive, the client reaches the leader through the server, and its node is in the
// catalog. A join to an address where nothing listens is a 500 with the reason, and changes nothing.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, freePort, printLogsIfFailed, waitFor, closeIdleSockets } from '../support/index.ts';

let server: AgentProcess | undefined;
let client: AgentProcess | undefined;

before(async () => {
  server = await AgentProcess.start({ name: 'join-server', mode: 'server' });
  client = await AgentProcess.start({ name: 'join-client', mode: 'client', readyWhen: 'http' });
});
after(async () => {
  await client?.dispose();
  await server?.dispose();
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

interface Member { Name: string; Status: number; Port: number }
const members = async (a: AgentProcess) => (await a.getJson<Member[]>('/v1/agent/members')).map((m) => `${m.Name}:${m.Status}`).sort();

test('a join to an address where nothing listens is a 500 and changes nothing', async () => {
  const nobody = `127.0.0.1:${await freePort()}`;
  const r = await client!.request('PUT', `/v1/agent/join/${nobody}`, { timeoutMs: 60_000 });
  assert.equal(r.status, 500, r.text);
  assert.notEqual(r.text.trim(), '', 'the answer says why');
  assert.deepEqual(await members(client!), ['join-client:1']);
});

test('PUT /v1/agent/join/<addr> joins a lone client to a server', async () => {
  // Alone, the client knows no server, so it has no leader.
  assert.deepEqual(await members(client!), ['join-client:1']);
  const before = await client!.request('GET', '/v1/status/leader');
  assert.ok(before.status !== 200 || before.json<string>() === '', `no leader before the join: ${before.status} ${before.text}`);

  const r = await client!.request('PUT', `/v1/agent/join/${server!.serfAddr}`);
  assert.equal(r.status, 200, r.text);

  const both = ['join-client:1', 'join-server:1'];
  await waitFor('each agent lists the other alive', async () =>
    JSON.stringify(await members(client!)) === JSON.stringify(both) && JSON.stringify(await members(server!)) === JSON.stringify(both));
  await waitFor('the client names the server as leader', async () => {
    const l = await client!.request('GET', '/v1/status/leader');
    return l.status === 200 && l.json<string>() === `127.0.0.1:${server!.ports.server}`;
  });
  await waitFor('the client node in the catalog', async () =>
    (await server!.getJson<Array<{ Node: string }>>('/v1/catalog/nodes')).some((n) => n.Node === 'join-client'));
  // Writes through the client now reach the server's state.
  const put = await client!.request('PUT', '/v1/kv/joined', { body: 'yes' });
  assert.equal(put.status, 200, put.text);
  assert.equal((await server!.request('GET', '/v1/kv/joined?raw')).text, 'yes');
});
