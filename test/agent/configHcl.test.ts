// Consul's configuration as people write it, with real agent processes (issue 10, points 6 and 7):
// an agent asked for ACLs refuses to start instead of running unprotected; an agent reads an HCL
// agent config and an HCL service definition from -config-dir; `trellis services register` takes
// an HCL file.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, freePort, waitFor } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-config-hcl-'));
let agent: AgentProcess | undefined;
after(async () => {
  await agent?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, agent));

function write(rel: string, text: string): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}

test('an agent given ACLs in a config file enforces them: an anonymous write is 403 and changes nothing', { timeout: 90_000 }, async () => {
  // The config from issue 10, which an agent once started with and then accepted anonymous writes
  // (then refused, until ACLs were built): now it starts and denies.
  const file = write('acl/acl.json', '{"acl": {"enabled": true, "default_policy": "deny"}}');
  const agent = await AgentProcess.start({ name: 'acl-config', args: ['-config-file', file] });
  try {
    const put = await agent.request('PUT', '/v1/kv/from-anonymous', { body: 'x' });
    assert.equal(put.status, 403, put.text);
    assert.match(put.text, /Permission denied/);
    const boot = await agent.request('PUT', '/v1/acl/bootstrap');
    assert.equal(boot.status, 200, boot.text);
    const secret = boot.json<{ SecretID: string }>().SecretID;
    const get = await agent.request('GET', '/v1/kv/from-anonymous', { headers: { 'X-Consul-Token': secret } });
    assert.equal(get.status, 404, 'the refused write stored nothing');
  } finally {
    await agent.dispose();
  }
});

test('-config-dir with an HCL agent config and an HCL service definition registers the service; services register takes HCL', { timeout: 90_000 }, async () => {
  const dir = path.join(tmp, 'conf.d');
  write('conf.d/agent.hcl', `# An agent config as Consul's documentation writes it.
datacenter = "hcl-dc"
node_meta {
  rack = "r1"
}
acl {
  enabled = false
}
enable_central_service_config = true
`);
  write('conf.d/web.hcl', `service {
  name = "web"
  id   = "web-1"
  port = 8080
  tags = ["v1"]
  meta = {
    version = "1"
  }
  check {
    id       = "web-ttl"
    name     = "web ttl"
    ttl      = "60s"
    status   = "passing"
  }
  connect {
    sidecar_service {
      proxy {
        upstreams {
          destination_name = "db"
          local_bind_port  = 9191
        }
        upstreams {
          destination_name = "cache"
          local_bind_port  = 9192
        }
      }
    }
  }
}
`);
  write('conf.d/README.txt', 'not a config file: skipped with a warning, as Consul does\n');
  agent = await AgentProcess.start({ name: 'config-hcl', args: ['-config-dir', dir] });

  const web = await waitFor('web in the catalog', async () => {
    const r = await agent!.request('GET', '/v1/catalog/service/web');
    const list = r.status === 200 ? r.json() as Array<Record<string, unknown>> : [];
    return list.length === 1 ? list[0] : undefined;
  }, 20_000);
  assert.equal(web['ServiceID'], 'web-1');
  assert.equal(web['ServicePort'], 8080);
  assert.deepEqual(web['ServiceTags'], ['v1']);
  assert.deepEqual(web['ServiceMeta'], { version: '1' }, 'meta = { version = "1" } keeps "1" a string');
  assert.equal(web['Datacenter'], 'hcl-dc');
  assert.deepEqual(web['NodeMeta'], { rack: 'r1' });

  // The sidecar_service block registers web-1-sidecar-proxy (as Consul does) with the upstreams.
  const services = (await agent.request('GET', '/v1/agent/services')).json() as Record<string, { Proxy?: { Upstreams?: Array<{ DestinationName: string; LocalBindPort: number }> } }>;
  assert.deepEqual(services['web-1-sidecar-proxy']?.Proxy?.Upstreams?.map((u) => ({ DestinationName: u.DestinationName, LocalBindPort: u.LocalBindPort })),
    [{ DestinationName: 'db', LocalBindPort: 9191 }, { DestinationName: 'cache', LocalBindPort: 9192 }],
    'two upstreams blocks are a list of two upstreams');
  const checks = (await agent.request('GET', '/v1/agent/checks')).json() as Record<string, { ServiceID: string; Status: string }>;
  assert.equal(checks['web-ttl']?.ServiceID, 'web-1');
  assert.equal(checks['web-ttl']?.Status, 'passing');
  const log = fs.readFileSync(agent.logFile, 'utf8');
  assert.match(log, /skipping file .*README\.txt, extension must be \.hcl or \.json/);
  assert.match(log, /"enable_central_service_config" is a Consul setting that Trellis does not use yet/);

  const apiFile = write('api.hcl', 'service {\n  name = "api"\n  port = 9000\n  tags = ["blue"],\n}\n');
  const r = await runTrellis(['services', 'register', '-http-addr', agent.httpAddr, apiFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Registered service: api/);
  const api = await waitFor('api in the catalog', async () => {
    const list = (await agent!.request('GET', '/v1/catalog/service/api')).json() as Array<Record<string, unknown>>;
    return list.length === 1 ? list[0] : undefined;
  }, 20_000);
  assert.equal(api['ServicePort'], 9000);
  assert.deepEqual(api['ServiceTags'], ['blue']);
});
