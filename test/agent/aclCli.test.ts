// `trellis acl ...` against a real dev agent with ACLs on (default deny): bootstrap (once, then
// Consul's error), policy/token/role create, read, list, update, delete with Consul's output, and
// the token given by -token, -token-file and CONSUL_HTTP_TOKEN on other commands (kv put).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis } from '../support/index.ts';

describe('trellis acl (CLI) against a dev agent with ACLs on', () => {
  let agent: AgentProcess;
  let mgmt = '';
  let tmp = '';
  // The agent's address from CONSUL_HTTP_ADDR, and no token from the environment unless given.
  const cli = (args: string[], env: Record<string, string> = {}, stdin?: string) =>
    runTrellis(args, { env: { CONSUL_HTTP_ADDR: agent.httpAddr, CONSUL_HTTP_TOKEN: undefined, CONSUL_HTTP_TOKEN_FILE: undefined, ...env }, ...(stdin !== undefined ? { stdin } : {}) });

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-acl-cli-'));
    const cfg = path.join(tmp, 'acl.hcl');
    fs.writeFileSync(cfg, 'acl {\n  enabled = true\n  default_policy = "deny"\n}\n');
    agent = await AgentProcess.start({ name: 'acl-cli', args: ['-config-file', cfg] });
  });
  after(async () => {
    await agent?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  afterEach((t) => printLogsIfFailed(t, agent));

  test('bootstrap prints the management token, then fails as Consul\'s does', async () => {
    let r = await cli(['acl', 'bootstrap']);
    for (let i = 0; i < 50 && r.code !== 0 && /No cluster leader|ACL support/.test(r.stderr); i++) {
      await new Promise((res) => setTimeout(res, 200));
      r = await cli(['acl', 'bootstrap']);
    }
    assert.equal(r.code, 0, r.stderr);
    const m = /^AccessorID:\s+(\S+)\nSecretID:\s+(\S+)\nDescription:\s+Bootstrap Token \(Global Management\)\nLocal:\s+false\nCreate Time:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC\nPolicies:\n   00000000-0000-0000-0000-000000000001 - global-management\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    mgmt = m[2]!;
    const again = await cli(['acl', 'bootstrap']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^Failed ACL bootstrapping: Unexpected response code: 403 \(Permission denied: ACL bootstrap no longer allowed \(reset index: \d+\)\)/);
  });

  test('policy, token and role lifecycle; the token works from -token, -token-file and CONSUL_HTTP_TOKEN', async () => {
    const env = { CONSUL_HTTP_TOKEN: mgmt };
    const rules = 'key_prefix "app/" {\n  policy = "write"\n}\n';
    const pol = await cli(['acl', 'policy', 'create', '-name', 'kv-app', '-rules', '-'], env, rules);
    assert.equal(pol.code, 0, pol.stderr);
    assert.match(pol.stdout, /^ID:\s+\S+\nName:\s+kv-app\nDescription:\s+\nDatacenters:\s+\nRules:\nkey_prefix "app\/" \{/);
    const bad = await cli(['acl', 'policy', 'create', '-name', 'bad', '-rules', 'key "x" {\n policy = "maybe"\n}'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^Failed to create new policy: Unexpected response code: 400 \(Invalid Policy: Invalid key policy/);

    const tok = await cli(['acl', 'token', 'create', '-description', 'app token', '-policy-name', 'kv-app', '-format', 'json'], env);
    assert.equal(tok.code, 0, tok.stderr);
    const t = JSON.parse(tok.stdout) as { AccessorID: string; SecretID: string; Policies: { Name: string }[] };
    assert.deepEqual(t.Policies.map((p) => p.Name), ['kv-app']);

    const read = await cli(['acl', 'token', 'read', '-id', t.AccessorID.slice(0, 8)], env);
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, new RegExp(`^AccessorID:\\s+${t.AccessorID}\\nSecretID:\\s+${t.SecretID}\\nDescription:\\s+app token\\n`));
    const list = await cli(['acl', 'token', 'list'], env);
    assert.equal(list.code, 0);
    assert.ok(list.stdout.includes(t.AccessorID) && list.stdout.includes('00000000-0000-0000-0000-000000000002'));

    // The token on other commands: -token, -token-file, CONSUL_HTTP_TOKEN; none → 403.
    assert.equal((await cli(['kv', 'put', '-token', t.SecretID, 'app/a', '1'])).code, 0);
    const file = path.join(tmp, 'token');
    fs.writeFileSync(file, `${t.SecretID}\n`);
    assert.equal((await cli(['kv', 'put', '-token-file', file, 'app/b', '2'])).code, 0);
    assert.equal((await cli(['kv', 'put', 'app/c', '3'], { CONSUL_HTTP_TOKEN: t.SecretID })).code, 0);
    const denied = await cli(['kv', 'put', 'app/d', '4']);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /403 \(Permission denied: anonymous token lacks permission 'key:write' on "app\/d"/);
    const outside = await cli(['kv', 'put', '-token', t.SecretID, 'other', '4']);
    assert.equal(outside.code, 1);

    // The agent's default token: requests without a token act with it.
    const setTok = await cli(['acl', 'set-agent-token', 'default', t.SecretID], env);
    assert.equal(setTok.code, 0, setTok.stderr);
    assert.equal(setTok.stdout, 'ACL token "default" set successfully\n');
    assert.equal((await cli(['kv', 'put', 'app/dflt', '5'])).code, 0);
    assert.equal((await cli(['acl', 'set-agent-token', 'default', ''], env)).code, 0);
    assert.equal((await cli(['kv', 'put', 'app/dflt', '6'])).code, 1);

    const upd = await cli(['acl', 'token', 'update', '-id', t.AccessorID, '-description', 'renamed'], env);
    assert.equal(upd.code, 0, upd.stderr);
    assert.match(upd.stdout, /^Token updated successfully\.\nAccessorID:/);
    assert.match(upd.stdout, /Description:\s+renamed\n/);

    const role = await cli(['acl', 'role', 'create', '-name', 'ops', '-policy-name', 'kv-app'], env);
    assert.equal(role.code, 0, role.stderr);
    assert.match(role.stdout, /^ID:\s+\S+\nName:\s+ops\nDescription:\s+\nPolicies:\n   \S+ - kv-app\n$/);
    assert.equal((await cli(['acl', 'role', 'read', '-name', 'ops'], env)).code, 0);
    assert.equal((await cli(['acl', 'role', 'delete', '-name', 'ops'], env)).code, 0);
    assert.equal((await cli(['acl', 'role', 'read', '-name', 'ops'], env)).code, 1);

    const del = await cli(['acl', 'token', 'delete', '-id', t.AccessorID], env);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, `Token "${t.AccessorID}" deleted successfully\n`);
    const gone = await cli(['kv', 'put', '-token', t.SecretID, 'app/e', '5']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /403 \(ACL not found\)/);
    assert.equal((await cli(['acl', 'policy', 'delete', '-name', 'kv-app'], env)).code, 0);
    const pl = await cli(['acl', 'policy', 'list'], env);
    assert.match(pl.stdout, /^global-management:\n   ID:\s+00000000-0000-0000-0000-000000000001\n/);
    assert.equal(pl.stdout.includes('kv-app'), false);
  });
});
