// ACL replication across WAN-federated datacenters (issue 17, item 7) with real processes on
// loopback, ACLs on everywhere with default_policy = "deny":
//   dc1  the primary (initial management token from its config)
//   dc2  a secondary whose acl.tokens.replication holds Consul's replication rights in dc1
//        (acl = "write", operator = "write", service_prefix "" read with intentions read), with
//        enable_token_replication: policies, roles and global tokens come from dc1 within seconds;
//        its local tokens stay in dc2; policy/role and global token writes made in dc2 land in dc1;
//        deletes in dc1 reach dc2; with dc1 killed dc2 keeps authorizing what it replicated and
//        replication resumes when dc1 is back
//   dc3  a secondary whose replication token does not exist in dc1: /v1/acl/replication names the
//        error and nothing is replicated
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

const MGMT = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0001';
const REPL = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0002';
const BAD = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0003';
const REPLICATION_RULES = 'acl = "write"\noperator = "write"\nservice_prefix "" {\n  policy = "read"\n  intentions = "read"\n}\n';

interface Status {
  Enabled: boolean; Running: boolean; SourceDatacenter: string; ReplicationType: string;
  ReplicatedIndex: number; ReplicatedRoleIndex: number; ReplicatedTokenIndex: number;
  LastSuccess: string; LastError: string; LastErrorMessage: string;
}
interface Token { AccessorID: string; SecretID: string; Local: boolean }
interface Policy { ID: string; Name: string }

/** A config file (not -hcl, so no secret is on the command line the harness logs). */
function configFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-aclrep-'));
  const f = path.join(dir, 'acl.hcl');
  fs.writeFileSync(f, text);
  return f;
}
const aclHcl = (tokens: string, extra = '') =>
  `acl {\n  enabled = true\n  default_policy = "deny"\n  down_policy = "extend-cache"\n${extra}  tokens {\n${tokens}  }\n}\n`;

describe('ACL replication: a secondary replicates policies, roles and global tokens from the primary', () => {
  let dc1: AgentProcess;
  let dc2: AgentProcess;
  let dc3: AgentProcess;
  const all = (): AgentProcess[] => [dc1, dc2, dc3].filter((a) => a !== undefined);
  const as = (token: string) => ({ headers: { 'X-Consul-Token': token } });
  const kvPut = async (a: AgentProcess, key: string, token: string) => (await a.request('PUT', `/v1/kv/${key}`, { ...as(token), body: 'v' })).status;
  const status = async (a: AgentProcess) => a.getJson<Status>('/v1/acl/replication');
  const makePolicy = async (a: AgentProcess, Name: string, Rules: string): Promise<Policy> => {
    const r = await a.request('PUT', '/v1/acl/policy', { ...as(MGMT), body: { Name, Rules }, timeoutMs: 30_000 });
    assert.equal(r.status, 200, r.text);
    return r.json<Policy>();
  };
  const makeToken = async (a: AgentProcess, body: Record<string, unknown>): Promise<Token> => {
    const r = await a.request('PUT', '/v1/acl/token', { ...as(MGMT), body, timeoutMs: 30_000 });
    assert.equal(r.status, 200, r.text);
    return r.json<Token>();
  };

  before(async () => {
    const secondary = (token: string) => ['-config-file', configFile(aclHcl(`    replication = "${token}"\n`, '  enable_token_replication = true\n'))];
    // The secondaries first, so the primary's -join-wan names them: a restarted primary joins again at once.
    dc2 = await AgentProcess.start({ name: 'aclrep-dc2', mode: 'server', args: ['-datacenter', 'dc2', '-primary-datacenter', 'dc1', ...secondary(REPL)] });
    dc3 = await AgentProcess.start({ name: 'aclrep-dc3', mode: 'server', args: ['-datacenter', 'dc3', '-primary-datacenter', 'dc1', ...secondary(BAD)] });
    dc1 = await AgentProcess.start({
      name: 'aclrep-dc1', mode: 'server',
      args: ['-datacenter', 'dc1', '-primary-datacenter', 'dc1', '-join-wan', dc2.serfWanAddr, '-join-wan', dc3.serfWanAddr,
        '-config-file', configFile(aclHcl(`    initial_management = "${MGMT}"\n`))],
    });
    // The replication token exists only in the primary, as an operator makes it there.
    const policy = await waitFor('the primary accepts ACL writes', async () => {
      const r = await dc1.request('PUT', '/v1/acl/policy', { ...as(MGMT), body: { Name: 'replication', Rules: REPLICATION_RULES } });
      return r.status === 200 ? r.json<Policy>() : undefined;
    }, 30_000, 200);
    await makeToken(dc1, { SecretID: REPL, Description: 'replication', Policies: [{ ID: policy.ID }] });
  });
  after(async () => {
    for (const a of all()) await a.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, ...all()));

  test('a policy and a global token made in the primary work in the secondary within seconds', { timeout: 60_000 }, async () => {
    const p = await makePolicy(dc1, 'kv-app', 'key_prefix "app/" { policy = "write" }');
    const app = await makeToken(dc1, { Description: 'app', Policies: [{ Name: 'kv-app' }] });
    assert.equal(await kvPut(dc1, 'app/a', app.SecretID), 200);
    const started = Date.now();
    await waitFor('dc2 authorizes the app token', async () => (await kvPut(dc2, 'app/a', app.SecretID)) === 200, 30_000, 200);
    const took = Date.now() - started;
    // Its rules, not more: a key outside its prefix, and no token at all, are refused in dc2.
    assert.equal(await kvPut(dc2, 'other/a', app.SecretID), 403);
    assert.equal(await kvPut(dc2, 'app/b', ''), 403);
    // The rows themselves, in dc2's own Raft log (the management token replicated too).
    const here = await dc2.request('GET', `/v1/acl/policy/${p.ID}`, as(MGMT));
    assert.equal(here.status, 200, here.text);
    assert.equal(here.json<Policy>().Name, 'kv-app');
    const st = await status(dc2);
    assert.equal(st.Enabled, true);
    assert.equal(st.Running, true);
    assert.equal(st.SourceDatacenter, 'dc1');
    assert.equal(st.ReplicationType, 'tokens');
    assert.ok(st.ReplicatedIndex > 0 && st.ReplicatedTokenIndex > 0, JSON.stringify(st));
    assert.notEqual(st.LastSuccess, '0001-01-01T00:00:00Z');
    // The primary replicates from nobody.
    const st1 = await status(dc1);
    assert.equal(st1.Enabled, false);
    assert.equal(st1.Running, false);
    console.log(`# a token made in dc1 authorized in dc2 after ${took} ms`);
  });

  test('a local token made in the secondary stays there; global writes made there land in the primary', { timeout: 60_000 }, async () => {
    await waitFor('dc2 knows the management token', async () => (await dc2.request('GET', '/v1/acl/token/self', as(MGMT))).status === 200, 30_000, 200);
    const local = await makeToken(dc2, { Description: 'dc2 only', Local: true, Policies: [{ Name: 'kv-app' }] });
    assert.equal(local.Local, true);
    assert.equal(await kvPut(dc2, 'app/local', local.SecretID), 200);
    assert.equal((await dc1.request('GET', `/v1/acl/token/${local.AccessorID}`, as(MGMT))).status, 403, 'the primary does not have it');
    assert.equal(await kvPut(dc1, 'app/local', local.SecretID), 403);
    // A global token and a policy created through dc2 are made in dc1, and come back to dc2.
    const pol = await makePolicy(dc2, 'kv-made-in-dc2', 'key_prefix "dc2/" { policy = "write" }');
    assert.equal((await dc1.request('GET', `/v1/acl/policy/${pol.ID}`, as(MGMT))).status, 200, 'the policy is in the primary');
    const global = await makeToken(dc2, { Description: 'global via dc2', Policies: [{ ID: pol.ID }] });
    assert.equal(global.Local, false);
    assert.equal((await dc1.request('GET', `/v1/acl/token/${global.AccessorID}`, as(MGMT))).status, 200, 'the token is in the primary');
    await waitFor('dc2 authorizes the global token', async () => (await kvPut(dc2, 'dc2/x', global.SecretID)) === 200, 30_000, 200);
    // Replication rounds since then left the local token alone.
    assert.equal((await dc2.request('GET', `/v1/acl/token/${local.AccessorID}`, as(MGMT))).status, 200);
  });

  test('deleting in the primary removes in the secondary', { timeout: 60_000 }, async () => {
    const p = await makePolicy(dc1, 'kv-doomed', 'key_prefix "doomed/" { policy = "write" }');
    const t = await makeToken(dc1, { Description: 'doomed', Policies: [{ ID: p.ID }] });
    await waitFor('dc2 authorizes the doomed token', async () => (await kvPut(dc2, 'doomed/a', t.SecretID)) === 200, 30_000, 200);
    assert.equal((await dc1.request('DELETE', `/v1/acl/token/${t.AccessorID}`, as(MGMT))).status, 200);
    assert.equal((await dc1.request('DELETE', `/v1/acl/policy/${p.ID}`, as(MGMT))).status, 200);
    await waitFor('dc2 refuses the deleted token', async () => (await kvPut(dc2, 'doomed/a', t.SecretID)) === 403, 30_000, 200);
    await waitFor('dc2 no longer has the policy', async () => (await dc2.request('GET', `/v1/acl/policy/${p.ID}`, as(MGMT))).status !== 200, 30_000, 200);
  });

  test('a replication token the primary does not know: LastErrorMessage says so and nothing replicates', { timeout: 60_000 }, async () => {
    const st = await waitFor('dc3 reports the error', async () => {
      const s = await status(dc3);
      return s.LastErrorMessage !== '' ? s : undefined;
    }, 30_000, 200);
    assert.equal(st.Enabled, true);
    assert.match(st.LastErrorMessage, /ACL not found/);
    assert.notEqual(st.LastError, '0001-01-01T00:00:00Z');
    assert.equal(st.ReplicatedIndex, 0);
    assert.equal(st.LastSuccess, '0001-01-01T00:00:00Z');
    // dc2 has long had the primary's tokens; dc3 has none of them.
    assert.equal((await dc3.request('GET', '/v1/acl/token/self', as(MGMT))).status, 403);
    assert.equal((await dc2.request('GET', '/v1/acl/token/self', as(MGMT))).status, 200);
  });

  test('with the primary killed the secondary keeps authorizing what it replicated; replication resumes after a restart', { timeout: 180_000 }, async () => {
    const kept = await makeToken(dc1, { Description: 'kept', Policies: [{ Name: 'kv-app' }] });
    await waitFor('dc2 authorizes the kept token', async () => (await kvPut(dc2, 'app/kept', kept.SecretID)) === 200, 30_000, 200);
    await dc1.kill();
    assert.equal(await kvPut(dc2, 'app/kept2', kept.SecretID), 200, 'known tokens keep working');
    assert.equal(await kvPut(dc2, 'other/kept', kept.SecretID), 403, 'with their own rules');
    assert.equal(await kvPut(dc2, 'app/anon', ''), 403);
    const down = await waitFor('dc2 reports the primary unreachable', async () => {
      const s = await status(dc2);
      return s.LastError !== '0001-01-01T00:00:00Z' && s.LastErrorMessage !== '' ? s : undefined;
    }, 60_000, 500);
    assert.equal(down.Running, true);
    // A global write cannot reach the primary: it fails and nothing changes here.
    const w = await dc2.request('PUT', '/v1/acl/policy', { ...as(MGMT), body: { Name: 'during', Rules: '' }, timeoutMs: 30_000 });
    assert.notEqual(w.status, 200, w.text);

    await dc1.restart();
    const after = await waitFor('the restarted primary accepts ACL writes', async () => {
      const r = await dc1.request('PUT', '/v1/acl/token', { ...as(MGMT), body: { Description: 'after', Policies: [{ Name: 'kv-app' }] } });
      return r.status === 200 ? r.json<Token>() : undefined;
    }, 60_000, 500);
    await waitFor('dc2 authorizes a token made after the restart', async () => (await kvPut(dc2, 'app/after', after.SecretID)) === 200, 90_000, 500);
    assert.equal(await kvPut(dc2, 'app/kept3', kept.SecretID), 200, 'earlier tokens still work');
  });
});
