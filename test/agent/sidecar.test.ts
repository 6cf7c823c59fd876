// Sidecar registration end to end (issue 13, part 4) with real processes: a server and a client
// agent. `web` comes with a sidecar from an HCL file in the client's -config-dir, `api` through
// PUT /v1/agent/service/register. Each sidecar is in the catalog with its Proxy block and upstreams;
// /v1/health/connect/<svc> lists it, but not as passing until something listens on its port (the
// test opens that listener); deregistering the service removes its sidecar; an API-registered
// sidecar survives a restart of the client agent with its port, and still goes with its service;
// `trellis services register` with an HCL file registers one too; a reload that drops a file's
// sidecar_service removes the sidecar and one that brings it back registers it again.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, closeIdleSockets, freePort, printLogsIfFailed, reservePort, runTrellis, waitFor, startServerAndClient } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-sidecar-'));
let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
const listeners: net.Server[] = [];
after(async () => {
  for (const l of listeners) l.close();
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

/** Two consecutive free loopback ports, reserved against other test processes (the sidecar range). */
async function portPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = await freePort();
    if (p + 1 >= 32_768 || !reservePort(p + 1)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ port: p + 1, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (free) return p;
  }
  throw new Error('no two consecutive free ports in 20 attempts');
}

function listen(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.createServer((sock) => sock.destroy());
    s.once('error', reject);
    s.listen({ port, host: '127.0.0.1' }, () => resolve());
    listeners.push(s);
  });
}

interface HealthRow {
  Node: { Node: string };
  Service: { ID: string; Kind: string; Port: number; Proxy?: { DestinationServiceName: string; Upstreams?: Array<Record<string, unknown>> } };
  Checks: Array<{ CheckID: string; Status: string; Output: string }>;
}

test('sidecars from an HCL file and from the API: catalog, health/connect, real checks, removal, restart', { timeout: 240_000 }, async () => {
  const first = await portPair();
  const configDir = path.join(tmp, 'client-config');
  fs.mkdirSync(configDir);
  fs.writeFileSync(path.join(configDir, 'web.hcl'), `
service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      proxy {
        upstreams {
          destination_name = "payments"
          local_bind_port = 9191
        }
        upstreams {
          destination_name = "db"
          datacenter = "dc1"
          local_bind_address = "127.0.0.2"
          local_bind_port = 9192
        }
      }
    }
  }
}
ports {
  sidecar_min_port = ${first}
  sidecar_max_port = ${first + 1}
}
`);
  ({ server, client } = await startServerAndClient('sidecar', { clientArgs: ['-config-dir', configDir] }));

  // The file's sidecar, as the catalog (read through the server) shows it.
  const webProxy = await waitFor('web-sidecar-proxy in the catalog', async () => {
    const r = await server!.request('GET', '/v1/catalog/service/web-sidecar-proxy');
    const rows = r.status === 200 ? r.json<Array<Record<string, unknown>>>() : [];
    return rows[0];
  }, 30_000, 200);
  assert.equal(webProxy.Node, 'sidecar-client');
  assert.equal(webProxy.ServiceKind, 'connect-proxy');
  assert.equal(webProxy.ServicePort, first);
  assert.deepEqual(webProxy.ServiceProxy, {
    DestinationServiceName: 'web', DestinationServiceID: 'web', LocalServiceAddress: '127.0.0.1', LocalServicePort: 8080,
    Upstreams: [
      { DestinationType: 'service', DestinationName: 'payments', Datacenter: '', LocalBindPort: 9191, MeshGateway: {} },
      { DestinationType: 'service', DestinationName: 'db', Datacenter: 'dc1', LocalBindAddress: '127.0.0.2', LocalBindPort: 9192, MeshGateway: {} },
    ],
    MeshGateway: {}, Expose: {},
  });
  // What the proxy process reads from its local agent.
  const own = await client.request('GET', '/v1/agent/service/web-sidecar-proxy');
  assert.equal(own.status, 200, own.text);
  assert.deepEqual(own.json<{ Proxy: unknown }>().Proxy, webProxy.ServiceProxy);

  // Through the API: the next port of the range.
  const reg = await client.request('PUT', '/v1/agent/service/register', {
    body: { Name: 'api', Port: 8081, Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'web', LocalBindPort: 9193 }] } } } },
  });
  assert.equal(reg.status, 200, reg.text);
  const apiProxy = (await client.request('GET', '/v1/agent/service/api-sidecar-proxy')).json<{ Port: number; Proxy: { DestinationServiceName: string } }>();
  assert.equal(apiProxy.Port, first + 1);
  assert.equal(apiProxy.Proxy.DestinationServiceName, 'api');

  // health/connect lists web's proxy; its TCP check has run and failed: not passing.
  const connect = async (svc: string, passing: boolean): Promise<HealthRow[]> => {
    const r = await client!.request('GET', `/v1/health/connect/${svc}${passing ? '?passing' : ''}`);
    assert.equal(r.status, 200, r.text);
    return r.json<HealthRow[]>();
  };
  const tcpRan = await waitFor('the sidecar\'s TCP check to run once', async () => {
    const rows = await connect('web', false);
    const tcp = rows[0]?.Checks.find((c) => c.CheckID === 'service:web-sidecar-proxy:1');
    return tcp && tcp.Output !== '' ? rows : undefined;
  }, 40_000, 500);
  assert.deepEqual(tcpRan.map((r) => r.Service.ID), ['web-sidecar-proxy']);
  assert.equal(tcpRan[0]!.Service.Proxy?.DestinationServiceName, 'web');
  assert.equal(tcpRan[0]!.Checks.find((c) => c.CheckID === 'service:web-sidecar-proxy:1')!.Status, 'critical');
  assert.equal(tcpRan[0]!.Checks.find((c) => c.CheckID === 'service:web-sidecar-proxy:2')!.Status, 'passing', 'alias of web (no checks of its own)');
  assert.deepEqual(await connect('web', true), []);

  // Something listens on the sidecar's port: the check passes and the proxy is listed as passing.
  await listen(first);
  const passing = await waitFor('web-sidecar-proxy to pass', async () => {
    const rows = await connect('web', true);
    return rows.length === 1 ? rows : undefined;
  }, 40_000, 500);
  assert.equal(passing[0]!.Service.Port, first);

  // Reload with web's file no longer defining a sidecar: the sidecar goes, web stays; and back.
  const webHcl = path.join(configDir, 'web.hcl');
  const withSidecar = fs.readFileSync(webHcl, 'utf8');
  fs.writeFileSync(webHcl, `service {\n  name = "web"\n  port = 8080\n}\nports {\n  sidecar_min_port = ${first}\n  sidecar_max_port = ${first + 1}\n}\n`);
  let reload = await client.request('PUT', '/v1/agent/reload');
  assert.equal(reload.status, 200, reload.text);
  assert.equal((await client.request('GET', '/v1/agent/service/web-sidecar-proxy')).status, 404);
  assert.equal((await client.request('GET', '/v1/agent/service/web')).status, 200);
  fs.writeFileSync(webHcl, withSidecar);
  reload = await client.request('PUT', '/v1/agent/reload');
  assert.equal(reload.status, 200, reload.text);
  const again = await client.request('GET', '/v1/agent/service/web-sidecar-proxy');
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json<{ Port: number }>().Port, first);

  // Deregister web: its sidecar goes with it, from the client and the catalog.
  const dereg = await client.request('PUT', '/v1/agent/service/deregister/web');
  assert.equal(dereg.status, 200, dereg.text);
  assert.equal((await client.request('GET', '/v1/agent/service/web-sidecar-proxy')).status, 404);
  await waitFor('web-sidecar-proxy gone from the catalog', async () => {
    const r = await server!.request('GET', '/v1/catalog/service/web-sidecar-proxy');
    return r.status === 200 && r.json<unknown[]>().length === 0;
  }, 10_000, 100);
  assert.deepEqual(await connect('web', false), []);

  // `trellis services register` with an HCL file: the freed port goes to the new sidecar.
  const file = path.join(tmp, 'cache.hcl');
  fs.writeFileSync(file, 'service {\n  name = "cache"\n  port = 6379\n  connect {\n    sidecar_service {}\n  }\n}\n');
  const cli = await runTrellis(['services', 'register', '-http-addr', client.httpAddr, file], { timeoutMs: 30_000 });
  assert.equal(cli.code, 0, cli.stderr);
  const cacheProxy = (await client.request('GET', '/v1/agent/service/cache-sidecar-proxy')).json<{ Port: number; Proxy: { DestinationServiceName: string } }>();
  assert.equal(cacheProxy.Port, first);
  assert.equal(cacheProxy.Proxy.DestinationServiceName, 'cache');

  // The API-registered sidecar survives a restart with its port, and still goes with api.
  await client.restart();
  const back = await waitFor('api-sidecar-proxy back after the restart', async () => {
    const r = await client!.request('GET', '/v1/agent/service/api-sidecar-proxy');
    return r.status === 200 ? r.json<{ Port: number }>() : undefined;
  }, 30_000, 200);
  assert.equal(back.Port, first + 1);
  const dereg2 = await client.request('PUT', '/v1/agent/service/deregister/api');
  assert.equal(dereg2.status, 200, dereg2.text);
  assert.equal((await client.request('GET', '/v1/agent/service/api-sidecar-proxy')).status, 404);
  await waitFor('api-sidecar-proxy gone from the catalog', async () => {
    const r = await server!.request('GET', '/v1/catalog/connect/api');
    return r.status === 200 && r.json<unknown[]>().length === 0;
  }, 10_000, 100);
});
