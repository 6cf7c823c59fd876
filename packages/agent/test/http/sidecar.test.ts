// Sidecar registration through the HTTP API (Connect.SidecarService), the connect queries
// (health/connect, catalog/connect), removal with the service, refusals with Consul's texts, and
// the sidecar flag kept in the data directory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { defaults } from '../../src/config/runtime.ts';
import { FilePersistence } from '../../src/local/persist.ts';
import { LocalState, catalogStateFromStore } from '../../src/local/state.ts';
import { serviceRegistrationFromJson } from '../../src/http/routes/agent.ts';
import { StateStore } from '../../src/state/store.ts';
import type { CheckServiceNode, ServiceNode } from '../../src/state/types.ts';
import { harness, NODE, NODE_ID } from './helpers.ts';

type Obj = Record<string, unknown>;

const WEB = {
  Name: 'web', Port: 8080, Tags: ['v1'], Meta: { version: '2' },
  Check: { TTL: '30s' },
  Connect: {
    SidecarService: {
      Proxy: {
        // Consul's JSON takes snake_case and any letter case in upstreams too.
        upstreams: [
          { destination_name: 'db', local_bind_port: 9191 },
          { DestinationName: 'cache', Datacenter: 'dc2', LocalBindPort: 9292, LocalBindAddress: '127.0.0.2' },
        ],
      },
    },
  },
};

function withPorts(min: number, max: number) {
  return { config: { ports: { ...defaults().ports, sidecarMinPort: min, sidecarMaxPort: max } } };
}

describe('sidecar registration (PUT /v1/agent/service/register)', () => {
  test('registers <id>-sidecar-proxy with Consul\'s defaults, upstreams and default checks', async () => {
    const h = harness();
    const res = await h.req('PUT', '/v1/agent/service/register', WEB);
    assert.equal(res.statusCode, 200, res.body);

    const proxy = await h.json<Obj>('GET', '/v1/agent/service/web-sidecar-proxy');
    assert.equal(proxy.status, 200);
    const { ContentHash: _hash, ...rest } = proxy.body;
    assert.deepEqual(rest, {
      Kind: 'connect-proxy', ID: 'web-sidecar-proxy', Service: 'web-sidecar-proxy', Tags: ['v1'], Meta: { version: '2' },
      Port: 21000, Address: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
      Proxy: {
        DestinationServiceName: 'web', DestinationServiceID: 'web', LocalServiceAddress: '127.0.0.1', LocalServicePort: 8080,
        Upstreams: [
          { DestinationType: 'service', DestinationName: 'db', Datacenter: '', LocalBindPort: 9191, MeshGateway: {} },
          { DestinationType: 'service', DestinationName: 'cache', Datacenter: 'dc2', LocalBindAddress: '127.0.0.2', LocalBindPort: 9292, MeshGateway: {} },
        ],
        MeshGateway: {}, Expose: {},
      },
      Datacenter: 'dc1',
    });
    // SidecarService is registration sugar: the service itself does not keep it.
    const web = await h.json<Obj>('GET', '/v1/agent/service/web');
    assert.equal(web.body.Connect, undefined);

    const checks = await h.json<Record<string, Obj>>('GET', '/v1/agent/checks');
    assert.deepEqual(Object.keys(checks.body).sort(), ['service:web', 'service:web-sidecar-proxy:1', 'service:web-sidecar-proxy:2']);
    const tcp = checks.body['service:web-sidecar-proxy:1']!;
    assert.equal(tcp.Name, 'Connect Sidecar Listening');
    assert.equal(tcp.Type, 'tcp');
    assert.equal(tcp.Interval, '10s');
    assert.deepEqual(tcp.Definition, { TCP: '127.0.0.1:21000', Interval: '10s' });
    const alias = checks.body['service:web-sidecar-proxy:2']!;
    assert.equal(alias.Name, 'Connect Sidecar Aliasing web');
    assert.equal(alias.Type, 'alias');
    assert.equal(alias.ServiceID, 'web-sidecar-proxy');

    const cat = await h.json<ServiceNode[]>('GET', '/v1/catalog/service/web-sidecar-proxy');
    assert.equal(cat.body.length, 1);
    assert.equal(cat.body[0]!.ServiceKind, 'connect-proxy');
    assert.equal(cat.body[0]!.ServicePort, 21000);
    assert.equal(cat.body[0]!.ServiceProxy?.DestinationServiceName, 'web');
    // What the catalog stored is what the agent holds: anti-entropy finds nothing to write.
    assert.equal(await h.backend.local.syncFull(), 0);
    await h.close();
  });

  test('ports: first free of the range among this agent\'s services, kept on re-registration, explicit port honoured', async () => {
    const h = harness(withPorts(21000, 21002));
    const reg = (body: unknown) => h.req('PUT', '/v1/agent/service/register', body);
    const port = (id: string) => h.backend.local.service(id)?.service.Port;
    // A service already using 21000 (not a sidecar) counts too.
    assert.equal((await reg({ Name: 'other', Port: 21000 })).statusCode, 200);
    assert.equal((await reg({ Name: 'web', Port: 80, Connect: { SidecarService: {} } })).statusCode, 200);
    assert.equal(port('web-sidecar-proxy'), 21001);
    assert.equal((await reg({ Name: 'api', Port: 81, Connect: { SidecarService: {} } })).statusCode, 200);
    assert.equal(port('api-sidecar-proxy'), 21002);
    assert.equal((await reg({ Name: 'web', Port: 80, Tags: ['again'], Connect: { SidecarService: {} } })).statusCode, 200);
    assert.equal(port('web-sidecar-proxy'), 21001, 'a re-registered sidecar keeps its port');
    assert.deepEqual(h.backend.local.service('web-sidecar-proxy')?.service.Tags, ['again']);
    assert.equal((await reg({ Name: 'db', Port: 82, Connect: { SidecarService: { Port: 30000 } } })).statusCode, 200);
    assert.equal(port('db-sidecar-proxy'), 30000);

    // Range exhausted: Consul's error (an AddService failure: 500) and nothing registered.
    const before = h.store.lastIndex();
    const full = await reg({ Name: 'cache', Port: 83, Connect: { SidecarService: {} } });
    assert.equal(full.statusCode, 500);
    assert.equal(full.body, 'no port provided for sidecar_service and none left in the configured range [21000, 21002]');
    assert.equal(h.backend.local.service('cache'), undefined);
    assert.equal(h.store.lastIndex(), before);

    // Deregistering a sidecar's service frees its port for the next one.
    assert.equal((await h.req('PUT', '/v1/agent/service/deregister/api')).statusCode, 200);
    assert.equal((await reg({ Name: 'cache', Port: 83, Connect: { SidecarService: {} } })).statusCode, 200);
    assert.equal(port('cache-sidecar-proxy'), 21002);
    await h.close();
  });

  test('assignment disabled (ports 0): Consul\'s error unless the sidecar names its port', async () => {
    const h = harness(withPorts(0, 0));
    const res = await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Connect: { SidecarService: {} } });
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'no port provided for sidecar_service and auto-assignment disabled in config');
    const ok = await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Connect: { SidecarService: { Port: 21000 } } });
    assert.equal(ok.statusCode, 200, ok.body);
    await h.close();
  });

  test('two sidecars registered at once never share a port', async () => {
    const h = harness();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const results = await Promise.all(names.map((n) => h.req('PUT', '/v1/agent/service/register', { Name: n, Port: 80, Connect: { SidecarService: {} } })));
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    const ports = names.map((n) => h.backend.local.service(`${n}-sidecar-proxy`)?.service.Port);
    assert.deepEqual([...ports].sort(), [21000, 21001, 21002, 21003, 21004, 21005]);
    await h.close();
  });

  test('deregistering the service removes its sidecar (local state, catalog, checks); a sidecar alone can be removed', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', WEB);
    assert.equal((await h.req('PUT', '/v1/agent/service/deregister/web')).statusCode, 200);
    assert.equal(h.backend.local.service('web-sidecar-proxy'), undefined);
    assert.deepEqual(h.backend.local.checks(), []);
    assert.deepEqual(Object.keys(h.store.services().value), []);
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth']);

    await h.req('PUT', '/v1/agent/service/register', WEB);
    assert.equal((await h.req('PUT', '/v1/agent/service/deregister/web-sidecar-proxy')).statusCode, 200);
    assert.ok(h.backend.local.service('web'));
    assert.equal((await h.req('PUT', '/v1/agent/service/deregister/web')).statusCode, 200);
    await h.close();
  });

  test('a service registered directly under a sidecar\'s ID is not removed with the service of that name', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80 });
    await h.req('PUT', '/v1/agent/service/register', {
      Name: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000, Proxy: { DestinationServiceName: 'web' },
    });
    await h.req('PUT', '/v1/agent/service/deregister/web');
    assert.ok(h.backend.local.service('web-sidecar-proxy'), 'Consul removes only a LocallyRegisteredAsSidecar one');
    await h.close();
  });

  test('invalid sidecar definitions: 400 with Consul\'s text, nothing registered', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    const cases: [Obj, string][] = [
      [{ Connect: { SidecarService: {} } }, 'Validation failed: 1 error occurred:\n\t* A SidecarService cannot have a nested SidecarService\n\n'],
      [{ ID: 'mine' }, 'Validation failed: 1 error occurred:\n\t* A SidecarService cannot specify an ID as this is managed by the agent\n\n'],
      [{ Kind: 'mesh-gateway' }, 'Failed Validation: 5 errors occurred:\n\t* Port must be non-zero for a mesh-gateway\n\t'
        + '* The Proxy.DestinationServiceName configuration is invalid for a mesh-gateway\n\t'
        + '* The Proxy.DestinationServiceID configuration is invalid for a mesh-gateway\n\t'
        + '* The Proxy.LocalServiceAddress configuration is invalid for a mesh-gateway\n\t'
        + '* The Proxy.LocalServicePort configuration is invalid for a mesh-gateway\n\n'],
      [{ Kind: 'bogus' }, 'Invalid SidecarService: Invalid service kind: "bogus"'],
      [{ Proxy: { Upstreams: [{ DestinationName: 'db' }] } }, 'Failed Validation: 1 error occurred:\n\t* upstream local bind port or local socket path must be defined and nonzero\n\n'],
      // The port is assigned after validation, so Consul reports the native port rule too.
      [{ Connect: { Native: true } }, 'Failed Validation: 2 errors occurred:\n\t* A Proxy cannot also be Connect Native, only typical services\n\t'
        + '* Port or SocketPath must be set for a Connect native service.\n\n'],
      [{ Meta: { 'consul-x': '1' } }, "Invalid SidecarService: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for internal use"],
      [{ Check: { TCP: '127.0.0.1:1' } }, 'Invalid check in sidecar_service: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks'],
      [{ Bogus: 1 }, 'Request decode failed: json: unknown field "Bogus"'],
      [{ Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 'x' }] } }, 'Request decode failed: json: cannot unmarshal string into Go struct field ServiceDefinition.Proxy.Upstreams.LocalBindPort of type int'],
    ];
    for (const [sidecar, text] of cases) {
      const res = await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Connect: { SidecarService: sidecar } });
      assert.equal(res.statusCode, 400, JSON.stringify(sidecar));
      assert.equal(res.body, text, JSON.stringify(sidecar));
    }
    const gw = await h.req('PUT', '/v1/agent/service/register', { Name: 'gw', Kind: 'mesh-gateway', Port: 443, Connect: { SidecarService: {} } });
    assert.equal(gw.statusCode, 400);
    assert.equal(gw.body, 'Validation failed: 1 error occurred:\n\t* A mesh-gateway cannot have a sidecar service defined\n\n');
    assert.equal(h.store.lastIndex(), before);
    assert.deepEqual(h.backend.local.services(), []);
    await h.close();
  });
});

describe('connect queries (GET /v1/health/connect/:service, /v1/catalog/connect/:service)', () => {
  test('list the service\'s proxies and Connect-native instances; ?passing, ?filter, blocking', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', WEB);
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', ID: 'web-native', Port: 8443, Connect: { Native: true } });
    await h.req('PUT', '/v1/agent/service/register', { Name: 'api', Port: 81, Connect: { SidecarService: {} } });

    const all = await h.json<CheckServiceNode[]>('GET', '/v1/health/connect/web');
    assert.equal(all.status, 200);
    assert.deepEqual(all.body.map((r) => r.Service.ID).sort(), ['web-native', 'web-sidecar-proxy']);
    const proxyRow = all.body.find((r) => r.Service.ID === 'web-sidecar-proxy')!;
    assert.deepEqual(proxyRow.Checks.map((c) => c.CheckID), ['serfHealth', 'service:web-sidecar-proxy:1', 'service:web-sidecar-proxy:2']);
    const cat = await h.json<ServiceNode[]>('GET', '/v1/catalog/connect/web');
    assert.deepEqual(cat.body.map((r) => r.ServiceID).sort(), ['web-native', 'web-sidecar-proxy']);
    const filtered = await h.json<CheckServiceNode[]>('GET', `/v1/health/connect/web?filter=${encodeURIComponent('Service.Kind == "connect-proxy"')}`);
    assert.deepEqual(filtered.body.map((r) => r.Service.ID), ['web-sidecar-proxy']);
    // The sidecar's checks are critical until it listens: not passing.
    const passing = await h.json<CheckServiceNode[]>('GET', '/v1/health/connect/web?passing');
    assert.deepEqual(passing.body.map((r) => r.Service.ID), ['web-native']);

    // A blocking query wakes when the proxy's health changes, and then lists it as passing.
    const index = Number(passing.headers['x-consul-index']);
    const waiting = h.json<CheckServiceNode[]>('GET', `/v1/health/connect/web?passing&index=${index}&wait=30s`);
    for (const id of ['service:web-sidecar-proxy:1', 'service:web-sidecar-proxy:2']) {
      const cur = h.store.nodeChecks(NODE).value.find((c) => c.CheckID === id)!;
      h.apply({ type: 'catalogRegister', Node: NODE, ID: NODE_ID, Address: '127.0.0.1', SkipNodeUpdate: true, Check: { ...cur, Status: 'passing' } });
    }
    const woke = await waiting;
    assert.ok(Number(woke.headers['x-consul-index']) > index);
    assert.deepEqual(woke.body.map((r) => r.Service.ID).sort(), ['web-native', 'web-sidecar-proxy']);
    await h.close();
  });

  test('a service without proxies: empty list; deregistering the last proxy moves the index', async () => {
    const h = harness();
    const none = await h.json<unknown[]>('GET', '/v1/health/connect/nothing');
    assert.deepEqual(none.body, []);
    await h.req('PUT', '/v1/agent/service/register', WEB);
    const before = await h.json<unknown[]>('GET', '/v1/health/connect/web');
    assert.equal(before.body.length, 1);
    await h.req('PUT', '/v1/agent/service/deregister/web');
    const after = await h.json<unknown[]>('GET', '/v1/health/connect/web');
    assert.deepEqual(after.body, []);
    assert.ok(Number(after.headers['x-consul-index']) > Number(before.headers['x-consul-index']));
    await h.close();
  });
});

describe('sidecar checks run', () => {
  test('the alias check follows the service\'s health', async () => {
    const store = new StateStore();
    let index = 1;
    const apply = async (cmd: Parameters<StateStore['apply']>[1]) => store.apply(index++, cmd);
    const logger = pino({ level: 'silent' });
    const local = new LocalState({
      node: { Node: NODE, ID: NODE_ID, Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
      apply, catalogState: catalogStateFromStore(store),
      runChecks: { logger, enableScriptChecks: false, enableLocalScriptChecks: false },
    });
    try {
      const reg = serviceRegistrationFromJson(WEB);
      await local.addService(reg.service, reg.checks, { sidecar: reg.sidecar! });
      const alias = () => local.check('service:web-sidecar-proxy:2')?.check.Status;
      await local.updateTtlCheck('service:web', 'passing', 'ok');
      await waitFor(() => alias() === 'passing', 'alias passing after the service passes');
      await local.updateTtlCheck('service:web', 'critical', 'down');
      await waitFor(() => alias() === 'critical', 'alias critical after the service fails');
    } finally {
      local.close();
    }
  });
});

describe('the sidecar flag across restarts', () => {
  test('persisted with LocallyRegisteredAsSidecar; reloaded, the sidecar still goes with its service', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-sidecar-'));
    const store = new StateStore();
    let index = 1;
    const apply = async (cmd: Parameters<StateStore['apply']>[1]) => store.apply(index++, cmd);
    const node = { Node: NODE, ID: NODE_ID, Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} };
    try {
      const first = new LocalState({ node, apply, catalogState: catalogStateFromStore(store), persist: new FilePersistence(dir) });
      const reg = serviceRegistrationFromJson(WEB);
      await first.addService(reg.service, reg.checks, { sidecar: reg.sidecar! });
      first.close();

      const loaded = new FilePersistence(dir).load();
      assert.deepEqual(loaded.problems, []);
      assert.deepEqual([...loaded.sidecarIds], ['web-sidecar-proxy']);
      assert.deepEqual(loaded.services.map((s) => s.ID).sort(), ['web', 'web-sidecar-proxy']);
      assert.equal(loaded.services.find((s) => s.ID === 'web-sidecar-proxy')!.Port, 21000);
      assert.deepEqual(loaded.checks.map((c) => c.CheckID).sort(), ['service:web', 'service:web-sidecar-proxy:1', 'service:web-sidecar-proxy:2']);

      // What the agent does at start (agent.ts): services, then checks.
      const second = new LocalState({ node, apply, catalogState: catalogStateFromStore(store), persist: new FilePersistence(dir) });
      for (const s of loaded.services) await second.addService(s, [], { asSidecar: loaded.sidecarIds.has(s.ID) });
      for (const c of loaded.checks) await second.addCheck(c);
      assert.equal(second.service('web-sidecar-proxy')?.locallyRegisteredAsSidecar, true);
      await second.removeService('web');
      assert.equal(second.service('web-sidecar-proxy'), undefined);
      assert.deepEqual(new FilePersistence(dir).load().services, []);
      second.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sidecar_service in configuration files', () => {
  test('HCL with repeated upstreams blocks and its own check builds the same registration as the API', async () => {
    const { buildRuntimeConfig } = await import('../../src/config/runtime.ts');
    const { config } = buildRuntimeConfig(['-dev', '-hcl', `
service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      tags = ["proxy"]
      proxy {
        upstreams {
          destination_name = "db"
          local_bind_port = 9191
        }
        upstreams {
          destination_name = "cache"
          datacenter = "dc2"
          local_bind_port = 9292
        }
      }
      check {
        name = "listening"
        tcp = "127.0.0.1:21000"
        interval = "5s"
      }
    }
  }
}
`], {});
    const reg = serviceRegistrationFromJson(config.services[0]);
    assert.equal(reg.service.Connect, undefined);
    const sc = reg.sidecar!;
    assert.equal(sc.service.ID, 'web-sidecar-proxy');
    assert.equal(sc.service.Kind, 'connect-proxy');
    assert.deepEqual(sc.service.Tags, ['proxy']);
    assert.deepEqual(sc.service.Proxy?.Upstreams, [
      { DestinationType: 'service', DestinationName: 'db', Datacenter: '', LocalBindPort: 9191, MeshGateway: {} },
      { DestinationType: 'service', DestinationName: 'cache', Datacenter: 'dc2', LocalBindPort: 9292, MeshGateway: {} },
    ]);
    assert.deepEqual(sc.checks, [{ Name: 'listening', TCP: '127.0.0.1:21000', IntervalNs: 5e9 }]);
    // A nested sidecar in a file is refused like one sent to the API.
    const nested = buildRuntimeConfig(['-dev', '-hcl', 'service {\n  name = "web"\n  connect {\n    sidecar_service {\n      connect {\n        sidecar_service {}\n      }\n    }\n  }\n}\n'], {}).config;
    assert.throws(() => serviceRegistrationFromJson(nested.services[0]), /A SidecarService cannot have a nested SidecarService/);
  });
});
