// Config entries end to end (issue 13, part 2) with real processes: a server and a client agent
// that forwards /v1/config to it. `trellis config write` takes an HCL file (snake_case) and a JSON
// file (CamelCase); read/list/delete through the CLI and the HTTP API; a bad entry is a 400 and
// stores nothing; the protocol gate refuses a router's service going back to tcp; CAS writes and
// deletes answer as Consul's CLI does.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, startServerAndClient } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-config-entries-'));
let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
after(async () => {
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

const GATE = 'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or splitting behavior';

test('config write/read/list/delete through a client agent, the CLI and the HTTP API', { timeout: 180_000 }, async () => {
  ({ server, client } = await startServerAndClient('cfg'));
  const viaClient = ['-http-addr', client.httpAddr];
  const trellis = (...args: string[]) => runTrellis(args, { timeoutMs: 30_000 });

  // An HCL file in snake_case, as Consul's documentation writes them (a trailing comma, blocks).
  const hcl = write('web-defaults.hcl', `Kind = "service-defaults"
name = "web",
protocol = "HTTP"
meta {
  owner = "team-a"
}
upstream_config {
  defaults {
    connect_timeout_ms = 3000
  }
}
`);
  let r = await trellis('config', 'write', ...viaClient, hcl);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Config entry written: service-defaults/web\n');

  // A JSON file in CamelCase: a router, which the http protocol above allows.
  const json = write('web-router.json', JSON.stringify({
    Kind: 'service-router', Name: 'web',
    Routes: [{ Match: { HTTP: { PathPrefix: '/admin', Methods: ['get'] } }, Destination: { RequestTimeout: '2s' } }],
  }));
  r = await trellis('config', 'write', ...viaClient, json);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Config entry written: service-router/web\n');

  // Read back through the CLI (Consul's 4-space JSON) and the HTTP API of both agents.
  r = await trellis('config', 'read', ...viaClient, '-kind', 'service-defaults', '-name', 'web');
  assert.equal(r.code, 0, r.stderr);
  const read = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(read.Protocol, 'http');
  assert.deepEqual(read.Meta, { owner: 'team-a' });
  assert.deepEqual(read.UpstreamConfig, { Defaults: { ConnectTimeoutMs: 3000 } });
  assert.match(r.stdout, /^{\n {4}"Kind": "service-defaults",\n {4}"Name": "web",\n/);
  const viaHttp = await server.request('GET', '/v1/config/service-router/web');
  assert.equal(viaHttp.status, 200);
  assert.ok(viaHttp.index > 0);
  assert.deepEqual(viaHttp.json<Record<string, any>>().Routes[0].Match.HTTP, { PathPrefix: '/admin', Methods: ['GET'] });

  r = await trellis('config', 'list', ...viaClient, '-kind', 'service-defaults');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'web\n');

  // From stdin ('-'), HCL with repeated blocks as a list; Precedence is computed by the server.
  r = await runTrellis(['config', 'write', ...viaClient, '-'], {
    timeoutMs: 30_000,
    stdin: 'kind = "service-intentions"\nname = "web"\nsources {\n  name = "*"\n  action = "deny"\n}\nsources {\n  name = "api"\n  action = "allow"\n}\n',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Config entry written: service-intentions/web\n');
  const ixn = (await server.request('GET', '/v1/config/service-intentions/web')).json<{ Sources: Array<{ Name: string; Action: string; Precedence: number }> }>();
  assert.deepEqual(ixn.Sources.map((src) => [src.Name, src.Action, src.Precedence]), [['api', 'allow', 9], ['*', 'deny', 8]]);

  // The protocol gate: web's router depends on http, so going back to tcp is refused.
  const tcp = write('web-tcp.json', JSON.stringify({ kind: 'service-defaults', name: 'web', protocol: 'tcp' }));
  r = await trellis('config', 'write', ...viaClient, tcp);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `Error writing config entry service-defaults/web: Unexpected response code: 400 (${GATE})\n`);
  const del = await client.request('DELETE', '/v1/config/service-defaults/web');
  assert.equal(del.status, 400);
  assert.equal(del.text, GATE);
  assert.equal((await server.request('GET', '/v1/config/service-defaults/web')).json<{ Protocol: string }>().Protocol, 'http');

  // Bad entries: a 400 naming what is wrong, and nothing stored.
  const before = (await server.request('GET', '/v1/config/proxy-defaults')).index;
  const badName = await client.request('PUT', '/v1/config', { body: { Kind: 'proxy-defaults', Name: 'web', Config: { protocol: 'http' } } });
  assert.equal(badName.status, 400);
  assert.equal(badName.text, 'invalid name ("web"), only "global" is supported');
  const badKind = await client.request('PUT', '/v1/config', { body: { Kind: 'service-default', Name: 'web' } });
  assert.equal(badKind.status, 400);
  assert.equal(badKind.text, 'Request decoding failed: invalid config entry kind: service-default');
  const list = await server.request('GET', '/v1/config/proxy-defaults');
  assert.deepEqual(list.json(), []);
  assert.equal(list.index, before, 'no write happened');
  const typo = write('typo.hcl', 'kind = "service-defaults"\nname = "api"\nprotocoll = "http"\n');
  r = await trellis('config', 'write', ...viaClient, typo);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Failed to decode config entry input: invalid config key "Protocoll"\n');
  assert.equal((await server.request('GET', '/v1/config/service-defaults/api')).status, 404);

  // CAS: a stale index is not an error but "not updated" / "not deleted", exit 1.
  const index = read.ModifyIndex as number;
  const v2 = write('web-grpc.json', JSON.stringify({ Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' }));
  r = await trellis('config', 'write', ...viaClient, '-cas', '-modify-index', String(index + 1000), v2);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Config entry not updated: service-defaults/web\n');
  r = await trellis('config', 'write', ...viaClient, '-cas', '-modify-index', String(index), v2);
  assert.equal(r.code, 0, r.stderr);
  const routerIndex = (await server.request('GET', '/v1/config/service-router/web')).json<{ ModifyIndex: number }>().ModifyIndex;
  r = await trellis('config', 'delete', ...viaClient, '-kind', 'service-router', '-name', 'web', '-cas', '-modify-index', String(routerIndex + 1000));
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Config entry not deleted: service-router/web\n');
  r = await trellis('config', 'delete', ...viaClient, '-kind', 'service-router', '-name', 'web', '-cas', '-modify-index', String(routerIndex));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Config entry deleted: service-router/web\n');

  // Without the router, service-defaults may go; a plain delete answers {} over HTTP.
  const plain = await client.request('DELETE', '/v1/config/service-defaults/web');
  assert.equal(plain.status, 200);
  assert.deepEqual(plain.json(), {});
  r = await trellis('config', 'read', ...viaClient, '-kind', 'service-defaults', '-name', 'web');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error reading config entry service-defaults/web: Unexpected response code: 404 (Config entry not found for "service-defaults" / "web")\n');
  r = await trellis('config', 'list', ...viaClient, '-kind', 'service-defaults');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  r = await trellis('config', 'delete', ...viaClient, '-kind', 'service-defaults');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Must specify the -name parameter\n');
});
