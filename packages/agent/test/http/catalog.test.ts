// /v1/catalog and /v1/health.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, NODE, type Harness } from './helpers.ts';

const OTHER_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';

async function registerOther(h: Harness): Promise<void> {
  const res = await h.req('PUT', '/v1/catalog/register', {
    node: 'n2', id: OTHER_ID, address: '10.0.0.2', nodemeta: { rack: 'r1' },
    service: { service: 'web', id: 'web-2', port: 8080, tags: ['v1', 'canary'] },
    checks: [
      { checkid: 'web-2-http', name: 'http', status: 'passing', serviceid: 'web-2', definition: { http: 'http://10.0.0.2:8080/health', interval: '10s' } },
      { checkid: 'n2-disk', name: 'disk', status: 'warning' },
    ],
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.body, 'true');
}

describe('catalog', () => {
  test('register (case-insensitive body) and read back through every catalog endpoint', async () => {
    const h = harness();
    await registerOther(h);
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Tags: ['v1'] });

    const nodes = await h.json<{ Node: string; Meta: Record<string, string> }[]>('GET', '/v1/catalog/nodes');
    assert.deepEqual(nodes.body.map((n) => n.Node).sort(), ['n2', NODE]);
    // The nodes table's index: registering a service on an existing node does not touch the node row.
    assert.equal(nodes.headers['x-consul-index'], '2');

    const services = await h.json('GET', '/v1/catalog/services');
    assert.deepEqual(services.body, { web: ['canary', 'v1'] });

    const web = await h.json<{ Node: string; ServiceID: string; ServicePort: number; NodeMeta: object }[]>('GET', '/v1/catalog/service/web');
    assert.deepEqual(web.body.map((s) => [s.Node, s.ServiceID, s.ServicePort]).sort(), [['n2', 'web-2', 8080], [NODE, 'web', 80]]);

    const tagged = await h.json<{ ServiceID: string }[]>('GET', '/v1/catalog/service/web?tag=canary');
    assert.deepEqual(tagged.body.map((s) => s.ServiceID), ['web-2']);
    const twoTags = await h.json<unknown[]>('GET', '/v1/catalog/service/web?tag=v1&tag=canary');
    assert.equal(twoTags.body.length, 1);
    assert.deepEqual((await h.json('GET', '/v1/catalog/service/nothing')).body, []);

    const node = await h.json<{ Node: { Node: string }; Services: Record<string, { Port: number }> }>('GET', '/v1/catalog/node/n2');
    assert.equal(node.body.Node.Node, 'n2');
    assert.equal(node.body.Services['web-2']!.Port, 8080);
    assert.deepEqual((await h.json('GET', '/v1/catalog/node/ghost')).body, null);

    const list = await h.json<{ Node: { Node: string }; Services: { ID: string }[] }>('GET', '/v1/catalog/node-services/n2');
    assert.deepEqual(list.body.Services.map((s) => s.ID), ['web-2']);
    assert.deepEqual((await h.json('GET', '/v1/catalog/node-services/ghost')).body, { Node: null, Services: [] });

    assert.deepEqual((await h.json('GET', '/v1/catalog/datacenters')).body, ['dc1']);
    await h.close();
  });

  test('?filter and ?node-meta', async () => {
    const h = harness();
    await registerOther(h);
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Tags: ['v1'] });
    const f = encodeURIComponent;
    const byPort = await h.json<{ ServiceID: string }[]>('GET', `/v1/catalog/service/web?filter=${f('ServicePort == 8080')}`);
    assert.deepEqual(byPort.body.map((s) => s.ServiceID), ['web-2']);
    const nodes = await h.json<{ Node: string }[]>('GET', `/v1/catalog/nodes?filter=${f('Meta.rack == r1')}`);
    assert.deepEqual(nodes.body.map((n) => n.Node), ['n2']);
    const meta = await h.json<{ Node: string }[]>('GET', '/v1/catalog/nodes?node-meta=rack:r1');
    assert.deepEqual(meta.body.map((n) => n.Node), ['n2']);
    const svcs = await h.json('GET', `/v1/catalog/services?filter=${f('ServicePort == 80')}`);
    assert.deepEqual(svcs.body, { web: ['v1'] });
    const bad = await h.req('GET', `/v1/catalog/nodes?filter=${f('Nope ==')}`);
    assert.equal(bad.statusCode, 400);
    assert.match(bad.body, /^Failed to create boolean expression evaluator/);
    const badField = await h.req('GET', `/v1/catalog/service/web?filter=${f('NoSuchField == x')}`);
    assert.equal(badField.statusCode, 400);
    await h.close();
  });

  test('deregister a service, a check, a whole node', async () => {
    const h = harness();
    await registerOther(h);
    assert.equal((await h.req('PUT', '/v1/catalog/deregister', { Node: 'n2', CheckID: 'n2-disk' })).body, 'true');
    assert.deepEqual(h.store.nodeChecks('n2').value.map((c) => c.CheckID), ['web-2-http']);
    assert.equal((await h.req('PUT', '/v1/catalog/deregister', { Node: 'n2', ServiceID: 'web-2' })).body, 'true');
    assert.deepEqual(h.store.serviceNodes('web').value, []);
    assert.equal((await h.req('PUT', '/v1/catalog/deregister', { Node: 'n2' })).body, 'true');
    assert.equal(h.store.node('n2').value, null);
    await h.close();
  });

  test('bad registrations are 400 and change nothing', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    const cases: [string, unknown, RegExp][] = [
      ['/v1/catalog/register', {}, /^Must provide node$/],
      ['/v1/catalog/register', { Node: 'n' }, /^Must provide address/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', ID: 'nope' }, /^Bad node ID/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Service: { ID: 'x' } }, /^Must provide service name with ID$/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Service: { Service: 'w', Address: '0.0.0.0' } }, /^Invalid service address$/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Service: { Service: 'w', Port: 'x' } }, /^Request decode failed: json: cannot unmarshal string into Go struct field RegisterRequest.Service.Port of type int$/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Check: { CheckID: 'c', Status: 'bogus' } }, /^Invalid check status/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', NodeMeta: { 'bad key': 'v' } }, /^Invalid node metadata/],
      ['/v1/catalog/register', '[1,2]', /^Request decode failed: json: cannot unmarshal array/],
      ['/v1/catalog/register', '{"Node":', /^Request decode failed: /],
      ['/v1/catalog/register', '', /^Request decode failed: EOF$/],
      ['/v1/catalog/deregister', {}, /^Must provide node$/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Bogus: 1 }, /^Request decode failed: json: unknown field "Bogus"$/],
      ['/v1/catalog/register', { Node: 'n', Address: 'a', Service: { Service: 'w', Prot: 80 } }, /^Request decode failed: json: unknown field "Prot"$/],
      ['/v1/catalog/deregister', { Node: 'n', Service: 'x' }, /^Request decode failed: json: unknown field "Service"$/],
    ];
    for (const [url, body, re] of cases) {
      const res = await h.req('PUT', url, body);
      assert.equal(res.statusCode, 400, `${url} ${JSON.stringify(body)}: ${res.body}`);
      assert.match(res.body, re);
    }
    const dc = await h.req('PUT', '/v1/catalog/register', { Datacenter: 'dc9', Node: 'n', Address: 'a' });
    assert.equal(dc.statusCode, 500);
    assert.equal(dc.body, 'No path to datacenter');
    assert.equal(h.store.lastIndex(), before);
    await h.close();
  });
});

describe('health', () => {
  test('health/node lists serfHealth first', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/check/register', { Name: 'aaa-first-alphabetically', TTL: '30s' });
    const checks = await h.json<{ CheckID: string }[]>('GET', `/v1/health/node/${NODE}`);
    assert.equal(checks.body[0]!.CheckID, 'serfHealth');
    assert.deepEqual(checks.body.map((c) => c.CheckID).slice(1), ['aaa-first-alphabetically']);
    await h.close();
  });

  test('health/service with ?passing and ?tag, health/checks, health/state', async () => {
    const h = harness();
    await registerOther(h); // web-2 passing, but its node has a warning check
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v1'], Check: { TTL: '30s', Status: 'passing' } });
    const all = await h.json<{ Service: { ID: string }; Checks: { CheckID: string }[] }[]>('GET', '/v1/health/service/web');
    assert.equal(all.body.length, 2);
    const mine = all.body.find((e) => e.Service.ID === 'web')!;
    assert.deepEqual(mine.Checks.map((c) => c.CheckID), ['serfHealth', 'service:web']);

    const passing = await h.json<{ Service: { ID: string } }[]>('GET', '/v1/health/service/web?passing');
    assert.deepEqual(passing.body.map((e) => e.Service.ID), ['web']);
    assert.equal((await h.json<unknown[]>('GET', '/v1/health/service/web?passing=false')).body.length, 2);
    assert.equal((await h.req('GET', '/v1/health/service/web?passing=maybe')).statusCode, 400);
    const canary = await h.json<{ Service: { ID: string } }[]>('GET', '/v1/health/service/web?tag=canary&near=_agent');
    assert.deepEqual(canary.body.map((e) => e.Service.ID), ['web-2']);

    const svcChecks = await h.json<{ CheckID: string }[]>('GET', '/v1/health/checks/web');
    assert.deepEqual(svcChecks.body.map((c) => c.CheckID).sort(), ['service:web', 'web-2-http']);

    const warning = await h.json<{ CheckID: string }[]>('GET', '/v1/health/state/warning');
    assert.deepEqual(warning.body.map((c) => c.CheckID), ['n2-disk']);
    assert.equal((await h.json<unknown[]>('GET', '/v1/health/state/any')).body.length, 4);
    const bad = await h.req('GET', '/v1/health/state/sick');
    assert.equal(bad.statusCode, 400);
    assert.match(bad.body, /Invalid check state/);

    const filtered = await h.json<unknown[]>('GET', `/v1/health/service/web?filter=${encodeURIComponent('Service.Port == 8080')}`);
    assert.equal(filtered.body.length, 1);
    await h.close();
  });
});
