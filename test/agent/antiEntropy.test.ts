// Anti-entropy (Consul's agent/ae) with real processes: a client agent owns the truth about its
// services, so a service deregistered from the catalog behind its back (PUT /v1/catalog/deregister
// on a server, as an operator or a script might) comes back at the next full sync, and so does a
// check whose status was overwritten in the catalog. The client runs with ae_interval 2s (Consul's
// own test agents shorten this non-user setting the same way); the default is one minute.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, waitFor, closeIdleSockets } from '../support/index.ts';

let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-ae-'));

before(async () => {
  server = await AgentProcess.start({ name: 'ae-server', mode: 'server' });
  const cfg = path.join(tmp, 'client.json');
  fs.writeFileSync(cfg, JSON.stringify({ ae_interval: '2s' }));
  client = await AgentProcess.start({
    name: 'ae-client', mode: 'client', readyTimeoutMs: 30_000,
    args: ['-retry-join', server.serfAddr, '-retry-interval', '1s', '-config-file', cfg],
  });
});
after(async () => {
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

interface CatalogService { Node: string; ServiceID: string; ServicePort: number }
interface HealthCheck { Node: string; CheckID: string; Status: string; ServiceID: string }

const webInstances = async () => (await server!.getJson<CatalogService[]>('/v1/catalog/service/web')).filter((s) => s.Node === 'ae-client');

test('a service deregistered from the catalog behind the client agent\'s back comes back', async () => {
  const reg = await client!.request('PUT', '/v1/agent/service/register', {
    body: { ID: 'web-1', Name: 'web', Port: 8080, Check: { CheckID: 'web-ttl', TTL: '10m', Status: 'passing' } },
  });
  assert.equal(reg.status, 200, reg.text);
  await waitFor('web-1 in the catalog', async () => (await webInstances()).length === 1);

  const dereg = await server!.request('PUT', '/v1/catalog/deregister', { body: { Node: 'ae-client', ServiceID: 'web-1' } });
  assert.equal(dereg.status, 200, dereg.text);
  assert.equal(dereg.text, 'true');
  // The deregistration did happen (a read at the server, after the write was acknowledged).
  assert.deepEqual(await webInstances(), []);
  // The agent itself still has the service: nothing told it.
  assert.ok('web-1' in await client!.getJson<Record<string, unknown>>('/v1/agent/services'));

  // Back within one anti-entropy round: 2 s, plus up to 1/16 stagger, plus the sync itself.
  const back = await waitFor('web-1 back in the catalog', async () => {
    const rows = await webInstances();
    return rows.length === 1 ? rows : undefined;
  }, 20_000, 200);
  assert.equal(back[0]!.ServiceID, 'web-1');
  assert.equal(back[0]!.ServicePort, 8080);
  // Its check came back with it, with the agent's status.
  const checks = await server!.getJson<HealthCheck[]>('/v1/health/checks/web');
  assert.deepEqual(checks.filter((c) => c.Node === 'ae-client').map((c) => [c.CheckID, c.Status, c.ServiceID]), [['web-ttl', 'passing', 'web-1']]);
});

test('a check status overwritten in the catalog is put back to the agent\'s', async () => {
  // A catalog write of the client's node with the check critical: the agent still says passing.
  const put = await server!.request('PUT', '/v1/catalog/register', {
    body: { Node: 'ae-client', Address: '127.0.0.1', Check: { CheckID: 'web-ttl', Name: 'web-ttl', ServiceID: 'web-1', Status: 'critical' } },
  });
  assert.equal(put.status, 200, put.text);
  const status = async () => (await server!.getJson<HealthCheck[]>('/v1/health/checks/web')).find((c) => c.CheckID === 'web-ttl')?.Status;
  assert.equal(await status(), 'critical');
  await waitFor('web-ttl passing again in the catalog', async () => (await status()) === 'passing', 20_000, 200);
});
