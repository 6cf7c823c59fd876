// /v1/agent: local services and checks (and their catalog sync), maintenance, metrics, self, members.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRegistrationFromJson, serviceRegistrationFromJson } from '../../src/http/routes/agent.ts';
import { FakeTimers, harness, NODE, settle } from './helpers.ts';

describe('agent services', () => {
  test('register with checks; catalog/service shows it at once; case-insensitive keys', async () => {
    const h = harness();
    const res = await h.req('PUT', '/v1/agent/service/register', {
      name: 'web', id: 'web-1', port: 8080, address: '10.1.1.1', tags: ['v1'], meta: { version: '1.2' },
      weights: { passing: 3, warning: 1 }, taggedAddresses: { lan: { address: '10.1.1.1', port: 8080 } },
      connect: { native: true },
      checks: [{ name: 'ttl', ttl: '30s' }, { http: 'http://10.1.1.1:8080/health', interval: '10s', timeout: '1s' }],
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.body, '');

    const svcs = await h.json<Record<string, Record<string, unknown>>>('GET', '/v1/agent/services');
    assert.deepEqual(svcs.body['web-1'], {
      ID: 'web-1', Service: 'web', Tags: ['v1'], Meta: { version: '1.2' }, Port: 8080, Address: '10.1.1.1',
      TaggedAddresses: { lan: { Address: '10.1.1.1', Port: 8080 } }, Weights: { Passing: 3, Warning: 1 },
      EnableTagOverride: false, Connect: { Native: true }, Datacenter: 'dc1',
    });

    const checks = await h.json<Record<string, Record<string, unknown>>>('GET', '/v1/agent/checks');
    assert.deepEqual(Object.keys(checks.body).sort(), ['service:web-1:1', 'service:web-1:2']);
    const http = checks.body['service:web-1:2']!;
    assert.equal(http.Type, 'http');
    assert.equal(http.Status, 'critical');
    assert.equal(http.Interval, '10s');
    assert.deepEqual(http.Definition, { HTTP: 'http://10.1.1.1:8080/health', Interval: '10s', Timeout: '1s' });
    assert.equal(checks.body['service:web-1:1']!.Name, 'ttl');

    const catalog = await h.json<{ Node: string; ServiceID: string; ServiceMeta: object; ServiceWeights: object }[]>('GET', '/v1/catalog/service/web');
    assert.equal(catalog.body.length, 1);
    assert.equal(catalog.body[0]!.Node, NODE);
    assert.deepEqual(catalog.body[0]!.ServiceMeta, { version: '1.2' });
    assert.deepEqual(catalog.body[0]!.ServiceWeights, { Passing: 3, Warning: 1 });
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth', 'service:web-1:1', 'service:web-1:2']);

    const one = await h.json<Record<string, unknown>>('GET', '/v1/agent/service/web-1');
    assert.equal(one.body.ID, 'web-1');
    assert.match(String(one.body.ContentHash), /^[0-9a-f]{16}$/);
    assert.equal(one.headers['x-consul-contenthash'], one.body.ContentHash);
    const missing = await h.req('GET', '/v1/agent/service/nope');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.body, 'unknown service ID: nope');
    await h.close();
  });

  test('registration errors are 400 with Consul\'s text and change nothing', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    const cases: [unknown, string | RegExp][] = [
      [{ Name: 'x', Foo: 1 }, 'Request decode failed: json: unknown field "Foo"'],
      [{ Name: 'x', Check: { TTL: '10s', Bogus: true } }, 'Request decode failed: json: unknown field "Bogus"'],
      [{ Name: 'x', Port: '80' }, 'Request decode failed: json: cannot unmarshal string into Go struct field ServiceDefinition.Port of type int'],
      [{ Name: 'x', Tags: 'a' }, /^Request decode failed: json: cannot unmarshal string into Go struct field ServiceDefinition.Tags/],
      ['{"Name": "x"', /^Request decode failed: /],
      ['', 'Request decode failed: EOF'],
      [{ Port: 80 }, 'Missing service name'],
      [{ Name: 'x', Address: '0.0.0.0' }, 'Invalid service address'],
      [{ Name: 'x', Weights: { Passing: 0, Warning: 1 } }, 'Invalid Weights: Passing must be greater than 0'],
      [{ Name: 'x', Meta: { 'consul-x': 'v' } }, /^Invalid Service Meta: Couldn't load metadata pair \('consul-x', 'v'\): Key prefix 'consul-' is reserved/],
      [{ Name: 'x', Check: { HTTP: 'http://x' } }, 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks'],
      [{ Name: 'x', Check: { TTL: '10s', Interval: '10s' } }, 'Invalid check: Interval and TTL cannot both be specified'],
      [{ Name: 'x', Checks: [{ Name: 'c' }] }, 'Invalid check: TTL must be > 0 for TTL checks'],
      [{ Name: 'x', Check: { TTL: '10s', Status: 'ok' } }, "Status for checks must 'passing', 'warning', 'critical'"],
      [{ Name: 'x', Check: { TTL: '10' } }, /^Request decode failed: .*missing unit/],
      [{ Name: 'x', Kind: 'connect-proxy', Port: 1 }, /^Validation failed: Proxy.DestinationServiceName must be non-empty/],
      [{ Name: 'bad\u0001name' }, /control characters/],
    ];
    for (const [body, want] of cases) {
      const res = await h.req('PUT', '/v1/agent/service/register', body);
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} → ${res.body}`);
      if (typeof want === 'string') assert.equal(res.body, want);
      else assert.match(res.body, want);
    }
    assert.equal(h.store.lastIndex(), before);
    assert.deepEqual(h.backend.local.services(), []);
    await h.close();
  });

  test('an empty Check block is ignored, as in Consul', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/agent/service/register', { Name: 'x', Check: {} })).statusCode, 200);
    assert.deepEqual(h.backend.local.checks(), []);
    await h.close();
  });

  test('re-registering keeps check status; ?replace-existing-checks drops the ones not given', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Checks: [{ CheckID: 'a', TTL: '30s' }, { CheckID: 'b', TTL: '30s' }] });
    await h.req('PUT', '/v1/agent/check/pass/a');
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['new'], Checks: [{ CheckID: 'a', TTL: '30s' }] });
    assert.equal(h.backend.local.check('a')!.check.Status, 'passing');
    assert.ok(h.backend.local.check('b'), 'kept without replace-existing-checks');
    assert.deepEqual(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'b')!.ServiceTags, ['new']);
    await h.req('PUT', '/v1/agent/service/register?replace-existing-checks', { Name: 'web', Checks: [{ CheckID: 'a', TTL: '30s' }] });
    assert.equal(h.backend.local.check('b'), undefined);
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth', 'a']);
    await h.close();
  });

  test('deregister removes the service and its checks from both views; unknown IDs are 404', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Check: { TTL: '30s' } });
    assert.equal((await h.req('PUT', '/v1/agent/service/deregister/web')).statusCode, 200);
    assert.deepEqual(h.backend.local.services(), []);
    assert.deepEqual(h.backend.local.checks(), []);
    assert.deepEqual(h.store.serviceNodes('web').value, []);
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth']);
    const res = await h.req('PUT', '/v1/agent/service/deregister/web');
    assert.equal(res.statusCode, 404);
    assert.match(res.body, /^Unknown service ID "web"/);
    await h.close();
  });

  test('service and node maintenance add and remove critical checks', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web' });
    assert.equal((await h.req('PUT', '/v1/agent/service/maintenance/web?enable=true&reason=deploy')).statusCode, 200);
    const m = h.store.nodeChecks(NODE).value.find((c) => c.CheckID === '_service_maintenance:web')!;
    assert.equal(m.Status, 'critical');
    assert.equal(m.Notes, 'deploy');
    assert.equal(m.ServiceID, 'web');
    assert.deepEqual((await h.json<unknown[]>('GET', '/v1/health/service/web?passing')).body, []);
    await h.req('PUT', '/v1/agent/service/maintenance/web?enable=false');
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === '_service_maintenance:web'), undefined);

    await h.req('PUT', '/v1/agent/maintenance?enable=true');
    const n = h.store.nodeChecks(NODE).value.find((c) => c.CheckID === '_node_maintenance')!;
    assert.match(n.Notes, /^Maintenance mode is enabled for this node/);
    await h.req('PUT', '/v1/agent/maintenance?enable=false');
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === '_node_maintenance'), undefined);

    const cases: [string, number, string][] = [
      ['/v1/agent/maintenance', 400, 'Missing value for enable'],
      ['/v1/agent/maintenance?enable=maybe', 400, 'Invalid value for enable: "maybe"'],
      ['/v1/agent/service/maintenance/nope?enable=true', 404, 'No service registered with ID "nope"'],
      ['/v1/agent/service/maintenance/', 400, 'Missing service ID'],
    ];
    for (const [url, status, body] of cases) {
      const res = await h.req('PUT', url);
      assert.equal(res.statusCode, status, url);
      assert.equal(res.body, body);
    }
    await h.close();
  });

  test('?filter on agent/services and agent/checks', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Check: { TTL: '10s' } });
    await h.req('PUT', '/v1/agent/service/register', { Name: 'db', Port: 5432 });
    const svcs = await h.json<Record<string, unknown>>('GET', `/v1/agent/services?filter=${encodeURIComponent('Port == 5432')}`);
    assert.deepEqual(Object.keys(svcs.body), ['db']);
    const checks = await h.json<Record<string, unknown>>('GET', `/v1/agent/checks?filter=${encodeURIComponent('ServiceName == web')}`);
    assert.deepEqual(Object.keys(checks.body), ['service:web']);
    assert.equal((await h.req('GET', '/v1/agent/services?filter=%3D%3D')).statusCode, 400);
    await h.close();
  });

  test('agent/service/:id blocks on ?hash until the service changes', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web' });
    const first = await h.json<{ ContentHash: string }>('GET', '/v1/agent/service/web');
    const pending = h.json<{ ContentHash: string; Tags: string[] }>('GET', `/v1/agent/service/web?hash=${first.body.ContentHash}&wait=10s`);
    for (let i = 0; i < 1000 && h.backend.local!.waiterCount === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(h.backend.local!.waiterCount, 1, 'the read is parked on the local state');
    const t0 = performance.now();
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['x'] });
    const second = await pending;
    // Woken by the change, not by its 10 s wait (generous: speed is for the benchmarks).
    assert.ok(performance.now() - t0 < 3000, `answered ${performance.now() - t0} ms after the change`);
    assert.notEqual(second.body.ContentHash, first.body.ContentHash);
    assert.deepEqual(second.body.Tags, ['x']);
    await h.close();
  });
});

describe('registrations from config files (same decoder as the API)', () => {
  test('a service in the API JSON shape, as config/ produces it', async () => {
    const h = harness();
    const reg = serviceRegistrationFromJson({
      Name: 'api', Kind: 'typical', Port: 9000, Tags: ['x'],
      Checks: [{ ID: 'api-http', Name: 'http', HTTP: 'http://127.0.0.1:9000/', Interval: '10s' }, { Name: 'ttl', TTL: '1m' }],
    });
    assert.equal(reg.service.Kind, '');
    assert.equal(reg.checks[0]!.CheckID, 'api-http');
    await h.backend.local.addService(reg.service, reg.checks);
    assert.deepEqual(h.store.nodeChecks(NODE).value.map((c) => c.CheckID), ['serfHealth', 'api-http', 'service:api:2']);
    const check = checkRegistrationFromJson({ Name: 'disk', TTL: '30s' });
    assert.equal(check.CheckID, 'disk');
    assert.throws(() => serviceRegistrationFromJson({ Name: 'x', Bogus: 1 }), /Request decode failed: json: unknown field "Bogus"/);
    assert.throws(() => checkRegistrationFromJson({ Name: 'c' }), /Invalid check: TTL must be > 0/);
    await h.close();
  });

  test('names with control characters are refused as the API refuses them', () => {
    assert.throws(() => serviceRegistrationFromJson({ Name: 'a\u0000b' }), /^HttpError: Invalid service name "a\\u0000b": control characters are not allowed$|Invalid service name/);
    assert.throws(() => serviceRegistrationFromJson({ Name: 'api', Checks: [{ Name: 'x\u0000', TTL: '1m' }] }), /Invalid check name "x\\u0000": control characters are not allowed/);
    assert.throws(() => checkRegistrationFromJson({ Name: 'disk\n', TTL: '30s' }), /Invalid check name "disk\\n": control characters are not allowed/);
  });
});

describe('agent checks', () => {
  test('check register / pass / warn / fail / update / deregister, mirrored in the catalog', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/agent/check/register', { name: 'mem', ttl: '30s', notes: 'n' })).statusCode, 200);
    const status = () => h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'mem');
    assert.equal(status()!.Status, 'critical');
    await h.req('PUT', '/v1/agent/check/pass/mem?note=fine');
    assert.equal(status()!.Status, 'passing');
    assert.equal(status()!.Output, 'fine');
    await h.req('PUT', '/v1/agent/check/warn/mem');
    assert.equal(status()!.Status, 'warning');
    await h.req('PUT', '/v1/agent/check/fail/mem');
    assert.equal(status()!.Status, 'critical');
    assert.equal((await h.req('PUT', '/v1/agent/check/update/mem', { status: 'passing', output: 'all good' })).statusCode, 200);
    assert.equal(status()!.Output, 'all good');
    const before = h.store.lastIndex();
    await h.req('PUT', '/v1/agent/check/update/mem', { Status: 'passing', Output: 'all good' });
    assert.equal(h.store.lastIndex(), before, 'an unchanged status is not written again');
    assert.equal((await h.req('PUT', '/v1/agent/check/deregister/mem')).statusCode, 200);
    assert.equal(status(), undefined);
    await h.close();
  });

  test('check errors', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/check/register', { Name: 'http', HTTP: 'http://x', Interval: '10s' });
    const cases: [string, string, unknown, number, string | RegExp][] = [
      ['PUT', '/v1/agent/check/register', { TTL: '10s' }, 400, 'Missing check name'],
      ['PUT', '/v1/agent/check/register', { Name: 'c', TTL: '10s', Status: 'meh' }, 400, 'Bad check status'],
      ['PUT', '/v1/agent/check/register', { Name: 'c' }, 400, 'Invalid check: TTL must be > 0 for TTL checks'],
      ['PUT', '/v1/agent/check/register', { Name: 'c', TTL: '10s', ServiceID: 'nope' }, 404, 'ServiceID "nope" does not exist'],
      ['PUT', '/v1/agent/check/register', { Name: 'c', TTL: '10s', Extra: 1 }, 400, 'Request decode failed: json: unknown field "Extra"'],
      ['PUT', '/v1/agent/check/pass/nope', undefined, 404, 'CheckID "nope" does not have associated TTL'],
      ['PUT', '/v1/agent/check/pass/http', undefined, 404, 'CheckID "http" does not have associated TTL'],
      ['PUT', '/v1/agent/check/update/http', { Status: 'bad' }, 400, "Invalid check status: 'bad'"],
      ['PUT', '/v1/agent/check/deregister/nope', undefined, 404, /^Unknown check ID "nope"/],
      ['GET', '/v1/agent/check/pass/http', undefined, 405, 'method GET not allowed'],
    ];
    for (const [m, url, body, status, want] of cases) {
      const res = await h.req(m, url, body);
      assert.equal(res.statusCode, status, `${url} ${res.body}`);
      if (typeof want === 'string') assert.equal(res.body, want);
      else assert.match(res.body, want);
    }
    await h.close();
  });

  test('a TTL check that is not renewed turns critical with "TTL expired"', async () => {
    const timers = new FakeTimers();
    const h = harness({ timers });
    await h.req('PUT', '/v1/agent/check/register', { Name: 'beat', TTL: '10s' });
    await h.req('PUT', '/v1/agent/check/pass/beat?note=alive');
    timers.advance(9_000);
    await h.req('PUT', '/v1/agent/check/pass/beat?note=alive');
    timers.advance(9_000);
    await settle();
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'beat')!.Status, 'passing', 'renewed in time');
    timers.advance(1_001);
    await settle();
    const c = h.store.nodeChecks(NODE).value.find((x) => x.CheckID === 'beat')!;
    assert.equal(c.Status, 'critical');
    assert.equal(c.Output, 'TTL expired (last output before timeout follows): alive');
    await h.req('PUT', '/v1/agent/check/deregister/beat');
    assert.equal(timers.pending, 0, 'the timer is gone with the check');
    await h.close();
  });
});

describe('agent info endpoints', () => {
  test('self and members', async () => {
    const h = harness();
    const self = await h.json<{ Config: Record<string, unknown>; Member: Record<string, unknown>; Stats: Record<string, Record<string, string>> }>('GET', '/v1/agent/self');
    assert.equal(self.body.Config.NodeName, NODE);
    assert.equal(self.body.Config.Datacenter, 'dc1');
    assert.equal(self.body.Config.Server, true);
    assert.equal(self.body.Member.Name, NODE);
    assert.equal(self.body.Stats.consul!.server, 'true');
    const members = await h.json<{ Name: string; Status: number; Port: number; Tags: Record<string, string> }[]>('GET', '/v1/agent/members');
    assert.equal(members.body.length, 1);
    const m = members.body[0]!;
    assert.equal(m.Name, NODE);
    assert.equal(m.Status, 1);
    assert.equal(m.Port, 8301);
    assert.equal(m.Tags.role, 'consul');
    assert.equal(m.Tags.dc, 'dc1');
    assert.equal(m.Tags.port, '8300');
    assert.ok(m.Tags.build && m.Tags.vsn);
    // This harness has no WAN pool (backend.wan), as a client agent: Consul's nil list, null
    // (test/federation has real pools).
    const wan = await h.json<null>('GET', '/v1/agent/members?wan=1');
    assert.equal(wan.body, null);
    await h.close();
  });

  test('metrics: Consul\'s JSON shape and Prometheus text with Consul names', async () => {
    const h = harness();
    await h.req('PUT', '/v1/kv/a', 'b');
    await h.req('PUT', '/v1/txn', [{ KV: { Verb: 'get', Key: 'a' } }]);
    await h.req('PUT', '/v1/txn', [{ KV: { Verb: 'set', Key: 't', Value: '' } }]);
    const json = await h.json<{ Timestamp: string; Gauges: unknown[]; Points: unknown[]; Counters: unknown[]; Samples: { Name: string; Count: number; Labels: Record<string, string> }[] }>('GET', '/v1/agent/metrics');
    assert.match(json.body.Timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$/);
    assert.ok(Array.isArray(json.body.Gauges) && Array.isArray(json.body.Points) && Array.isArray(json.body.Counters));
    const kvs = json.body.Samples.find((s) => s.Name === 'consul.kvs.apply')!;
    assert.equal(kvs.Count, 1);
    assert.ok(json.body.Samples.some((s) => s.Name === 'consul.api.http' && s.Labels.path === 'v1_kv__'));
    const prom = await h.req('GET', '/v1/agent/metrics?format=prometheus');
    assert.match(String(prom.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(prom.body, /^# HELP consul_kvs_apply/m);
    assert.match(prom.body, /consul_kvs_apply\{quantile="0\.5"\}/);
    assert.match(prom.body, /consul_txn_apply_count 1/);
    assert.match(prom.body, /consul_txn_read_count 1/);
    const om = await h.req('GET', '/v1/agent/metrics', undefined, { accept: 'application/openmetrics-text' });
    assert.match(om.body, /consul_kvs_apply/);
    await h.close();
  });

  test('reload and leave call the backend; without one they are 500', async () => {
    const h = harness();
    assert.equal((await h.req('PUT', '/v1/agent/reload')).statusCode, 500);
    let reloads = 0;
    let leaves = 0;
    h.backend.reload = async () => void reloads++;
    h.backend.leave = async () => void leaves++;
    assert.equal((await h.req('PUT', '/v1/agent/reload')).statusCode, 200);
    assert.equal((await h.req('PUT', '/v1/agent/leave')).statusCode, 200);
    assert.equal((await h.req('GET', '/v1/agent/leave')).statusCode, 405);
    assert.equal(reloads, 1);
    assert.equal(leaves, 1);
    await h.close();
  });
});
