// A slow Raft write must not hold up check results. The HTTP harness's Raft stand-in is held back
// on chosen commands (a promise the test releases); meanwhile TTL updates and expiries must show
// in agent/checks at once, unrelated writes must go through, and once everything is released the
// catalog must hold the latest state, never an older write that landed last.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeTimers, harness, NODE } from '../http/helpers.ts';
import type { Command } from '../../src/state/types.ts';
import { KeyedQueue } from '../../src/local/keyedQueue.ts';

/** Holds back the first command that `match` selects until release(). */
function hold(match: (cmd: Command) => boolean) {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let held = false;
  return {
    beforeApply: async (cmd: Command): Promise<void> => {
      if (held || !match(cmd)) return;
      held = true;
      await released;
    },
    get held() { return held; },
    release: () => release(),
  };
}

const registers = (serviceId: string, tag?: string) => (cmd: Command): boolean =>
  cmd.type === 'catalogRegister' && cmd.Service?.ID === serviceId && (tag === undefined || (cmd.Service.Tags ?? []).includes(tag));

/** Polls `cond` until it holds or 5 s pass. */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Tracks whether a promise has settled. */
function track<T>(p: Promise<T>): { done: () => boolean; p: Promise<T> } {
  let settled = false;
  void p.then(() => { settled = true; }, () => { settled = true; });
  return { done: () => settled, p };
}

describe('a slow catalog write does not hold up check results', () => {
  test('a TTL pass goes through, locally and to the catalog, while another service\'s registration waits on Raft', async () => {
    const gate = hold(registers('api'));
    const h = harness({ beforeApply: gate.beforeApply });
    assert.equal((await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Check: { CheckID: 'web-ttl', TTL: '30s' } })).statusCode, 200);
    const api = track(h.req('PUT', '/v1/agent/service/register', { Name: 'api', Port: 9000 }));
    await waitFor('the api registration is held in Raft', () => gate.held);

    const pass = track(h.req('PUT', '/v1/agent/check/pass/web-ttl?note=ok'));
    await waitFor('the pass is answered', pass.done);
    assert.equal((await pass.p).statusCode, 200);
    const checks = await h.json<Record<string, { Status: string; Output: string }>>('GET', '/v1/agent/checks');
    assert.equal(checks.body['web-ttl']?.Status, 'passing');
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'web-ttl')?.Status, 'passing', 'written to the catalog too');
    assert.equal(api.done(), false, 'the api registration is still waiting');

    gate.release();
    assert.equal((await api.p).statusCode, 200);
    assert.ok(h.store.nodeServices(NODE).value?.Services.some((s) => s.ID === 'api'));
    assert.equal(await h.backend.local.syncFull(), 0, 'nothing left to repair');
    await h.close();
  });

  test('a TTL pass on a service whose re-registration waits on Raft shows at once; the catalog ends with both', async () => {
    const h0 = hold(registers('web', 'v2'));
    const h = harness({ beforeApply: h0.beforeApply });
    await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v1'], Check: { CheckID: 'web-ttl', TTL: '30s' } });
    const rereg = track(h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v2'], Check: { CheckID: 'web-ttl', TTL: '30s' } }));
    await waitFor('the re-registration is held in Raft', () => h0.held);

    const pass = track(h.req('PUT', '/v1/agent/check/pass/web-ttl?note=up'));
    await waitFor('agent/checks shows the pass', async () => {
      const checks = await h.json<Record<string, { Status: string }>>('GET', '/v1/agent/checks');
      return checks.body['web-ttl']?.Status === 'passing';
    });
    assert.equal(rereg.done(), false, 'the re-registration is still waiting');
    // The pass's catalog write queues behind the pending write of the same service.
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'web-ttl')?.Status, 'critical');

    h0.release();
    assert.equal((await rereg.p).statusCode, 200);
    assert.equal((await pass.p).statusCode, 200);
    const row = h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'web-ttl')!;
    assert.equal(row.Status, 'passing', 'the later result is not overwritten by the earlier registration');
    assert.equal(row.Output, 'up');
    assert.deepEqual(row.ServiceTags, ['v2']);
    assert.deepEqual(h.store.nodeServices(NODE).value?.Services.find((s) => s.ID === 'web')?.Tags, ['v2']);
    const local = h.backend.local.check('web-ttl')!.check;
    assert.equal(local.Status, 'passing');
    assert.deepEqual(local.ServiceTags, ['v2']);
    assert.equal(await h.backend.local.syncFull(), 0, 'local state and catalog agree');
    await h.close();
  });

  test('a TTL expiry shows at once while a registration waits on Raft', async () => {
    const timers = new FakeTimers();
    const gate = hold(registers('api'));
    const h = harness({ timers, beforeApply: gate.beforeApply });
    await h.req('PUT', '/v1/agent/check/register', { Name: 'beat', TTL: '10s' });
    await h.req('PUT', '/v1/agent/check/pass/beat?note=alive');
    const api = track(h.req('PUT', '/v1/agent/service/register', { Name: 'api' }));
    await waitFor('the api registration is held in Raft', () => gate.held);

    timers.advance(10_001);
    assert.equal(h.backend.local.check('beat')?.check.Status, 'critical', 'recorded at expiry');
    await waitFor('the expiry reaches the catalog', () => h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'beat')?.Status === 'critical');
    assert.equal(api.done(), false);
    gate.release();
    assert.equal((await api.p).statusCode, 200);
    await h.close();
  });

  test('two writes of one service land in the order they were asked for', async () => {
    const gate = hold(registers('web', 'first'));
    const h = harness({ beforeApply: gate.beforeApply });
    const first = track(h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['first'] }));
    await waitFor('the first write is held in Raft', () => gate.held);
    const second = track(h.req('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['second'] }));
    // The second waits for the first, rather than landing and then being overwritten by it.
    const other = track(h.req('PUT', '/v1/agent/service/register', { Name: 'db' }));
    await waitFor('another service\'s registration is answered (not held up)', other.done);
    assert.equal((await other.p).statusCode, 200);
    assert.equal(second.done(), false);
    gate.release();
    await first.p;
    await second.p;
    assert.deepEqual(h.store.nodeServices(NODE).value?.Services.find((s) => s.ID === 'web')?.Tags, ['second']);
    assert.deepEqual(h.backend.local.service('web')?.service.Tags, ['second']);
    await h.close();
  });

  test('a TTL update whose catalog write is refused is taken back (the request fails, nothing changes)', async () => {
    const h = harness();
    await h.req('PUT', '/v1/agent/check/register', { Name: 'beat', TTL: '30s' });
    h.failApply = Object.assign(new Error('no leader'), { code: 'ERR_NO_LEADER' });
    const res = await h.req('PUT', '/v1/agent/check/pass/beat');
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, 'No cluster leader');
    assert.equal(h.backend.local.check('beat')?.check.Status, 'critical');
    h.failApply = undefined;
    assert.equal((await h.req('PUT', '/v1/agent/check/pass/beat')).statusCode, 200);
    assert.equal(h.store.nodeChecks(NODE).value.find((c) => c.CheckID === 'beat')?.Status, 'passing');
    await h.close();
  });
});

describe('KeyedQueue', () => {
  test('tasks on one key run in order; tasks on other keys do not wait; a failure does not stop the queue', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    let releaseA!: () => void;
    const a = q.run(['x'], async () => { log.push('a start'); await new Promise<void>((r) => { releaseA = r; }); log.push('a end'); });
    const b = q.run(['x', 'y'], async () => { log.push('b'); throw new Error('b failed'); });
    const c = q.run(['y'], async () => { log.push('c'); });
    const d = q.run(['z'], async () => { log.push('d'); });
    await d;
    assert.deepEqual(log, ['a start', 'd'], 'b waits for a on x, c waits for b on y, d runs');
    releaseA();
    await a;
    await assert.rejects(b, /b failed/);
    await c;
    assert.deepEqual(log, ['a start', 'd', 'a end', 'b', 'c']);
    await waitFor('every key is free', () => q.busyKeys === 0);
  });
});

describe('anti-entropy alongside pending writes', () => {
  test('a registration the catalog already shows but the agent has not recorded yet is not deregistered by a full sync', async () => {
    const { LocalState, catalogStateFromStore } = await import('../../src/local/state.ts');
    const { StateStore, decodeCommand, encodeCommand } = await import('../../src/state/index.ts');
    const store = new StateStore();
    let index = 1;
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    let landed = false;
    const local = new LocalState({
      node: { Node: 'n1', ID: '11111111-2222-4333-8444-555555555555', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
      // The write lands in the catalog, and its acknowledgement is held back.
      apply: async (cmd) => {
        const res = store.apply(index++, decodeCommand(encodeCommand(cmd)));
        if (cmd.type === 'catalogRegister' && cmd.Service?.ID === 'web') {
          landed = true;
          await released;
        }
        return res;
      },
      catalogState: catalogStateFromStore(store),
    });
    const svc = { Kind: '' as const, ID: 'web', Service: 'web', Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 80, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false };
    const reg = local.addService(svc, []);
    await waitFor('the registration is in the catalog', () => landed);
    assert.equal(local.service('web'), undefined, 'not recorded locally yet');
    // The plan sees web in the catalog and not here, so it would deregister it; its write waits for
    // the registration of web and is skipped because web changed here since the plan.
    const sync = local.syncFull();
    release();
    await reg;
    await sync;
    assert.ok(local.service('web'));
    assert.deepEqual(store.nodeServices('n1').value?.Services.map((s) => s.ID), ['web']);
    assert.equal(await local.syncFull(), 0);
    local.close();
  });
});

describe('check runner results alongside a slow write', () => {
  test('an alias check\'s result shows here and in the catalog while another service\'s registration is held in Raft', async () => {
    const { LocalState, catalogStateFromStore } = await import('../../src/local/state.ts');
    const { StateStore, decodeCommand, encodeCommand } = await import('../../src/state/index.ts');
    const { default: pino } = await import('pino');
    const store = new StateStore();
    let index = 1;
    const gate = hold(registers('api'));
    const local = new LocalState({
      node: { Node: 'n1', ID: '11111111-2222-4333-8444-555555555555', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
      apply: async (cmd) => {
        await gate.beforeApply(cmd);
        return store.apply(index++, decodeCommand(encodeCommand(cmd)));
      },
      catalogState: catalogStateFromStore(store),
      runChecks: { logger: pino({ level: 'silent' }), enableScriptChecks: false, enableLocalScriptChecks: false },
    });
    const catalogStatus = (id: string) => store.nodeChecks('n1').value.find((c) => c.CheckID === id)?.Status;
    const svc = (id: string) => ({ Kind: '' as const, ID: id, Service: id, Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 80, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false });
    // `mirror` is an alias of the web service: its runner reports what web's TTL check says.
    await local.addService(svc('web'), [{ CheckID: 'web-ttl', TTLNs: 60e9 }]);
    await local.addCheck({ CheckID: 'mirror', AliasService: 'web' });
    await waitFor('the alias reports critical', () => catalogStatus('mirror') === 'critical');

    const api = track(local.addService(svc('api'), []));
    await waitFor('the api registration is held in Raft', () => gate.held);
    const pass = track(local.updateTtlCheck('web-ttl', 'passing', ''));
    await waitFor('the alias runner\'s result shows here', () => local.check('mirror')?.check.Status === 'passing');
    await waitFor('and in the catalog', () => catalogStatus('mirror') === 'passing');
    assert.equal(api.done(), false, 'the api registration is still waiting');
    gate.release();
    await api.p;
    await pass.p;
    assert.equal(await local.syncFull(), 0);
    local.close();
  });
});
