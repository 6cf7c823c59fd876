// Services and checks declared in a config file are registered by the agent at start, as Consul does,
// and show up in the catalog, health and DNS like ones registered through the API.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, waitFor } from '../support/index.ts';

test('config-file services and checks are registered at start', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-config-services-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'services.json');
  writeFileSync(file, JSON.stringify({
    services: [{ name: 'web', id: 'web-1', port: 8080, tags: ['v1'], checks: [{ check_id: 'web-ttl', ttl: '60s', status: 'passing' }] }],
    checks: [{ id: 'node-ttl', name: 'node ttl', ttl: '60s' }],
  }));
  const agent = await AgentProcess.start({ name: 'config-services', args: ['-config-file', file] });
  after(() => agent.dispose());
  await waitFor('web in the catalog', async () => {
    const r = await agent.request('GET', '/v1/catalog/service/web');
    return r.status === 200 && (r.json() as unknown[]).length === 1;
  }, 15_000);
  const [svc] = (await agent.request('GET', '/v1/catalog/service/web')).json() as Array<{ ServiceID: string; ServicePort: number; ServiceTags: string[] }>;
  assert.equal(svc!.ServiceID, 'web-1');
  assert.equal(svc!.ServicePort, 8080);
  assert.deepEqual(svc!.ServiceTags, ['v1']);
  const checks = (await agent.request('GET', '/v1/agent/checks')).json() as Record<string, { Status: string; ServiceID: string }>;
  assert.equal(checks['web-ttl']?.ServiceID, 'web-1');
  assert.equal(checks['web-ttl']?.Status, 'passing');
  assert.ok(checks['node-ttl'], 'the node-level check from `checks` is registered');
});
