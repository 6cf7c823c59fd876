// -encrypt on real agent processes: a server with a key from `trellis keygen`; a client agent with
// another key cannot join and learns nothing (not the members, not the catalog through a server);
// a client with the right key joins and sees the pool.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, runTrellis, sleep, waitFor } from '../support/index.ts';

interface MemberRow { Name: string; Status: number }

describe('gossip encryption (-encrypt) between agent processes', () => {
  let server: AgentProcess;
  let right: AgentProcess | undefined;
  let failed = true;
  const keys: string[] = [];

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const r = await runTrellis(['keygen']);
      assert.equal(r.code, 0, r.stderr);
      keys.push(r.stdout.trim());
    }
    assert.notEqual(keys[0], keys[1]);
    server = await AgentProcess.start({ mode: 'server', name: 'enc-s1', args: ['-encrypt', keys[0]!] });
  });

  after(async () => {
    if (failed) for (const a of [server, right]) if (a) console.log(`---- ${a.name}\n${a.logTail(30)}`);
    for (const a of [right, server]) await a?.dispose({ keepDir: failed });
  });

  test('a client with another key is refused and learns nothing', async () => {
    // -join (not -retry-join): an agent that cannot join does not start, and says why.
    const err = await AgentProcess.start({
      mode: 'client', name: 'enc-wrong', readyTimeoutMs: 20_000, args: ['-encrypt', keys[1]!, '-join', server.serfAddr],
    }).then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err instanceof Error, 'the agent with the wrong key started');
    assert.match(err.message, /exited before it was ready \(code=1/);
    assert.match(err.message, /could not join the cluster through -join 127\.0\.0\.1:\d+: .*gossip key mismatch\?/);
    const members = await server.getJson<MemberRow[]>('/v1/agent/members');
    assert.deepEqual(members.map((m) => m.Name), ['enc-s1']);
  });

  test('a client with the right key joins; both sides list both members', async () => {
    right = await AgentProcess.start({
      mode: 'client', name: 'enc-right', readyTimeoutMs: 30_000,
      args: ['-encrypt', keys[0]!, '-retry-join', server.serfAddr, '-retry-interval', '1s'],
    });
    await waitFor('both members alive on both agents', async () => {
      for (const a of [server, right!]) {
        const rows = await a.getJson<MemberRow[]>('/v1/agent/members');
        if (rows.filter((m) => m.Status === 1).length !== 2) return undefined;
      }
      return true;
    }, 15_000);
    // The key never reaches the agents' logs (the harness's own "---- e2e: start" lines show the command).
    // Proves a negative (the key is never logged): a pause lets lines still being written land first.
    await sleep(200);
    for (const a of [server, right]) {
      const agentLines = a.logTail(10_000).split('\n').filter((l) => !l.startsWith('---- e2e:'));
      assert.ok(agentLines.length > 5);
      assert.ok(!agentLines.some((l) => l.includes(keys[0]!)), `${a.name} logged the gossip key`);
    }
    failed = false;
  });
});
