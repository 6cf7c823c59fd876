// A client agent cut off from every server keeps working on its own services and checks, as
// Consul's do: registrations and TTL updates answer 200 at once and are kept locally; when a server
// is reachable again (here: restarted, found by the gossip pool's reconnect of failed members),
// anti-entropy writes them to the catalog.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, waitFor } from '../support/index.ts';

describe('a client agent without a reachable server', () => {
  let server: AgentProcess;
  let client: AgentProcess;
  let failed = true;

  before(async () => {
    server = await AgentProcess.start({ mode: 'server', name: 'off-s1' });
    client = await AgentProcess.start({ mode: 'client', name: 'off-c1', args: ['-retry-join', server.serfAddr], readyTimeoutMs: 30_000 });
  });
  after(async () => {
    if (failed) for (const a of [server, client]) console.log(`---- ${a.name}\n${a.logTail(40)}`);
    await client?.dispose({ keepDir: failed });
    await server?.dispose({ keepDir: failed });
  });

  test('changes are accepted and kept while the server is down, and reach the catalog once it is back', { timeout: 90_000 }, async () => {
    await server.kill();
    const started = Date.now();
    const reg = await client.request('PUT', '/v1/agent/service/register', {
      body: { Name: 'cut', ID: 'cut-1', Port: 7000, Check: { CheckID: 'cut-ttl', TTL: '60s' } },
    });
    assert.equal(reg.status, 200, reg.text);
    const pass = await client.request('PUT', '/v1/agent/check/pass/cut-ttl?note=ok');
    assert.equal(pass.status, 200, pass.text);
    assert.ok(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`);
    const checks = await client.getJson<Record<string, { Status: string; Output: string }>>('/v1/agent/checks');
    assert.equal(checks['cut-ttl']?.Status, 'passing');
    // Reads that only a server can answer still fail, with Consul's text.
    const kv = await client.request('GET', '/v1/kv/x', { timeoutMs: 15_000 });
    assert.equal(kv.status, 500);
    assert.match(kv.text, /No known Consul servers|rpc error/);

    await server.restart();
    const rows = await waitFor('cut-1 in the catalog, passing', async () => {
      const r = await server.getJson<Array<{ Service: { ID: string }; Checks: Array<{ CheckID: string; Status: string; Output: string }> }>>('/v1/health/service/cut');
      const ttl = r[0]?.Checks.find((c) => c.CheckID === 'cut-ttl');
      return ttl?.Status === 'passing' ? r : undefined;
    }, 60_000, 500);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.Service.ID, 'cut-1');
    assert.equal(rows[0]!.Checks.find((c) => c.CheckID === 'cut-ttl')!.Output, 'ok');
    assert.match(client.logTail(10_000), /no server reachable: the change is kept on this agent/);
    failed = false;
  });
});
