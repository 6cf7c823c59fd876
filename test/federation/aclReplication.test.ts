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
//        error and nothing is replicated (no ACL rows, no config entries, no intermediate signed)
//   dc4  a secondary without enable_token_replication (ReplicationType "policies"): policies and
//        roles replicate, global tokens are resolved by dc1 and cached for token_ttl (1 s here);
//        with dc1 down, down_policy = "extend-cache" keeps the tokens it has seen working; its
//        acl.tokens.initial_management makes no token (Consul creates it in the primary only); a
//        client agent there syncs its node with an agent token that exists only in dc1
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

const MGMT = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0001';
const REPL = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0002';
const BAD = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0003';
const DC4_INITIAL = '7d1f8a52-1c2b-4e0f-9a51-0b5e1e0f0004';
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
const ZERO = '0001-01-01T00:00:00Z';
const aclHcl = (tokens: string, extra = '') =>
  `acl {\n  enabled = true\n  default_policy = "deny"\n  down_policy = "extend-cache"\n${extra}  tokens {\n${tokens}  }\n}\n`;

describe('ACL replication: a secondary replicates policies, roles and global tokens from the primary', () => {
  let dc1: AgentProcess;
  let dc2: AgentProcess;
  let dc3: AgentProcess;
  let dc4: AgentProcess;
  let client4: AgentProcess;
  const all = (): AgentProcess[] => [dc1, dc2, dc3, dc4, client4].filter((a) => a !== undefined);
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
    dc4 = await AgentProcess.start({
      name: 'aclrep-dc4', mode: 'server',
      args: ['-datacenter', 'dc4', '-primary-datacenter', 'dc1', '-config-file', configFile(aclHcl(`    replication = "${REPL}"\n    initial_management = "${DC4_INITIAL}"\n`, '  token_ttl = "1s"\n'))],
    });
    dc1 = await AgentProcess.start({
      name: 'aclrep-dc1', mode: 'server',
      args: ['-datacenter', 'dc1', '-primary-datacenter', 'dc1', '-join-wan', dc2.serfWanAddr, '-join-wan', dc3.serfWanAddr, '-join-wan', dc4.serfWanAddr,
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
    // The rows land in dc2's own Raft log (until then dc2 would ask dc1 about the token).
    await waitFor('dc2 has the policy and the token', async () => (await dc2.request('GET', `/v1/acl/policy/${p.ID}`, as(MGMT))).status === 200
      && (await dc2.request('GET', `/v1/acl/token/${app.AccessorID}`, as(MGMT))).status === 200, 30_000, 200);
    const took = Date.now() - started;
    assert.equal(await kvPut(dc2, 'app/a', app.SecretID), 200);
    // Its rules, not more: a key outside its prefix, and no token at all, are refused in dc2.
    assert.equal(await kvPut(dc2, 'other/a', app.SecretID), 403);
    assert.equal(await kvPut(dc2, 'app/b', ''), 403);
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
    console.log(`# a policy and token made in dc1 replicated into dc2 after ${took} ms`);
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
    // Bootstrap is the primary's (Consul's ACL.BootstrapTokens outside it: ACL support disabled).
    const boot = await dc2.request('PUT', '/v1/acl/bootstrap');
    assert.equal(boot.status, 401, boot.text);
    assert.equal(boot.text.trim(), 'ACL support disabled');
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

  test('a replication token the primary does not know: LastErrorMessage says so and nothing replicates', { timeout: 90_000 }, async () => {
    // (Its first rounds may fail before the WAN is joined: "No path to datacenter".)
    const st = await waitFor('dc3 reports the primary\'s refusal', async () => {
      const s = await status(dc3);
      return /ACL not found/.test(s.LastErrorMessage) ? s : undefined;
    }, 45_000, 200);
    assert.equal(st.Enabled, true);
    assert.equal(st.Running, true);
    assert.match(st.LastErrorMessage, /\(403\)/);
    assert.notEqual(st.LastError, '0001-01-01T00:00:00Z');
    assert.equal(st.ReplicatedIndex, 0);
    assert.equal(st.LastSuccess, '0001-01-01T00:00:00Z');
    // dc2 has long had the primary's tokens; dc3 has none of them.
    assert.equal((await dc3.request('GET', '/v1/acl/token/self', as(MGMT))).status, 403);
    assert.equal((await dc2.request('GET', '/v1/acl/token/self', as(MGMT))).status, 200);
  });

  test('the federation reads need the replication token: config entries and the intermediate reach dc2, not dc3', { timeout: 90_000 }, async () => {
    const w = await dc1.request('PUT', '/v1/config', { ...as(MGMT), body: { Kind: 'service-defaults', Name: 'web', Protocol: 'http' } });
    assert.equal(w.text, 'true');
    await waitFor('dc2 has service-defaults/web', async () => (await dc2.request('GET', '/v1/config/service-defaults/web', as(MGMT))).status === 200, 30_000, 200);
    // dc2's CA is an intermediate the primary signed for its replication token (operator:write).
    const roots1 = await waitFor('dc1 has a root', async () => {
      const r = await dc1.getJson<{ ActiveRootID: string }>('/v1/connect/ca/roots');
      return r.ActiveRootID ? r : undefined;
    }, 30_000, 200);
    await waitFor('dc2 shows the primary\'s root', async () => (await dc2.getJson<{ ActiveRootID: string }>('/v1/connect/ca/roots')).ActiveRootID === roots1.ActiveRootID, 30_000, 200);
    // The primary's federation reads themselves: refused without the rights, answered with them.
    for (const url of ['/v1/internal/federation/config-entries', '/v1/internal/federation/acl?tokens=1']) {
      assert.equal((await dc1.request('GET', url)).status, 403, `${url} anonymous`);
      assert.equal((await dc1.request('GET', url, as(BAD))).status, 403, `${url} unknown token`);
      assert.equal((await dc1.request('GET', url, as(REPL))).status, 200, `${url} replication token`);
    }
    const reader = await makeToken(dc1, { Description: 'acl read only', Policies: [{ ID: (await makePolicy(dc1, 'acl-read', 'acl = "read"')).ID }] });
    const r = await dc1.request('GET', '/v1/internal/federation/acl?tokens=1', as(reader.SecretID));
    assert.equal(r.status, 403, 'acl:read does not see the secrets');
    assert.match(r.text, /^Permission denied/);
    // dc3's token is refused for both (the management token resolves in dc3 through the primary, so
    // a read there is allowed and answers what dc3 has: nothing).
    assert.equal((await dc3.request('GET', '/v1/config/service-defaults/web', as(MGMT))).status, 404);
    assert.notEqual((await dc3.getJson<{ ActiveRootID: string }>('/v1/connect/ca/roots')).ActiveRootID, roots1.ActiveRootID);
  });

  test('without token replication (dc4): policies replicate, tokens resolve in the primary', { timeout: 120_000 }, async () => {
    const app = await makeToken(dc1, { Description: 'app for dc4', Policies: [{ Name: 'kv-app' }] });
    await waitFor('dc4 authorizes the token through the primary', async () => (await kvPut(dc4, 'app/dc4', app.SecretID)) === 200, 30_000, 200);
    assert.equal(await kvPut(dc4, 'other/dc4', app.SecretID), 403);
    const st = await waitFor('dc4 replicated policies', async () => {
      const s = await status(dc4);
      return s.ReplicatedIndex > 0 ? s : undefined;
    }, 30_000, 200);
    assert.equal(st.ReplicationType, 'policies');
    assert.equal(st.ReplicatedTokenIndex, 0);
    const pol = await dc1.request('GET', '/v1/acl/policy/name/kv-app', as(MGMT));
    assert.equal(pol.status, 200, pol.text);
    assert.equal((await dc4.request('GET', `/v1/acl/policy/${pol.json<Policy>().ID}`, as(MGMT))).status, 200, 'the policy row is in dc4');
    assert.equal((await dc4.request('GET', `/v1/acl/token/${app.AccessorID}`, as(MGMT))).status, 403, 'the token row is not');
    // A client agent of dc4 whose agent token exists only in dc1: its anti-entropy writes, checked
    // by dc4's leader, resolve the token in dc1, so its service reaches dc4's catalog.
    const agentPolicy = await makePolicy(dc1, 'agent-dc4', 'node_prefix "" { policy = "write" }\nservice_prefix "" { policy = "write" }');
    const agentToken = await makeToken(dc1, { Description: 'client4 agent', Policies: [{ ID: agentPolicy.ID }] });
    client4 = await AgentProcess.start({
      name: 'aclrep-c4', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-datacenter', 'dc4', '-primary-datacenter', 'dc1', '-retry-join', dc4.serfAddr, '-retry-interval', '1s',
        '-config-file', configFile(`${aclHcl(`    agent = "${agentToken.SecretID}"\n`)}services {\n  name = "web4"\n  port = 8080\n}\n`)],
    });
    // A service from the client's config file is synced with the agent token (no HTTP request involved).
    await waitFor('client4\'s web4 in dc4\'s catalog', async () => (await dc4.request('GET', '/v1/catalog/service/web4', as(MGMT))).json<Array<{ Node: string }>>()
      .some((x) => x.Node === 'aclrep-c4'), 30_000, 250);
    // Its HTTP API: KV goes to dc4's server, which asks dc1; an agent endpoint is decided on the
    // client, which asks dc4's server about the token, which has dc1 answer.
    assert.equal(await kvPut(client4, 'app/via-client', app.SecretID), 200);
    assert.equal(await kvPut(client4, 'other/via-client', app.SecretID), 403);
    const reg = await client4.request('PUT', '/v1/agent/service/register', { ...as(agentToken.SecretID), body: { Name: 'api4', Port: 9090 } });
    assert.equal(reg.status, 200, reg.text);
    assert.equal((await client4.request('PUT', '/v1/agent/service/register', { ...as(app.SecretID), body: { Name: 'api5', Port: 9091 } })).status, 403);
    // initial_management is the primary's business: dc4 made no token of its own from it.
    const rows = await dc4.request('GET', '/v1/acl/tokens', as(MGMT));
    assert.equal(rows.status, 200, rows.text);
    const list = rows.json<Array<Token & { Description: string }>>();
    assert.ok(list.length > 0 && list.every((t) => t.SecretID !== '<hidden>'), 'secrets shown to the management token');
    assert.deepEqual(list.filter((t) => t.SecretID === DC4_INITIAL || t.Description === 'Initial Management Token'), []);
    assert.equal(await kvPut(dc4, 'app/initial', DC4_INITIAL), 403);
  });

  test('with the primary killed the secondary keeps authorizing what it replicated; replication resumes after a restart', { timeout: 180_000 }, async () => {
    const kept = await makeToken(dc1, { Description: 'kept', Policies: [{ Name: 'kv-app' }] });
    await waitFor('dc2 authorizes the kept token', async () => (await kvPut(dc2, 'app/kept', kept.SecretID)) === 200, 30_000, 200);
    assert.equal(await kvPut(dc4, 'app/kept', kept.SecretID), 200, 'dc4 resolved it in dc1 and cached it');
    const cachedAt = Date.now();
    const unseen = await makeToken(dc1, { Description: 'never used in dc4', Policies: [{ Name: 'kv-app' }] });
    await dc1.kill();
    // dc4 (extend-cache): once token_ttl (1 s) has passed and dc4 finds dc1 unreachable, the cached
    // identity keeps serving; a token it never resolved is not allowed.
    await waitFor('dc4 cannot resolve a new token, past the kept token\'s TTL', async () => Date.now() - cachedAt > 2_000
      && (await dc4.request('PUT', '/v1/kv/app/unseen', { ...as(unseen.SecretID), body: 'v', timeoutMs: 30_000 })).status !== 200, 60_000, 500);
    assert.equal((await dc4.request('PUT', '/v1/kv/app/kept-down', { ...as(kept.SecretID), body: 'v', timeoutMs: 30_000 })).status, 200, 'extend-cache');
    assert.equal((await dc4.request('PUT', '/v1/kv/other/kept-down', { ...as(kept.SecretID), body: 'v', timeoutMs: 30_000 })).status, 403);
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
