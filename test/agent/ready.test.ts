// Ready means ready (issue 10.3): once an agent accepts writes, a session for its own node works.
//   - a fresh -server -bootstrap agent: the first PUT /v1/session/create that the agent does not
//     refuse for want of a leader succeeds (the leader registers its own node just after its election; the
//     session waits for that instead of failing with "Missing node registration");
//   - a client agent that has just joined: a session created through it is bound to the client's
//     node (Consul's client fills Session.Node before forwarding), and when that client is killed
//     the session is invalidated with its serfHealth check.
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

interface SessionRow { ID: string; Node: string; NodeChecks: string[] }

const started: AgentProcess[] = [];
after(async () => {
  for (const a of started) await a.dispose();
});

describe('ready means ready', () => {
  let current: AgentProcess[] = [];
  afterEach((t) => printLogsIfFailed(t, ...current));

  for (const run of [1, 2]) {
    test(`fresh server #${run}: the first session/create that gets past "No cluster leader" succeeds and is this node's`, async () => {
      // Not AgentProcess.start's readiness (a leader is known): ask for a session from the moment
      // the process is spawned, so the first request that gets past "No cluster leader" lands in
      // the window just after the election, before the leader's own reconciliation.
      const s = await AgentProcess.start({ mode: 'server', name: `ready-s${run}`, waitReady: false });
      started.push(s);
      current = [s];
      const r = await waitFor('an answer other than "No cluster leader"', async () => {
        try {
          const res = await s.request('PUT', '/v1/session/create', { body: '', timeoutMs: 2000 });
          return res.status === 500 && /No cluster leader/.test(res.text) ? undefined : res;
        } catch {
          return undefined; // the HTTP port is not open yet
        }
      }, 20_000, 5);
      assert.equal(r.status, 200, `session/create: ${r.status} ${r.text}`);
      const { ID } = r.json<{ ID: string }>();
      const info = (await s.request('GET', `/v1/session/info/${ID}`)).json<SessionRow[]>();
      assert.equal(info[0]?.Node, `ready-s${run}`);
      assert.deepEqual(info[0]?.NodeChecks, ['serfHealth']);
    });
  }

  test('a client that has just joined: its session is bound to its node, and dies with it', async () => {
    const s = await AgentProcess.start({ mode: 'server', name: 'ready-srv' });
    started.push(s);
    current = [s];
    const c = await AgentProcess.start({ mode: 'client', name: 'ready-cli', args: ['-retry-join', s.serfAddr, '-retry-interval', '1s'], readyTimeoutMs: 30_000 });
    started.push(c);
    current = [s, c];
    // Ready (a leader is known through the client): a session at once, with an empty body and with
    // a body that names no node (lower-case keys, as Consul accepts them).
    const r = await c.request('PUT', '/v1/session/create', { body: '' });
    assert.equal(r.status, 200, `session/create through the client: ${r.status} ${r.text}`);
    const r2 = await c.request('PUT', '/v1/session/create', { body: JSON.stringify({ name: 'lock', ttl: '30s' }) });
    assert.equal(r2.status, 200, `session/create with a body: ${r2.status} ${r2.text}`);
    const ids = [r.json<{ ID: string }>().ID, r2.json<{ ID: string }>().ID];
    for (const id of ids) {
      const info = (await s.request('GET', `/v1/session/info/${id}`)).json<SessionRow[]>();
      assert.equal(info[0]?.Node, 'ready-cli', 'the session belongs to the client that created it, not to the server that ran it');
    }
    // A session that names a node keeps it.
    const named = await c.request('PUT', '/v1/session/create', { body: JSON.stringify({ Node: 'ready-srv' }) });
    assert.equal(named.status, 200, named.text);
    const namedInfo = (await s.request('GET', `/v1/session/info/${named.json<{ ID: string }>().ID}`)).json<SessionRow[]>();
    assert.equal(namedInfo[0]?.Node, 'ready-srv');

    // The client dies: serfHealth goes critical and its sessions are invalidated.
    await c.kill();
    await waitFor('the dead client\'s sessions invalidated', async () => {
      const list = (await s.request('GET', '/v1/session/node/ready-cli')).json<SessionRow[]>();
      return list.length === 0;
    }, 30_000, 200);
    const still = (await s.request('GET', '/v1/session/node/ready-srv')).json<SessionRow[]>();
    assert.equal(still.length, 1, 'the server\'s own session is untouched');
  });
});
