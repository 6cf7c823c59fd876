// Operator and snapshot endpoints are ordinary routes of the HTTP API's one dispatcher: OPTIONS with
// Allow, 405 naming the allowed methods, ?dc, ?pretty, http_config.block_endpoints and Consul's
// error texts work on them exactly as on every other endpoint (they used to have a dispatcher of
// their own).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed } from '../support/index.ts';

let agent: AgentProcess;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-operator-'));
before(async () => {
  const conf = path.join(dir, 'block.json');
  fs.writeFileSync(conf, JSON.stringify({ http_config: { block_endpoints: ['/v1/operator/autopilot/health'] } }));
  agent = await AgentProcess.start({ name: 'operator-http', args: ['-config-file', conf] });
});
after(async () => {
  await agent?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach((t) => printLogsIfFailed(t, agent));

test('OPTIONS answers Allow; another method is a 405 naming the allowed ones', async () => {
  const o = await agent.request('OPTIONS', '/v1/operator/raft/configuration');
  assert.equal(o.status, 200);
  assert.equal(o.headers['allow'], 'OPTIONS,GET');
  const m = await agent.request('POST', '/v1/operator/raft/configuration');
  assert.equal(m.status, 405);
  const s = await agent.request('DELETE', '/v1/snapshot');
  assert.equal(s.status, 405);
  assert.match(String(s.headers['allow']), /GET/);
  assert.match(String(s.headers['allow']), /PUT/);
});

test('?dc of another datacenter, ?pretty, block_endpoints', async () => {
  const dc = await agent.request('GET', '/v1/operator/raft/configuration?dc=elsewhere');
  assert.equal(dc.status, 500);
  assert.equal(dc.text, 'No path to datacenter');
  const pretty = await agent.request('GET', '/v1/operator/raft/configuration?pretty');
  assert.equal(pretty.status, 200);
  assert.match(pretty.text, /^\{\n {4}"Servers": \[/);
  assert.ok(pretty.text.endsWith('\n'));
  assert.ok(pretty.headers['x-consul-index'], 'X-Consul-Index on the operator read');
  const blocked = await agent.request('GET', '/v1/operator/autopilot/health');
  assert.equal(blocked.status, 403);
  assert.equal(blocked.text, 'Endpoint is blocked by agent configuration');
});

test('a snapshot upload that is not a snapshot is a 400 that says so; an empty one says what to send', async () => {
  const bad = await agent.request('PUT', '/v1/snapshot', { body: Buffer.from('not a snapshot at all') });
  assert.equal(bad.status, 400, bad.text);
  const empty = await agent.request('PUT', '/v1/snapshot', { body: Buffer.alloc(0) });
  assert.equal(empty.status, 400);
  assert.match(empty.text, /Missing snapshot/);
});
