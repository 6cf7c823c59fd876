// client_addr may name several addresses, space-separated (Consul binds the HTTP API on each of
// them); the agent once listened on the first only.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, request } from '../support/index.ts';

let agent: AgentProcess | undefined;
after(async () => { await agent?.dispose(); });

test('-client "127.0.0.1 127.0.0.9": the HTTP API answers on both addresses, and on no other', async () => {
  agent = await AgentProcess.start({ name: 'client-addrs', args: ['-client', '127.0.0.1 127.0.0.9'] });
  const port = new URL(`http://${agent.httpAddr}`).port;
  for (const host of ['127.0.0.1', '127.0.0.9']) {
    const r = await request(`http://${host}:${port}`, 'GET', '/v1/agent/self');
    assert.equal(r.status, 200, `${host}: ${r.text}`);
    assert.equal(r.json<{ Config: { NodeName: string } }>().Config.NodeName, agent.name);
  }
  await assert.rejects(request(`http://127.0.0.8:${port}`, 'GET', '/v1/agent/self'), /ECONNREFUSED/);
});
