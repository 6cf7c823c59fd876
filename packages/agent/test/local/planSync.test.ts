// planSync: anti-entropy's pure decision (what to write so the catalog matches the agent), tested on
// plain data: a table of named cases, then a property against an oracle that applies the plan.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planSync, type LocalSnapshot, type SyncCommand } from '../../src/local/planSync.ts';
import type { CatalogNodeView } from '../../src/local/types.ts';
import type { HealthCheck, NodeService } from '../../src/state/types.ts';

const node = { Node: 'n1', ID: '11111111-2222-4333-8444-555555555555', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: { rack: 'a' } };
const catalogNode = { ...node, CreateIndex: 1, ModifyIndex: 1 };

const svc = (id: string, tags: string[] = []) => ({
  Kind: '' as const, ID: id, Service: id, Tags: tags, Address: '', TaggedAddresses: {}, Meta: {}, Port: 80,
  Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
});
const catalogSvc = (id: string, tags: string[] = []): NodeService => ({ ...svc(id, tags), CreateIndex: 2, ModifyIndex: 2 } as NodeService);
const check = (id: string, status: 'passing' | 'critical' = 'passing', serviceId = '') => ({
  Node: 'n1', CheckID: id, Name: id, Status: status, Notes: '', Output: '', ServiceID: serviceId, ServiceName: serviceId,
  ServiceTags: [] as string[], Type: 'ttl', Definition: {},
});
const catalogCheck = (id: string, status: 'passing' | 'critical' = 'passing', serviceId = ''): HealthCheck =>
  ({ ...check(id, status, serviceId), CreateIndex: 3, ModifyIndex: 3 } as HealthCheck);

function ops(plan: SyncCommand[]): string[] {
  return plan.map((c) => {
    switch (c.op) {
      case 'registerNode': return 'node';
      case 'registerService': return `+service:${c.service.ID}`;
      case 'deregisterService': return `-service:${c.serviceId}`;
      case 'registerCheck': return `+check:${c.check.CheckID}`;
      case 'deregisterCheck': return `-check:${c.checkId}`;
    }
  });
}

describe('planSync', () => {
  const cases: { name: string; local: Omit<LocalSnapshot, 'node'> & { node?: LocalSnapshot['node'] }; catalog: CatalogNodeView; want: string[] }[] = [
    {
      name: 'in sync: nothing to write',
      local: { services: [svc('web')], checks: [check('c1', 'passing', 'web')] },
      catalog: { node: catalogNode, services: [catalogSvc('web')], checks: [catalogCheck('c1', 'passing', 'web'), catalogCheck('serfHealth')] },
      want: [],
    },
    {
      name: 'an empty catalog: node, then services, then checks',
      local: { services: [svc('web'), svc('db')], checks: [check('c1', 'passing', 'web'), check('node-check')] },
      catalog: { node: null, services: [], checks: [] },
      want: ['node', '+service:web', '+service:db', '+check:c1', '+check:node-check'],
    },
    {
      name: 'a changed node address or meta rewrites the node row',
      local: { node: { ...node, Meta: { rack: 'b' } }, services: [], checks: [] },
      catalog: { node: catalogNode, services: [], checks: [] },
      want: ['node'],
    },
    {
      name: 'a service whose tags differ is re-registered',
      local: { services: [svc('web', ['v2'])], checks: [] },
      catalog: { node: catalogNode, services: [catalogSvc('web', ['v1'])], checks: [] },
      want: ['+service:web'],
    },
    {
      name: 'a check whose status differs is re-registered',
      local: { services: [], checks: [check('c1', 'critical')] },
      catalog: { node: catalogNode, services: [], checks: [catalogCheck('c1', 'passing')] },
      want: ['+check:c1'],
    },
    {
      name: 'what the agent does not hold is deregistered, serfHealth excepted',
      local: { services: [], checks: [] },
      catalog: { node: catalogNode, services: [catalogSvc('rogue')], checks: [catalogCheck('serfHealth'), catalogCheck('stale')] },
      want: ['-service:rogue', '-check:stale'],
    },
    {
      // Consul's updateSyncState: the leader's `consul` service of a server is not the agent's to remove
      // (removed, mesh gateways exposing servers lost their route to it until the next leadership).
      name: 'the consul service (the leader registers it for a server) is never deregistered',
      local: { services: [], checks: [] },
      catalog: { node: catalogNode, services: [catalogSvc('consul'), catalogSvc('rogue')], checks: [catalogCheck('serfHealth')] },
      want: ['-service:rogue'],
    },
    {
      name: 'a missing list in the catalog row equals an empty one',
      local: { services: [svc('web', [])], checks: [] },
      catalog: { node: catalogNode, services: [{ ...catalogSvc('web'), Tags: undefined } as unknown as NodeService], checks: [] },
      want: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const plan = planSync({ node, ...c.local }, c.catalog);
      assert.deepEqual(ops(plan), c.want);
    });
  }

  test('the plan carries what the agent holds, not what the catalog has', () => {
    const plan = planSync({ node, services: [svc('web', ['v2'])], checks: [] }, { node: catalogNode, services: [catalogSvc('web', ['v1'])], checks: [] });
    assert.equal(plan[0]?.op, 'registerService');
    assert.deepEqual(plan[0]?.op === 'registerService' && plan[0].service.Tags, ['v2']);
  });

  // Oracle: apply the plan to the catalog as the state store would, then plan again: nothing is left
  // to do, the catalog holds exactly the agent's services and checks, and serfHealth is untouched.
  test('property: applying the plan brings the catalog in sync', () => {
    const ids = fc.constantFrom('a', 'b', 'c', 'd');
    const tags = fc.array(fc.constantFrom('x', 'y'), { maxLength: 2 });
    const status = fc.constantFrom('passing' as const, 'critical' as const);
    const side = fc.record({
      services: fc.uniqueArray(fc.tuple(ids, tags), { selector: (s) => s[0], maxLength: 4 }),
      checks: fc.uniqueArray(fc.tuple(ids, status), { selector: (s) => s[0], maxLength: 4 }),
    });
    fc.assert(fc.property(side, side, fc.boolean(), fc.boolean(), (mine, theirs, nodeKnown, serf) => {
      const local: LocalSnapshot = {
        node,
        services: mine.services.map(([id, t]) => svc(id, t)),
        checks: mine.checks.map(([id, s]) => check(`chk-${id}`, s)),
      };
      const catalog: CatalogNodeView = {
        node: nodeKnown ? catalogNode : null,
        services: theirs.services.map(([id, t]) => catalogSvc(id, t)),
        checks: [...theirs.checks.map(([id, s]) => catalogCheck(`chk-${id}`, s)), ...(serf ? [catalogCheck('serfHealth')] : [])],
      };
      const after = applyPlan(catalog, planSync(local, catalog));
      assert.deepEqual(planSync(local, after), []);
      assert.deepEqual(after.services.map((s) => s.ID).sort(), local.services.map((s) => s.ID).sort());
      assert.equal(after.checks.some((c) => c.CheckID === 'serfHealth'), serf);
    }), { seed: Number(process.env.SEED ?? 42), numRuns: 300 });
  });
});

function applyPlan(cat: CatalogNodeView, plan: SyncCommand[]): CatalogNodeView {
  const services = new Map(cat.services.map((s) => [s.ID, s]));
  const checks = new Map(cat.checks.map((c) => [c.CheckID, c]));
  let n = cat.node;
  for (const c of plan) {
    if (c.op === 'registerNode') n = catalogNode;
    else if (c.op === 'registerService') services.set(c.service.ID, { ...c.service, CreateIndex: 9, ModifyIndex: 9 } as NodeService);
    else if (c.op === 'deregisterService') services.delete(c.serviceId);
    else if (c.op === 'registerCheck') checks.set(c.check.CheckID, { ...c.check, CreateIndex: 9, ModifyIndex: 9 } as HealthCheck);
    else checks.delete(c.checkId);
  }
  return { node: n, services: [...services.values()], checks: [...checks.values()] };
}
