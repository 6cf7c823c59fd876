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

test('PUT /v1/agent/reload does what SIGHUP does: a new service file registered; a broken one refused with a 500 naming it', async () => {
  fs.writeFileSync(path.join(configDir, 'cache.json'), JSON.stringify({ service: { id: 'cache-1', name: 'cache', port: 6379 } }));
  const r = await agent!.request('PUT', '/v1/agent/reload');
  assert.equal(r.status, 200, r.text);
  assert.ok('cache-1' in await services(), 'registered by the time the reload answered');

  fs.writeFileSync(path.join(configDir, 'broken.json'), '{ "service": ');
  const before = Object.keys(await services()).sort();
  const bad = await agent!.request('PUT', '/v1/agent/reload');
  assert.equal(bad.status, 500);
  assert.match(bad.text, /broken\.json/);
  assert.deepEqual(Object.keys(await services()).sort(), before, 'nothing changed');
  fs.rmSync(path.join(configDir, 'broken.json'));
});

test('reload changes the log level: debug lines appear only after log_level goes from warn to debug', async () => {
  const levels = path.join(configDir, 'log.json');
  fs.writeFileSync(levels, JSON.stringify({ log_level: 'warn' }));
  assert.equal((await agent!.request('PUT', '/v1/agent/reload')).status, 200);
  const mark = agent!.logTail(100_000).length;
  const since = (): string => agent!.logTail(100_000).slice(mark);
  // Something the agent logs at debug level on demand: a service registration through the API.
  await agent!.request('PUT', '/v1/agent/service/register', { body: { ID: 'quiet-1', Name: 'quiet' } });
  await agent!.request('PUT', '/v1/agent/service/deregister/quiet-1');
  // Give a debug line time to reach the log if one were (wrongly) written.
  await new Promise((r) => setTimeout(r, 500));
  assert.doesNotMatch(since(), /\[DEBUG\]/, 'no debug lines at log_level warn');

  fs.writeFileSync(levels, JSON.stringify({ log_level: 'debug' }));
  assert.equal((await agent!.request('PUT', '/v1/agent/reload')).status, 200);
  await agent!.request('PUT', '/v1/agent/service/register', { body: { ID: 'loud-1', Name: 'loud' } });
  await waitFor('a debug line in the log after the reload', () => /\[DEBUG\]/.test(since()), 10_000);
  fs.rmSync(levels);
});
