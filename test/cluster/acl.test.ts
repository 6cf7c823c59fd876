// ACLs in a 3-server cluster (default deny, an initial management token from the config): tokens
// and policies are replicated state, so after kill -9 of the leader the survivors keep honouring
// them; writes through a follower reach the leader with the servers' own secret and are still
// checked; a policy change invalidates every server's cached authorizer.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor } from './cluster.ts';

const MGMT = '5f1c2b8e-7d1a-4c3e-9b0a-2d6e8f4a1c01';

describe('ACLs across a leader failure (3 servers)', () => {
  let c: Cluster;
  let failed = true;
  after(async () => {
    if (failed) c?.dumpLogs(60);
    await c?.dispose({ keep: failed });
  });

  test('tokens keep working after kill -9 of the leader; policy edits reach every server', { timeout: 120_000 }, async () => {
    c = await Cluster.create(3, { config: { acl: { enabled: true, default_policy: 'deny', tokens: { initial_management: MGMT } } } });
    const leader = await c.formed(40_000);
    const followers = c.servers.filter((s) => s !== leader);
    const as = (token: string) => ({ headers: { 'X-Consul-Token': token } });

    // The leader creates the initial management token from the config once it leads.
    await waitFor('initial management token', async () => (await followers[0]!.request('GET', '/v1/acl/token/self', as(MGMT))).status === 200, 20_000);
    const pol = await followers[0]!.request('PUT', '/v1/acl/policy', { ...as(MGMT), body: { Name: 'kv-app', Rules: 'key_prefix "app/" { policy = "write" }' } });
    assert.equal(pol.status, 200, pol.text);
    const tokRes = await followers[1]!.request('PUT', '/v1/acl/token', { ...as(MGMT), body: { Policies: [{ Name: 'kv-app' }] } });
    assert.equal(tokRes.status, 200, tokRes.text);
    const token = tokRes.json<{ SecretID: string }>().SecretID;

    // Every server (followers forward the write to the leader) honours the token.
    for (const s of c.servers) {
      await waitFor(`token on ${s.name}`, async () => (await s.request('PUT', `/v1/kv/app/${s.name}`, { body: 'x', ...as(token) })).text === 'true', 10_000);
      assert.equal((await s.request('PUT', '/v1/kv/other', { body: 'x', ...as(token) })).status, 403);
      assert.equal((await s.request('PUT', '/v1/kv/app/anon', { body: 'x' })).status, 403);
    }

    await leader.kill();
    // The survivors may still name the dead leader for a moment: wait for them to agree on another.
    const next = await waitFor('a new leader', async () => {
      const l = await c.waitLeader(5_000, followers).catch(() => undefined);
      return l && l !== leader ? l : undefined;
    }, 30_000);
    for (const s of followers) {
      await waitFor(`token after failover on ${s.name}`, async () => (await s.request('PUT', `/v1/kv/app/after-${s.name}`, { body: 'y', ...as(token) })).text === 'true', 20_000);
      assert.equal((await s.request('GET', `/v1/kv/app/after-${s.name}`, as(token))).status, 200);
      assert.equal((await s.request('PUT', '/v1/kv/app/anon', { body: 'x' })).status, 403);
      assert.equal((await s.request('GET', '/v1/kv/app/anon', as(MGMT))).status, 404);
    }

    // New ACL writes on the new leader; a policy edit takes effect on every survivor at once
    // (cached authorizers follow the ACL tables' index).
    const id = pol.json<{ ID: string }>().ID;
    const edit = await next.request('PUT', `/v1/acl/policy/${id}`, { ...as(MGMT), body: { Name: 'kv-app', Rules: 'key_prefix "app/" { policy = "read" }' } });
    assert.equal(edit.status, 200, edit.text);
    for (const s of followers) {
      await waitFor(`policy edit on ${s.name}`, async () => (await s.request('PUT', '/v1/kv/app/z', { body: 'z', ...as(token) })).status === 403, 10_000);
      assert.equal((await s.request('GET', '/v1/kv/app/s1', as(token))).status, 200);
    }
    failed = false;
  });
});
