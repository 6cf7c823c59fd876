import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './helpers.ts';
import type { Command } from '../../src/state/types.ts';

const NODE_ID = '6a9a2c8e-1f4b-4c1e-9d5b-0a1b2c3d4e5f';
const OTHER_ID = '0b9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c';

describe('catalog register: validation (Catalog.Register\'s rules)', () => {
  const cases: { name: string; cmd: Command; code: string; message: string | RegExp }[] = [
    { name: 'no node', cmd: { type: 'catalogRegister', Node: '', Address: '1.2.3.4' }, code: 'ERR_INVALID_REQUEST', message: 'Must provide node' },
    { name: 'no address', cmd: { type: 'catalogRegister', Node: 'n1' }, code: 'ERR_INVALID_REQUEST', message: 'Must provide address if SkipNodeUpdate is not set' },
    { name: 'bad node ID', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', ID: 'not-a-uuid' }, code: 'ERR_INVALID_REQUEST', message: /^Bad node ID: / },
    { name: 'service ID without name', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Service: { ID: 'x', Service: '' } }, code: 'ERR_INVALID_REQUEST', message: 'Must provide service name with ID' },
    { name: 'service without name or ID', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Service: { Service: '' } }, code: 'ERR_INVALID_REQUEST', message: 'Must provide service name' },
    { name: 'wildcard service address', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Service: { Service: 'web', Address: '0.0.0.0' } }, code: 'ERR_INVALID_REQUEST', message: 'Invalid service address' },
    { name: 'bad check status', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Check: { CheckID: 'c', Status: 'maintenance' as never } }, code: 'ERR_INVALID_REQUEST', message: /^Invalid check status "maintenance"/ },
    { name: 'check for another node', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Check: { CheckID: 'c', Node: 'n2' } }, code: 'ERR_INVALID_REQUEST', message: 'check node "n2" does not match node "n1"' },
    { name: 'check on a missing service', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Check: { CheckID: 'c', ServiceID: 'nope' } }, code: 'ERR_MISSING_SERVICE', message: 'failed inserting check on node "n1": Missing service registration' },
    { name: 'tags of the wrong type', cmd: { type: 'catalogRegister', Node: 'n1', Address: 'a', Service: { Service: 'web', Tags: 'v1' as never } }, code: 'ERR_INVALID_REQUEST', message: /Service.Tags must be a list of strings/ },
    { name: 'service on a missing node with SkipNodeUpdate', cmd: { type: 'catalogRegister', Node: 'ghost', SkipNodeUpdate: true, Service: { Service: 'web' }, Check: { CheckID: 'c', ServiceID: 'nope' } }, code: 'ERR_MISSING_SERVICE', message: /Missing service registration/ },
  ];
  for (const c of cases) {
    test(`${c.name} is refused and leaves no trace`, () => {
      const h = new Harness();
      const err = h.fail(c.cmd);
      assert.equal(err.code, c.code);
      if (typeof c.message === 'string') assert.equal(err.message, c.message);
      else assert.match(err.message, c.message);
      assert.deepEqual(h.store.nodes().value, []);
      assert.deepEqual(h.store.services().value, {});
      assert.equal(h.store.tableIndex('nodes', 'services', 'checks'), 1);
    });
  }
});

describe('catalog register and queries', () => {
  test('node, service and checks land with indexes; ID defaults to the name; Status to critical', () => {
    const h = new Harness();
    h.ok({
      type: 'catalogRegister', Node: 'n1', ID: NODE_ID, Address: '10.0.0.1', Datacenter: 'dc1', NodeMeta: { rack: 'r1' },
      TaggedAddresses: { wan: '1.1.1.1' }, Service: { Service: 'web', Tags: ['v1', 'primary'], Port: 8080, Meta: { a: 'b' } },
      Checks: [{ Name: 'web-alive', ServiceID: 'web' }, { CheckID: 'serfHealth', Status: 'passing' }],
    });
    const node = h.store.node('n1').value!;
    assert.deepEqual(node, { ID: NODE_ID, Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { wan: '1.1.1.1' }, Meta: { rack: 'r1' }, CreateIndex: 1, ModifyIndex: 1 });
    const ns = h.store.nodeServices('n1').value!;
    assert.equal(ns.Services.length, 1);
    assert.deepEqual(ns.Services[0], {
      Kind: '', ID: 'web', Service: 'web', Tags: ['v1', 'primary'], Address: '', TaggedAddresses: {}, Meta: { a: 'b' }, Port: 8080,
      Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, CreateIndex: 1, ModifyIndex: 1,
    });
    const checks = h.store.nodeChecks('n1').value;
    assert.deepEqual(checks.map((c) => [c.CheckID, c.Status, c.ServiceName, c.ServiceTags]), [
      ['serfHealth', 'passing', '', []],
      ['web-alive', 'critical', 'web', ['v1', 'primary']],
    ]);
    assert.deepEqual(h.store.services().value, { web: ['primary', 'v1'] });
  });

  test('lookups are case-insensitive for nodes, services and checks (Consul\'s memdb indexes)', () => {
    const h = new Harness();
    h.node('Node-A');
    h.service('Node-A', 'Web', { status: 'passing' });
    assert.equal(h.store.node('node-a').value?.Node, 'Node-A');
    assert.equal(h.store.serviceNodes('WEB').value.length, 1);
    assert.equal(h.store.nodeChecks('NODE-A').value.length, 2);
    h.ok({ type: 'catalogDeregister', Node: 'node-a', ServiceID: 'WEB' });
    assert.equal(h.store.serviceNodes('web').value.length, 0);
  });

  test('re-registering the same thing moves no index and wakes nobody', async () => {
    const h = new Harness();
    const reg: Command = { type: 'catalogRegister', Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', Service: { Service: 'web', Port: 80 }, Check: { CheckID: 'c', ServiceID: 'web', Status: 'passing' } };
    h.ok(reg);
    const ws = h.store.watchSet();
    const before = h.store.healthServiceNodes('web', {}, ws).index;
    const ac = new AbortController();
    const waiting = ws.wait(ac.signal);
    h.ok(reg);
    assert.equal(h.store.healthServiceNodes('web').index, before);
    assert.equal(h.store.tableIndex('nodes', 'services', 'checks'), 1);
    ac.abort();
    assert.equal(await waiting, false);
  });

  test('serviceNodes: flattened rows in node order; tag filter is case-insensitive and needs every tag', () => {
    const h = new Harness();
    h.node('b-node', '10.0.0.2');
    h.node('a-node', '10.0.0.1');
    h.service('b-node', 'web', { tags: ['v1', 'Primary'], port: 81 });
    h.service('a-node', 'web', { tags: ['v2'], port: 80 });
    const all = h.store.serviceNodes('web').value;
    assert.deepEqual(all.map((s) => [s.Node, s.Address, s.ServiceID, s.ServicePort, s.Datacenter]), [['a-node', '10.0.0.1', 'web', 80, 'dc1'], ['b-node', '10.0.0.2', 'web', 81, 'dc1']]);
    assert.deepEqual(h.store.serviceNodes('web', { tag: 'primary' }).value.map((s) => s.Node), ['b-node']);
    assert.deepEqual(h.store.serviceNodes('web', { tag: ['v1', 'primary'] }).value.map((s) => s.Node), ['b-node']);
    assert.deepEqual(h.store.serviceNodes('web', { tag: ['v1', 'v2'] }).value, []);
  });

  test('healthServiceNodes: node-level checks (serfHealth first) then the service\'s; passingOnly needs all of them passing', () => {
    const h = new Harness();
    h.node('n1');
    h.node('n2');
    h.node('n3');
    h.service('n1', 'web', { status: 'passing' });
    h.service('n2', 'web', { status: 'warning' });
    h.service('n3', 'web', { status: 'passing' });
    // n3 goes into maintenance: Consul models it as a critical node-level check.
    h.ok({ type: 'catalogRegister', Node: 'n3', SkipNodeUpdate: true, Check: { CheckID: '_node_maintenance', Name: 'Node Maintenance Mode', Status: 'critical' } });
    const all = h.store.healthServiceNodes('web').value;
    assert.deepEqual(all.map((e) => [e.Node.Node, e.Checks.map((c) => c.CheckID)]), [
      ['n1', ['serfHealth', 'service:web']],
      ['n2', ['serfHealth', 'service:web']],
      ['n3', ['serfHealth', '_node_maintenance', 'service:web']],
    ]);
    assert.deepEqual(h.store.healthServiceNodes('web', { passingOnly: true }).value.map((e) => e.Node.Node), ['n1']);
    // A failing serfHealth (the node is down) hides a service whose own check passes.
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' } });
    assert.deepEqual(h.store.healthServiceNodes('web', { passingOnly: true }).value, []);
  });

  test('per-service index: moves for that service\'s changes only; a vanished service answers the extinction index', () => {
    const h = new Harness();
    h.node('n1'); // 1
    h.service('n1', 'web', { status: 'passing' }); // 2
    h.service('n1', 'db'); // 3
    assert.equal(h.store.healthServiceNodes('web').index, 2);
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'service:web', ServiceID: 'web', Status: 'warning' } }); // 4
    assert.equal(h.store.healthServiceNodes('web').index, 4);
    assert.equal(h.store.serviceNodes('db').index, 3, "web's check does not move db");
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' } }); // 5
    assert.equal(h.store.serviceNodes('db').index, 5, 'a node-level check moves every service on the node');
    h.ok({ type: 'catalogDeregister', Node: 'n1', ServiceID: 'web' }); // 6
    assert.deepEqual(h.store.healthServiceNodes('web'), { index: 6, value: [] });
    assert.equal(h.store.serviceNodes('never-existed').index, 6, 'unknown services answer the last extinction index');
  });

  test('nodeChecks lists serfHealth first even when another ID sorts before it', () => {
    const h = new Harness();
    h.node('n1');
    h.ok({ type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Checks: [{ CheckID: '_node_maintenance', Status: 'critical' }, { CheckID: 'disk', Status: 'passing' }] });
    assert.deepEqual(h.store.nodeChecks('n1').value.map((c) => c.CheckID), ['serfHealth', '_node_maintenance', 'disk']);
  });

  test('checksInState and serviceChecks', () => {
    const h = new Harness();
    h.node('n1');
    h.node('n2', '10.0.0.2', 'critical');
    h.service('n1', 'web', { status: 'warning' });
    h.service('n2', 'web', { status: 'passing' });
    assert.deepEqual(h.store.checksInState('critical').value.map((c) => `${c.Node}/${c.CheckID}`), ['n2/serfHealth']);
    assert.deepEqual(h.store.checksInState('passing').value.map((c) => `${c.Node}/${c.CheckID}`), ['n1/serfHealth', 'n2/service:web']);
    assert.equal(h.store.checksInState('any').value.length, 4);
    assert.deepEqual(h.store.serviceChecks('web').value.map((c) => `${c.Node}/${c.Status}`), ['n1/warning', 'n2/passing']);
  });

  test('deregistering a service removes its checks; a check alone; the node removes everything', () => {
    const h = new Harness();
    h.node('n1');
    h.service('n1', 'web', { status: 'passing' });
    h.service('n1', 'db', { status: 'passing' });
    h.ok({ type: 'catalogDeregister', Node: 'n1', ServiceID: 'web' });
    assert.deepEqual(h.store.nodeChecks('n1').value.map((c) => c.CheckID), ['serfHealth', 'service:db']);
    h.ok({ type: 'catalogDeregister', Node: 'n1', CheckID: 'service:db' });
    assert.deepEqual(h.store.nodeChecks('n1').value.map((c) => c.CheckID), ['serfHealth']);
    h.ok({ type: 'catalogDeregister', Node: 'n1' });
    assert.equal(h.store.node('n1').value, null);
    assert.deepEqual(h.store.services().value, {});
    assert.deepEqual(h.store.checksInState('any').value, []);
    assert.equal(h.store.nodeServices('n1').value, null);
  });

  test('deregistering what does not exist succeeds and changes nothing', () => {
    const h = new Harness();
    h.ok({ type: 'catalogDeregister', Node: 'ghost' });
    h.ok({ type: 'catalogDeregister', Node: 'ghost', ServiceID: 'x' });
    assert.equal(h.store.tableIndex('nodes', 'services', 'checks'), 1);
  });

  test('node IDs: a healthy node keeps its name; an ID moving to a new name renames the node', () => {
    const h = new Harness();
    h.ok({ type: 'catalogRegister', Node: 'n1', ID: NODE_ID, Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } });
    h.service('n1', 'web');
    const err = h.fail({ type: 'catalogRegister', Node: 'n1', ID: OTHER_ID, Address: '10.0.0.9' });
    assert.equal(err.code, 'ERR_NODE_ID_CONFLICT');
    assert.match(err.message, /Node name n1 is reserved by node 6a9a2c8e-1f4b-4c1e-9d5b-0a1b2c3d4e5f with name n1 \(10\.0\.0\.1\)/);
    h.ok({ type: 'catalogRegister', Node: 'renamed', ID: NODE_ID, Address: '10.0.0.1' });
    assert.equal(h.store.node('n1').value, null);
    assert.equal(h.store.node('renamed').value?.ID, NODE_ID);
    assert.deepEqual(h.store.serviceNodes('web').value, [], 'the old name\'s services went with it');
  });

  test('a critical (dead) node\'s name may be taken by a new ID', () => {
    const h = new Harness();
    h.ok({ type: 'catalogRegister', Node: 'n1', ID: NODE_ID, Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'critical' } });
    h.ok({ type: 'catalogRegister', Node: 'n1', ID: OTHER_ID, Address: '10.0.0.2' });
    assert.equal(h.store.node('n1').value?.ID, OTHER_ID);
  });

  test('SkipNodeUpdate leaves the node row alone', () => {
    const h = new Harness();
    h.node('n1', '10.0.0.1');
    h.ok({ type: 'catalogRegister', Node: 'n1', Address: '9.9.9.9', SkipNodeUpdate: true, Service: { Service: 'web' } });
    assert.equal(h.store.node('n1').value?.Address, '10.0.0.1');
    assert.equal(h.store.node('n1').value?.ModifyIndex, 1);
  });

  test('a service renamed under the same ID moves both names\' indexes', () => {
    const h = new Harness();
    h.node('n1');
    h.service('n1', 'old', { id: 'svc1' }); // 2
    h.service('n1', 'new', { id: 'svc1' }); // 3
    assert.deepEqual(h.store.serviceNodes('old'), { index: 3, value: [] });
    assert.equal(h.store.serviceNodes('new').value.length, 1);
    assert.deepEqual(Object.keys(h.store.services().value), ['new']);
  });
});
