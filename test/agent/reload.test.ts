// SIGHUP reload with a real agent process (Consul's `kill -HUP`): the agent re-reads -config-dir,
// registers a service definition file added since, removes one whose file is gone, keeps services
// registered through the API, and keeps running as the same process. A config dir that no longer
// parses is refused ("Failed to reload configs") and changes nothing.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, waitFor, closeIdleSockets } from '../support/index.ts';

let agent: AgentProcess | undefined;
const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-reload-'));

before(async () => {
  fs.writeFileSync(path.join(configDir, 'web.json'), JSON.stringify({ service: { id: 'web-1', name: 'web', port: 8080 } }));
  agent = await AgentProcess.start({ name: 'reload', args: ['-config-dir', configDir] });
  await waitFor('web-1 registered from the config dir', async () => 'web-1' in await services());
});
after(async () => {
  await agent?.dispose();
  fs.rmSync(configDir, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, agent));

const services = () => agent!.getJson<Record<string, { Service: string; Port: number }>>('/v1/agent/services');
const hups = () => (agent!.logTail(100_000).match(/==> Caught signal: hangup/g) ?? []).length;

test('kill -HUP: a service file added to the config dir is registered, a removed one deregistered, API ones kept', async () => {
  const pid = agent!.pid;
  const api = await agent!.request('PUT', '/v1/agent/service/register', { body: { ID: 'api-1', Name: 'api', Port: 9000 } });
  assert.equal(api.status, 200, api.text);

  fs.writeFileSync(path.join(configDir, 'db.json'), JSON.stringify({ service: { id: 'db-1', name: 'db', port: 5432, tags: ['primary'] } }));
  fs.rmSync(path.join(configDir, 'web.json'));
  const seen = hups();
  agent!.signal('SIGHUP');
  await waitFor('the agent logged the hangup', () => hups() === seen + 1);
  await waitFor('db-1 registered and web-1 gone after the reload', async () => {
    const s = await services();
    return 'db-1' in s && !('web-1' in s);
  }, 15_000);
  assert.deepEqual(Object.keys(await services()).sort(), ['api-1', 'db-1']);
  const db = await agent!.getJson<Array<{ ServiceID: string; ServicePort: number; ServiceTags: string[] }>>('/v1/catalog/service/db');
  assert.deepEqual(db.map((s) => [s.ServiceID, s.ServicePort, s.ServiceTags]), [['db-1', 5432, ['primary']]]);
  assert.deepEqual(await agent!.getJson<unknown[]>('/v1/catalog/service/web'), [], 'web-1 left the catalog too');
  assert.ok(agent!.running, 'SIGHUP does not stop the agent');
  assert.equal(agent!.pid, pid);
  assert.match(agent!.logTail(20), /==> Reloaded configuration/);
});

test('kill -HUP with a config file that does not parse: refused, nothing changes, the agent keeps running', async () => {
  const before = Object.keys(await services()).sort();
  fs.writeFileSync(path.join(configDir, 'broken.json'), '{ "service": { "name": ');
  const seen = hups();
  agent!.signal('SIGHUP');
  await waitFor('the reload is refused', () => hups() === seen + 1 && /==> Failed to reload configs: .*broken\.json/.test(agent!.logTail(20)), 15_000);
  assert.deepEqual(Object.keys(await services()).sort(), before);
  assert.ok(agent!.running);
  fs.rmSync(path.join(configDir, 'broken.json'));
});
