// A secondary datacenter of three servers: replication from the primary runs on its leader only, and
// when that leader dies the new one takes it over (Consul's leader routines).
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, freePort, printLogsIfFailed } from '../support/index.ts';
import { Cluster, FAST_RAFT, waitFor, type ServerProc } from '../cluster/cluster.ts';

let primary: AgentProcess | undefined;
let dc2: Cluster | undefined;
let failed = false;
after(async () => {
  if (failed) dc2?.dumpLogs(40);
  await dc2?.dispose();
  await primary?.dispose();
});
afterEach((t) => printLogsIfFailed(t, primary));

/** The entry as this server's own replica has it (?stale: no leader involved). */
async function localEntry(s: ServerProc, name: string): Promise<{ Protocol?: string } | undefined> {
  const r = await s.request('GET', `/v1/config/service-defaults/${name}?stale`);
  return r.status === 200 ? r.json<{ Protocol?: string }>() : undefined;
}

test('the secondary\'s new leader resumes replication after its old leader is killed', { timeout: 180_000 }, async () => {
  try {
    primary = await AgentProcess.start({ name: 'fo-primary', mode: 'server', args: ['-datacenter', 'dc1', '-primary-datacenter', 'dc1'] });
    dc2 = await Cluster.create(3, { config: FAST_RAFT, datacenter: 'dc2' });
    for (const s of dc2.servers) {
      s.spec.args = ['-serf-wan-port', String(await freePort({ udp: true })), '-primary-datacenter', 'dc1',
        '-retry-join-wan', primary.serfWanAddr, '-retry-interval-wan', '1s'];
    }
    const leader = await dc2.formed();
    assert.equal((await primary.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'before', Protocol: 'http' } })).text, 'true');
    for (const s of dc2.servers) await waitFor(`${s.name} has "before"`, () => localEntry(s, 'before'), 30_000, 200);
    // Only the leader replicates.
    const replicating = dc2.servers.filter((s) => /started config entry replication from the primary datacenter/.test(s.log()));
    assert.deepEqual(replicating.map((s) => s.name), [leader.name]);

    await leader.kill();
    const rest = dc2.servers.filter((s) => s !== leader);
    const nextAddr = await waitFor('the other two elect a new leader', async () => {
      const named = await Promise.all(rest.map(async (s) => (await s.request('GET', '/v1/status/leader')).json<string>()));
      return named[0] && named[0] !== leader.rpcAddr && named.every((n) => n === named[0]) ? named[0] : undefined;
    }, 30_000, 200);
    const next = rest.find((s) => s.rpcAddr === nextAddr)!;
    assert.ok(next, `a running server has the leader's address ${nextAddr}`);
    assert.equal((await primary.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'after', Protocol: 'grpc' } })).text, 'true');
    for (const s of rest) {
      const got = await waitFor(`${s.name} has "after"`, () => localEntry(s, 'after'), 30_000, 200);
      assert.equal(got.Protocol, 'grpc');
    }
    assert.match(next.log(), /started config entry replication from the primary datacenter/);
  } catch (err) {
    failed = true;
    throw err;
  }
});
