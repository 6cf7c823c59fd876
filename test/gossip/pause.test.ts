// A client agent frozen (SIGSTOP: to the others it looks cut off, as in a partition) is declared
// failed: serfHealth critical, out of ?passing. Thawed (SIGCONT), it learns it was declared dead,
// refutes with a higher incarnation, and the leader marks it passing again, without a restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, waitFor } from '../support/index.ts';

interface HealthRow { CheckID: string; Status: string }

describe('a frozen client agent comes back by itself', () => {
  let server: AgentProcess;
  let client: AgentProcess;
  let failed = true;

  before(async () => {
    server = await AgentProcess.start({ mode: 'server', name: 'pz-s1' });
    client = await AgentProcess.start({ mode: 'client', name: 'pz-c1', args: ['-retry-join', server.serfAddr], readyTimeoutMs: 30_000 });
    const reg = await client.request('PUT', '/v1/agent/service/register', { body: { Name: 'frozen', Port: 1 } });
    assert.equal(reg.status, 200, reg.text);
  });
  after(async () => {
    // Never leave a stopped process group behind.
    try { process.kill(-client.pid!, 'SIGCONT'); } catch { /* gone */ }
    if (failed) for (const a of [server, client]) console.log(`---- ${a.name}\n${a.logTail(40)}`);
    await client?.dispose({ keepDir: failed });
    await server?.dispose({ keepDir: failed });
  });

  test('SIGSTOP: failed and critical; SIGCONT: alive and passing again', { timeout: 90_000 }, async () => {
    const serfHealth = async () => (await server.getJson<HealthRow[]>('/v1/health/node/pz-c1')).find((h) => h.CheckID === 'serfHealth')?.Status;
    assert.equal(await serfHealth(), 'passing');
    // The agent runs in its own process group (detached): stop all of it.
    process.kill(-client.pid!, 'SIGSTOP');
    await waitFor('pz-c1 critical while frozen', async () => (await serfHealth()) === 'critical' ? true : undefined, 30_000, 250);
    assert.deepEqual(await server.getJson<unknown[]>('/v1/health/service/frozen?passing'), []);
    const members = await server.getJson<Array<{ Name: string; Status: number }>>('/v1/agent/members');
    assert.equal(members.find((m) => m.Name === 'pz-c1')?.Status, 4, 'failed in the server\'s member list');

    process.kill(-client.pid!, 'SIGCONT');
    await waitFor('pz-c1 passing again', async () => (await serfHealth()) === 'passing' ? true : undefined, 45_000, 250);
    assert.equal((await server.getJson<unknown[]>('/v1/health/service/frozen?passing')).length, 1);
    const again = await server.getJson<Array<{ Name: string; Status: number }>>('/v1/agent/members');
    assert.equal(again.find((m) => m.Name === 'pz-c1')?.Status, 1);
    // The client itself kept running all along: same process, and it answers.
    assert.ok(client.running);
    assert.equal((await client.request('GET', '/v1/agent/self')).status, 200);
    failed = false;
  });
});
