// force-leave as Serf does it, with real processes: a server and two client agents on loopback.
//   - force-leave of a live member broadcasts its leave intent: it shows `leaving` (Status 2), then
//     refutes and is alive (1) again, everywhere;
//   - force-leave of a member frozen with SIGSTOP (alive in gossip but unable to refute): leaving
//     (2), then, once found failed, left (3) rather than failed (4); thawed, it refutes and is alive;
//   - force-leave of a failed member: left (3) at once; of an unknown name: Consul's error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, printLogsIfFailed, runTrellis, waitFor } from '../support/index.ts';

interface MemberRow { Name: string; Status: number }

describe('force-leave (serf leave intent)', () => {
  let server: AgentProcess;
  let c1: AgentProcess;
  let c2: AgentProcess;
  let failed = true;

  const statusOf = async (viewer: AgentProcess, name: string): Promise<number | undefined> =>
    (await viewer.request('GET', '/v1/agent/members')).json<MemberRow[]>().find((m) => m.Name === name)?.Status;

  /** Polls `viewer`'s members every 100 ms until `until` holds; returns the statuses seen for `name`, in order, without repeats. */
  const watchStatus = async (viewer: AgentProcess, name: string, until: (s: number | undefined) => boolean, timeoutMs: number): Promise<Array<number | undefined>> => {
    const seen: Array<number | undefined> = [];
    await waitFor(`${name}'s status on ${viewer.name} to settle (seen so far: ${seen.join(' → ')})`, async () => {
      const s = await statusOf(viewer, name);
      if (seen[seen.length - 1] !== s) seen.push(s);
      return until(s);
    }, timeoutMs, 100);
    return seen;
  };

  before(async () => {
    // Faster failure detection than Consul's LAN defaults, so the frozen member is found failed soon.
    server = await AgentProcess.start({ mode: 'server', name: 'fl-srv' });
    const join = ['-retry-join', server.serfAddr, '-retry-interval', '1s'];
    [c1, c2] = await Promise.all([
      AgentProcess.start({ mode: 'client', name: 'fl-c1', args: join, readyTimeoutMs: 30_000 }),
      AgentProcess.start({ mode: 'client', name: 'fl-c2', args: join, readyTimeoutMs: 30_000 }),
    ]);
    for (const viewer of [server, c1, c2]) {
      for (const name of ['fl-srv', 'fl-c1', 'fl-c2']) {
        await waitFor(`${viewer.name} sees ${name} alive`, async () => (await statusOf(viewer, name)) === 1, 20_000);
      }
    }
  });

  after(async () => {
    if (failed) printLogsIfFailed({ name: 'force-leave', passed: false }, server, c1, c2);
    for (const a of [c1, c2, server]) await a?.dispose({ keepDir: failed });
  });

  test('a live member: leaving (2) where it was asked, then it refutes and is alive (1) everywhere', async () => {
    const r = await server.request('PUT', '/v1/agent/force-leave/fl-c1');
    assert.equal(r.status, 200, r.text);
    // Where the intent started, the member shows leaving at once (serf applies its own intent first).
    const seen = await watchStatus(server, 'fl-c1', (s) => s === 1, 10_000);
    assert.equal(seen[0], 2, `first status after force-leave: ${seen.join(' → ')}`);
    assert.ok(!seen.includes(3) && !seen.includes(4), `a live member is never left or failed: ${seen.join(' → ')}`);
    for (const viewer of [c1, c2]) {
      await waitFor(`${viewer.name} sees fl-c1 alive`, async () => (await statusOf(viewer, 'fl-c1')) === 1, 10_000);
    }
  });

  test('`trellis force-leave` of a frozen member, which cannot refute: leaving (2), then left (3) once found failed; thawed, alive (1)', async () => {
    c2.signal('SIGSTOP');
    try {
      const r = await runTrellis(['force-leave', '-http-addr', server.httpAddr, 'fl-c2']);
      assert.equal(r.code, 0, r.stderr);
      const seen = await watchStatus(server, 'fl-c2', (s) => s === 3, 30_000);
      assert.equal(seen[0], 2, `statuses seen: ${seen.join(' → ')}`);
      assert.ok(!seen.includes(4), `a member with a leave intent that fails has left, not failed: ${seen.join(' → ')}`);
    } finally {
      c2.signal('SIGCONT');
    }
    await waitFor('fl-c2 alive again after it was thawed', async () => (await statusOf(server, 'fl-c2')) === 1, 30_000, 200);
  });

  test('a failed member becomes left; an unknown name is refused with Consul\'s error', async () => {
    await c1.kill();
    await waitFor('fl-c1 failed', async () => (await statusOf(server, 'fl-c1')) === 4, 30_000, 200);
    const r = await runTrellis(['force-leave', '-http-addr', server.httpAddr, 'fl-c1']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('fl-c1 left', async () => (await statusOf(server, 'fl-c1')) === 3, 10_000);
    const unknown = await runTrellis(['force-leave', '-http-addr', server.httpAddr, 'nobody']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No node found with name 'nobody'/);
    failed = false;
  });
});
