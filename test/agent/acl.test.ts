// ACLs end to end (issue 17) with real processes: a server and a client agent, acl.enabled with
// default_policy = "deny".
//   - bootstrap works once, then answers Consul's 403 with the reset index; the reset file in the
//     data dir allows exactly one more;
//   - anonymous KV writes get 403 (on the server and through the client) and change nothing;
//   - the client's agent token (acl.tokens.agent) keeps anti-entropy working: its node reaches the catalog;
//   - a service token registers its service and its sidecar (synced with that token), not another service;
//   - that token is kept with the service in the data dir: after a restart the service syncs with it;
//   - list reads are filtered with X-Consul-Results-Filtered-By-ACLs;
//   - bad input: malformed rules (400 naming the line), unknown policy names, 10 KB tokens, NUL
//     bytes, unknown tokens: a clear error, nothing stored.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

const execFileP = promisify(execFile);

const AGENT_TOKEN = '0c3c4d52-8f1b-4a3e-9d43-7e0a61d1c001';
const WEB_TOKEN = '0c3c4d52-8f1b-4a3e-9d43-7e0a61d1c002';
const NODES_TOKEN = '0c3c4d52-8f1b-4a3e-9d43-7e0a61d1c003';
const API_TOKEN = '0c3c4d52-8f1b-4a3e-9d43-7e0a61d1c004';
const aclHcl = (extra = '', top = '') => `acl {\n  enabled = true\n  default_policy = "deny"\n  down_policy = "extend-cache"\n${top}  tokens {\n${extra}  }\n}\n`;
/** A config file (not -hcl, so no secret is on the command line the harness logs). */
function configFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-acl-'));
  const f = path.join(dir, 'acl.hcl');
  fs.writeFileSync(f, text);
  return f;
}

describe('ACLs on a server and a client agent (default deny)', () => {
  let server: AgentProcess;
  let client: AgentProcess;
  let mgmt = '';
  const as = (token: string) => ({ headers: { 'X-Consul-Token': token } });

  before(async () => {
    server = await AgentProcess.start({ name: 'acl-server', mode: 'server', args: ['-hcl', aclHcl()] });
  });
  after(async () => {
    await client?.dispose();
    await server?.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, server, client));

  test('bootstrap once, then Consul\'s error; the reset file allows one more', async () => {
    const first = await waitFor('bootstrap', async () => {
      const r = await server.request('PUT', '/v1/acl/bootstrap');
      return r.status === 200 ? r : undefined;
    }, 20_000, 200);
    const tok = first.json<{ SecretID: string; AccessorID: string; Policies: { Name: string }[]; Description: string }>();
    assert.equal(tok.Description, 'Bootstrap Token (Global Management)');
    assert.deepEqual(tok.Policies.map((p) => p.Name), ['global-management']);
    const again = await server.request('PUT', '/v1/acl/bootstrap');
    assert.equal(again.status, 403);
    const m = /^Permission denied: ACL bootstrap no longer allowed \(reset index: (\d+)\)$/.exec(again.text);
    assert.ok(m, again.text);
    // The operator writes the index into the data dir: one more bootstrap, then refused again.
    fs.writeFileSync(path.join(server.dataDir, 'acl-bootstrap-reset'), `${m[1]}\n`);
    const reset = await server.request('PUT', '/v1/acl/bootstrap');
    assert.equal(reset.status, 200, reset.text);
    mgmt = reset.json<{ SecretID: string }>().SecretID;
    assert.equal(fs.existsSync(path.join(server.dataDir, 'acl-bootstrap-reset')), false);
    assert.equal((await server.request('PUT', '/v1/acl/bootstrap')).status, 403);
    // Both bootstrap tokens work: the first was not revoked by the reset.
    assert.equal((await server.request('GET', '/v1/acl/token/self', as(tok.SecretID))).status, 200);
  });

  test('policies and tokens for the agent and a service; the client starts with its agent token', async () => {
    const pol = (Name: string, Rules: string) => server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name, Rules } });
    // The agent signs its services' leaf certificates with its own token: service write everywhere.
    assert.equal((await pol('agent', 'node_prefix "" { policy = "write" }\nservice_prefix "" { policy = "write" }')).status, 200);
    assert.equal((await pol('web', 'service "web" { policy = "write" }\nservice "web-sidecar-proxy" { policy = "write" }')).status, 200);
    assert.equal((await pol('kv-app', 'key_prefix "app/" { policy = "write" }')).status, 200);
    const tok = async (SecretID: string, names: string[]) => {
      const r = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { SecretID, Policies: names.map((Name) => ({ Name })) } });
      assert.equal(r.status, 200, r.text);
    };
    await tok(AGENT_TOKEN, ['agent']);
    await tok(WEB_TOKEN, ['web', 'kv-app']);
    client = await AgentProcess.start({
      name: 'acl-client', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-retry-join', server.serfAddr, '-retry-interval', '1s', '-config-file', configFile(aclHcl(`    agent = "${AGENT_TOKEN}"\n    dns = "${AGENT_TOKEN}"\n`, '  enable_token_persistence = true\n'))],
    });
    // Anti-entropy writes the client's node and its node checks with the agent token: a check
    // registered with the agent token reaches the catalog; anonymous cannot register one.
    const chk = await client.request('PUT', '/v1/agent/check/register', { ...as(AGENT_TOKEN), body: { Name: 'disk', TTL: '10m', Status: 'passing' } });
    assert.equal(chk.status, 200, chk.text);
    assert.equal((await client.request('PUT', '/v1/agent/check/register', { body: { Name: 'anon', TTL: '10m' } })).status, 403);
    await waitFor('the client\'s node check in the catalog', async () => {
      const r = await server.request('GET', `/v1/health/node/${client.name}`, as(mgmt));
      return r.json<{ CheckID: string; Status: string }[]>().some((c) => c.CheckID === 'disk' && c.Status === 'passing');
    }, 30_000, 200);
  });

  test('anonymous KV writes get 403 and change nothing, on the server and through the client', async () => {
    for (const a of [server, client]) {
      const r = await a.request('PUT', '/v1/kv/app/anon', { body: 'x' });
      assert.equal(r.status, 403);
      assert.equal(r.text, 'Permission denied: anonymous token lacks permission \'key:write\' on "app/anon". The anonymous token is used implicitly when a request does not specify a token.');
      const del = await a.request('DELETE', '/v1/kv/?recurse');
      assert.equal(del.status, 403);
    }
    assert.equal((await server.request('GET', '/v1/kv/app/anon', as(mgmt))).status, 404);
    // The service token's key_prefix rule: inside the prefix yes, outside no; the header, the
    // Bearer form and ?token= are the same token.
    assert.equal((await client.request('PUT', '/v1/kv/app/x', { body: '1', ...as(WEB_TOKEN) })).text, 'true');
    assert.equal((await client.request('PUT', '/v1/kv/app/y', { body: '2', headers: { Authorization: `Bearer ${WEB_TOKEN}` } })).text, 'true');
    assert.equal((await client.request('PUT', `/v1/kv/other?token=${WEB_TOKEN}`, { body: '3' })).status, 403);
    assert.equal((await server.request('PUT', '/v1/kv/other', { body: 'm', ...as(mgmt) })).text, 'true');
    const list = await client.request('GET', '/v1/kv/?recurse', as(WEB_TOKEN));
    assert.equal(list.status, 200);
    assert.deepEqual(list.json<{ Key: string }[]>().map((e) => e.Key), ['app/x', 'app/y']);
    assert.equal(list.headers['x-consul-results-filtered-by-acls'], 'true');
    const full = await server.request('GET', '/v1/kv/?recurse', as(mgmt));
    assert.equal(full.headers['x-consul-results-filtered-by-acls'], undefined);
  });

  test('a service token registers its service and sidecar, not another service', async () => {
    const reg = (body: unknown, token?: string) => client.request('PUT', '/v1/agent/service/register', { body, ...(token ? as(token) : {}) });
    const web = await reg({ Name: 'web', Port: 8080, Connect: { SidecarService: {} } }, WEB_TOKEN);
    assert.equal(web.status, 200, web.text);
    const db = await reg({ Name: 'db', Port: 5432 }, WEB_TOKEN);
    assert.equal(db.status, 403);
    assert.match(db.text, /lacks permission 'service:write' on "db"/);
    assert.equal((await reg({ Name: 'web2', Port: 1 })).status, 403);
    // Synced to the catalog with the token they were registered with.
    await waitFor('web and its sidecar in the catalog', async () => {
      const r = await server.request('GET', '/v1/catalog/services', as(mgmt));
      const s = r.json<Record<string, string[]>>();
      return 'web' in s && 'web-sidecar-proxy' in s;
    }, 30_000, 200);
    const services = await server.request('GET', '/v1/catalog/services', as(mgmt));
    assert.equal('db' in services.json<Record<string, string[]>>(), false);
    // Anonymous sees no service at all (default deny) and is told the list was filtered.
    const anon = await client.request('GET', '/v1/catalog/services');
    assert.equal(anon.status, 200);
    assert.deepEqual(anon.json(), {});
    assert.equal(anon.headers['x-consul-results-filtered-by-acls'], 'true');
    // A leaf certificate through the client: the caller needs service:write on that service.
    const leaf = await waitFor('web leaf', async () => {
      const r = await client.request('GET', '/v1/agent/connect/ca/leaf/web', as(WEB_TOKEN));
      return r.status === 200 ? r : undefined;
    }, 20_000, 200);
    assert.match(leaf.json<{ CertPEM: string }>().CertPEM, /BEGIN CERTIFICATE/);
    assert.equal((await client.request('GET', '/v1/agent/connect/ca/leaf/db', as(WEB_TOKEN))).status, 403);
    // The web token (no node read, service read only on its own) sees web only.
    const mine = await client.request('GET', '/v1/catalog/services', as(WEB_TOKEN));
    assert.deepEqual(Object.keys(mine.json<Record<string, string[]>>()).sort(), ['web', 'web-sidecar-proxy']);
  });

  test('DNS answers what the agent\'s DNS token may read: the client (dns token) answers web, the server (anonymous) nothing', async () => {
    const dig = async (a: AgentProcess, name: string) => (await execFileP('dig', ['@127.0.0.1', '-p', String(a.ports.dns), '+time=2', '+tries=1', name, 'SRV'])).stdout;
    await waitFor('web over DNS on the client', async () => /IN\s+SRV\s+1 1 8080 /.test(await dig(client, 'web.service.consul')), 20_000, 200);
    const anon = await dig(server, 'web.service.consul');
    assert.match(anon, /status: NXDOMAIN/);
    assert.match(await dig(server, `${client.name}.node.consul`), /status: NXDOMAIN/);
  });

  test('bad input: a clear error and nothing stored', async () => {
    const tokensBefore = (await server.request('GET', '/v1/acl/tokens', as(mgmt))).text;
    const policiesBefore = (await server.request('GET', '/v1/acl/policies', as(mgmt))).json<unknown[]>().length;
    const bad = await server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name: 'broken', Rules: 'key_prefix "a/" {\n  policy = "read"\n\nservice "x" {\n  policy = "sometimes"\n}\n' } });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /^Invalid Policy: Failed to parse ACL rules: At \d+:\d+/);
    const badValue = await server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name: 'broken', Rules: 'operator = "read"\nservice "x" {\n  policy = "sometimes"\n}\n' } });
    assert.equal(badValue.status, 400);
    assert.match(badValue.text, /Invalid service policy: service "x" has policy "sometimes".*\(line 2\)/);
    const unknownPolicy = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { Policies: [{ Name: 'no-such-policy' }] } });
    assert.equal(unknownPolicy.status, 400);
    assert.equal(unknownPolicy.text, 'No such ACL policy with name "no-such-policy"');
    const huge = await client.request('GET', '/v1/agent/self', { headers: { 'X-Consul-Token': 'x'.repeat(10 * 1024) } });
    assert.equal(huge.status, 403);
    assert.match(huge.text, /^ACL not found: ACL token is too long/);
    const nul = await server.request('PUT', '/v1/kv/app/nul?token=ab%00cd', { body: 'x' });
    assert.equal(nul.status, 403);
    assert.match(nul.text, /^ACL not found: ACL token contains a control character/);
    const nulSecret = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { SecretID: 'a\u0000b' } });
    assert.equal(nulSecret.status, 400);
    const unknown = await server.request('GET', '/v1/kv/app/x', as('6b2d0c1e-0000-4000-8000-000000000000'));
    assert.equal(unknown.status, 403);
    assert.equal(unknown.text, 'ACL not found');
    const past = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { ExpirationTime: '2001-01-01T00:00:00Z' } });
    assert.equal(past.status, 400);
    assert.match(past.text, /ExpirationTime cannot be in the past/);
    const shortTtl = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { ExpirationTTL: '1s' } });
    assert.equal(shortTtl.status, 400);
    assert.match(shortTtl.text, /should be between 1m0s and 24h0m0s/);
    assert.equal((await server.request('GET', '/v1/acl/tokens', as(mgmt))).text, tokensBefore);
    assert.equal((await server.request('GET', '/v1/acl/policies', as(mgmt))).json<unknown[]>().length, policiesBefore);
    assert.equal((await server.request('GET', '/v1/kv/app/nul', as(mgmt))).status, 404);
  });

  test('the agent\'s default token set at runtime (acl:write), persisted across a restart', async () => {
    assert.equal((await client.request('PUT', '/v1/kv/app/dflt', { body: 'x' })).status, 403);
    const noRight = await client.request('PUT', '/v1/agent/token/default', { ...as(WEB_TOKEN), body: { Token: WEB_TOKEN } });
    assert.equal(noRight.status, 403);
    const unknown = await client.request('PUT', '/v1/agent/token/nope', { ...as(mgmt), body: { Token: 'x' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.text, 'Token "nope" is unknown');
    const set = await client.request('PUT', '/v1/agent/token/default', { ...as(mgmt), body: { Token: WEB_TOKEN } });
    assert.equal(set.status, 200, set.text);
    // A request without a token now acts with the default token.
    assert.equal((await client.request('PUT', '/v1/kv/app/dflt', { body: 'x' })).text, 'true');
    const file = path.join(client.dataDir, 'acl-tokens.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    await client.restart();
    await waitFor('the restarted client uses the persisted default token', async () => (await client.request('PUT', '/v1/kv/app/dflt2', { body: 'y' })).text === 'true', 30_000, 200);
  });

  test('a service keeps the token it was registered with across a restart of its agent (persisted with it, as Consul)', async () => {
    // An agent token that may write nodes but no service: only the service's own token can sync it.
    const pol = (Name: string, Rules: string) => server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name, Rules } });
    assert.equal((await pol('nodes-only', 'node_prefix "" { policy = "write" }\nservice_prefix "" { policy = "read" }')).status, 200);
    assert.equal((await pol('api', 'service "api" { policy = "write" }')).status, 200);
    const tok = async (SecretID: string, Name: string) => {
      const r = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { SecretID, Policies: [{ Name }] } });
      assert.equal(r.status, 200, r.text);
    };
    await tok(NODES_TOKEN, 'nodes-only');
    await tok(API_TOKEN, 'api');
    const agent = await AgentProcess.start({
      name: 'acl-client2', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-retry-join', server.serfAddr, '-retry-interval', '1s', '-config-file', configFile(aclHcl(`    agent = "${NODES_TOKEN}"\n`))],
    });
    try {
      const inCatalog = async () => {
        const r = await server.request('GET', '/v1/catalog/service/api', as(mgmt));
        return r.json<{ Node: string }[]>().some((s) => s.Node === agent.name);
      };
      // Its node first, written by its own anti-entropy with the agent token (a node check does that):
      // the service's token has no node:write.
      const chk = await agent.request('PUT', '/v1/agent/check/register', { ...as(NODES_TOKEN), body: { Name: 'disk2', TTL: '10m', Status: 'passing' } });
      assert.equal(chk.status, 200, chk.text);
      await waitFor('the agent\'s node check in the catalog', async () => {
        const r = await server.request('GET', `/v1/health/node/${agent.name}`, as(mgmt));
        return r.json<{ CheckID: string }[]>().some((c) => c.CheckID === 'disk2');
      }, 30_000, 200);
      const reg = await agent.request('PUT', '/v1/agent/service/register', { ...as(API_TOKEN), body: { Name: 'api', Port: 9090 } });
      assert.equal(reg.status, 200, reg.text);
      await waitFor('api in the catalog', inCatalog, 30_000, 200);
      await agent.kill();
      // Killed (no leave: its node stays in the catalog), and the service removed from the catalog while
      // its agent is down: after the restart, anti-entropy has to write it again.
      const dereg = await server.request('PUT', '/v1/catalog/deregister', { ...as(mgmt), body: { Node: agent.name, ServiceID: 'api' } });
      assert.equal(dereg.status, 200, dereg.text);
      assert.equal(await inCatalog(), false);
      await agent.restart();
      // Without its own token the agent token's write would be refused (no service:write on api).
      await waitFor('api back in the catalog, written with its own token', inCatalog, 30_000, 200);
      assert.equal((await agent.request('GET', '/v1/agent/service/api', as(API_TOKEN))).status, 200);
    } finally {
      await agent.dispose();
    }
  });

  test('a service token without node:write registers on a fresh client at once (200, as Consul); anti-entropy brings it to the catalog', async () => {
    // Policies and tokens of their own (the test above may not have run).
    const pol = (Name: string, Rules: string) => server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name, Rules } });
    assert.equal((await pol('nodes-only-fresh', 'node_prefix "" { policy = "write" }\nservice_prefix "" { policy = "read" }')).status, 200);
    assert.equal((await pol('svc-fresh', 'service "fresh" { policy = "write" }')).status, 200);
    const tok = async (Name: string): Promise<string> => {
      const r = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { Policies: [{ Name }] } });
      assert.equal(r.status, 200, r.text);
      return r.json<{ SecretID: string }>().SecretID;
    };
    const nodesToken = await tok('nodes-only-fresh');
    const svcToken = await tok('svc-fresh');
    const agent = await AgentProcess.start({
      name: 'acl-fresh', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-retry-join', server.serfAddr, '-retry-interval', '1s', '-config-file', configFile(aclHcl(`    agent = "${nodesToken}"\n`))],
    });
    try {
      // At once after start: this agent's node may not be in the catalog yet, and the service's token
      // may not write it. Consul answers 200 and syncs later; so must we.
      const reg = await agent.request('PUT', '/v1/agent/service/register', { ...as(svcToken), body: { Name: 'fresh', Port: 9191 } });
      assert.equal(reg.status, 200, reg.text);
      await waitFor('fresh in the catalog', async () => {
        const r = await server.request('GET', '/v1/catalog/service/fresh', as(mgmt));
        return r.json<{ Node: string }[]>().some((x) => x.Node === agent.name);
      }, 30_000, 200);
      // The local check of the service's own rights still holds: another service is refused.
      const other = await agent.request('PUT', '/v1/agent/service/register', { ...as(svcToken), body: { Name: 'not-fresh', Port: 9192 } });
      assert.equal(other.status, 403, other.text);
    } finally {
      await agent.dispose();
    }
  });

  test('token secrets show only to acl:write; read needs acl:read', async () => {
    const list = await server.request('GET', '/v1/acl/tokens', as(WEB_TOKEN));
    assert.equal(list.status, 403);
    assert.match(list.text, /lacks permission 'acl:read'/);
    const pol = await server.request('PUT', '/v1/acl/policy', { ...as(mgmt), body: { Name: 'acl-reader', Rules: 'acl = "read"' } });
    assert.equal(pol.status, 200);
    const reader = await server.request('PUT', '/v1/acl/token', { ...as(mgmt), body: { Policies: [{ Name: 'acl-reader' }] } });
    const readerSecret = reader.json<{ SecretID: string }>().SecretID;
    const seen = await server.request('GET', '/v1/acl/tokens', as(readerSecret));
    assert.equal(seen.status, 200);
    const rows = seen.json<{ SecretID: string }[]>();
    assert.ok(rows.length > 3);
    assert.ok(rows.every((t) => t.SecretID === '<hidden>'));
    // The log names tokens by AccessorID only: no secret appears in either agent's log.
    for (const a of [server, client]) {
      const log = fs.readFileSync(a.logFile, 'utf8');
      for (const s of [mgmt, WEB_TOKEN, AGENT_TOKEN, readerSecret]) assert.equal(log.includes(s), false, `${a.name} logged a secret`);
    }
  });
});
