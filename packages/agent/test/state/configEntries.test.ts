// The config-entries table: upsert and delete with CAS, indexes, the protocol gate checked inside
// apply (atomic with the write), snapshot/restore, the command codec and watch wake-ups.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './helpers.ts';
import { StateStore } from '../../src/state/store.ts';
import { createFsm } from '../../src/state/fsm.ts';
import { decodeCommand, encodeCommand } from '../../src/state/codec.ts';
import type { WatchSet } from '../../src/state/watch.ts';

const set = (Entry: Record<string, unknown> & { Kind: string; Name: string }, Cas?: number) =>
  ({ type: 'configEntrySet' as const, Entry, ...(Cas !== undefined ? { Cas } : {}) });
const del = (Kind: string, Name: string, Cas?: number) =>
  ({ type: 'configEntryDelete' as const, Kind, Name, ...(Cas !== undefined ? { Cas } : {}) });

const GATE = (svc: string, p: string) => `discovery chain "${svc}" uses a protocol "${p}" that does not permit advanced routing or splitting behavior`;

async function settle(p: Promise<boolean>): Promise<'fired' | 'pending'> {
  const pending = Symbol('pending');
  const r = await Promise.race([p, new Promise<typeof pending>((res) => setImmediate(() => res(pending)))]);
  return r === pending ? 'pending' : 'fired';
}

describe('config entries: upsert, read, list', () => {
  test('an upsert stores the row with Kind and Name first and the Raft indexes; a second keeps CreateIndex', () => {
    const h = new Harness();
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' })), true);
    const first = h.store.configEntry('service-defaults', 'web').value!;
    assert.deepEqual(Object.keys(first), ['Kind', 'Name', 'Protocol', 'CreateIndex', 'ModifyIndex']);
    assert.equal(first.CreateIndex, 1);
    assert.equal(first.ModifyIndex, 1);
    h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' }));
    const second = h.store.configEntry('service-defaults', 'web');
    assert.equal(second.value!.Protocol, 'grpc');
    assert.equal(second.value!.CreateIndex, 1);
    assert.equal(second.value!.ModifyIndex, 2);
    assert.equal(second.index, 2);
    assert.ok(Object.isFrozen(second.value));
  });

  test('kind and name are matched case-insensitively (Consul\'s id index)', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'Web', Protocol: 'http' }));
    assert.equal(h.store.configEntry('service-defaults', 'web').value!.Name, 'Web');
    h.ok(set({ Kind: 'service-defaults', Name: 'WEB', Protocol: 'tcp' }));
    assert.equal(h.store.configEntries('service-defaults').value.length, 1);
  });

  test('lists by kind are sorted by name; the all-list covers every kind; indexes are the table\'s', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'web' }));
    h.ok(set({ Kind: 'service-defaults', Name: 'api' }));
    h.ok(set({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } }));
    assert.deepEqual(h.store.configEntries('service-defaults').value.map((e) => e.Name), ['api', 'web']);
    assert.deepEqual(h.store.configEntries('service-router').value, []);
    assert.equal(h.store.configEntries('service-router').index, 3);
    assert.deepEqual(h.store.configEntriesAll().value.map((e) => `${e.Kind}/${e.Name}`), ['proxy-defaults/global', 'service-defaults/api', 'service-defaults/web']);
    assert.equal(h.store.configEntry('mesh', 'mesh').value, null);
    assert.equal(h.store.configEntry('mesh', 'mesh').index, 3);
  });

  test('an entry without Kind or Name is refused and changes nothing', () => {
    const h = new Harness();
    assert.equal(h.fail({ type: 'configEntrySet', Entry: { Kind: 'service-defaults', Name: '' } }).code, 'ERR_INVALID_REQUEST');
    assert.equal(h.fail({ type: 'configEntrySet', Entry: { Name: 'x' } } as never).code, 'ERR_INVALID_REQUEST');
    assert.equal(h.store.configEntriesAll().value.length, 0);
    assert.equal(h.store.tableIndex('config-entries'), 1);
  });
});

describe('config entries: check-and-set', () => {
  test('cas=0 creates only when absent', () => {
    const h = new Harness();
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }, 0)), true);
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'tcp' }, 0)), false);
    assert.equal(h.store.configEntry('service-defaults', 'web').value!.Protocol, 'http');
  });

  test('cas=N writes only at ModifyIndex N, and never creates', () => {
    const h = new Harness();
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web' }, 7)), false);
    assert.equal(h.store.configEntry('service-defaults', 'web').value, null);
    h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }));
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' }, 1)), false, 'stale index');
    assert.equal(h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' }, 2)), true);
    assert.equal(h.store.configEntry('service-defaults', 'web').value!.ModifyIndex, 4);
  });

  test('delete: plain deletes are true even when absent; cas deletes need the exact index and an entry', () => {
    const h = new Harness();
    assert.equal(h.ok(del('service-defaults', 'nope')), true);
    assert.equal(h.ok(del('service-defaults', 'nope', 0)), false);
    h.ok(set({ Kind: 'service-defaults', Name: 'web' })); // index 3
    assert.equal(h.ok(del('service-defaults', 'web', 2)), false);
    assert.ok(h.store.configEntry('service-defaults', 'web').value);
    assert.equal(h.ok(del('service-defaults', 'web', 3)), true);
    assert.equal(h.store.configEntry('service-defaults', 'web').value, null);
    assert.equal(h.store.tableIndex('config-entries'), 5, 'a delete bumps the table index');
  });
});

describe('config entries: the protocol gate (discovery chain compile)', () => {
  test('a router or splitter for a tcp service is refused with Consul\'s text, and nothing is stored', () => {
    const h = new Harness();
    const e = h.fail(set({ Kind: 'service-router', Name: 'web', Routes: [] }));
    assert.equal(e.code, 'ERR_INVALID_CONFIG_ENTRY');
    assert.equal(e.message, GATE('web', 'tcp'));
    assert.equal(h.store.configEntry('service-router', 'web').value, null);
    assert.equal(h.store.tableIndex('config-entries'), 1, 'no index moved');
    assert.equal(h.fail(set({ Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100 }] })).message, GATE('web', 'tcp'));
  });

  test('the protocol comes from service-defaults, else proxy-defaults Config.protocol', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }));
    h.ok(set({ Kind: 'service-router', Name: 'web', Routes: [] }));
    h.ok(set({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'grpc' } }));
    h.ok(set({ Kind: 'service-splitter', Name: 'api', Splits: [{ Weight: 100 }] }));
    // service-defaults wins over proxy-defaults: an explicit tcp for api is refused while its splitter exists.
    assert.equal(h.fail(set({ Kind: 'service-defaults', Name: 'api', Protocol: 'tcp' })).message, GATE('api', 'tcp'));
  });

  test('changing a service back to tcp, or deleting its service-defaults, is refused while a router depends on it', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }));
    h.ok(set({ Kind: 'service-router', Name: 'web', Routes: [] }));
    assert.equal(h.fail(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'tcp' })).message, GATE('web', 'tcp'));
    assert.equal(h.fail(del('service-defaults', 'web')).message, GATE('web', 'tcp'));
    assert.equal(h.store.configEntry('service-defaults', 'web').value!.Protocol, 'http', 'rolled back');
    // Without the router the change is fine.
    h.ok(del('service-router', 'web'));
    h.ok(del('service-defaults', 'web'));
  });

  test('proxy-defaults: dropping the global protocol is refused while a chain relies on it', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } }));
    h.ok(set({ Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100 }] }));
    assert.equal(h.fail(set({ Kind: 'proxy-defaults', Name: 'global', Config: {} })).message, GATE('web', 'tcp'));
    assert.equal(h.fail(del('proxy-defaults', 'global')).message, GATE('web', 'tcp'));
  });
});

describe('config entries: protocols must agree along a chain (compile.go recordProtocol)', () => {
  const INCONSISTENT = (chain: string, svc: string, p: string, want: string) =>
    `discovery chain "${chain}" uses inconsistent protocols; service "${svc}" has "${p}" which is not "${want}"`;

  test('a split or a route to a service of another protocol is refused', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'main', Protocol: 'http' }));
    h.ok(set({ Kind: 'service-defaults', Name: 'other', Protocol: 'tcp' }));
    assert.equal(h.fail(set({ Kind: 'service-splitter', Name: 'main', Splits: [{ Weight: 90 }, { Weight: 10, Service: 'other' }] })).message, INCONSISTENT('main', 'other', 'tcp', 'http'));
    assert.equal(h.fail(set({ Kind: 'service-router', Name: 'main', Routes: [{ Destination: { Service: 'other' } }] })).message, INCONSISTENT('main', 'other', 'tcp', 'http'));
    h.ok(set({ Kind: 'service-defaults', Name: 'other', Protocol: 'http' }));
    h.ok(set({ Kind: 'service-router', Name: 'main', Routes: [{ Destination: { Service: 'other' } }] }));
  });

  test('a redirect or a failover across protocols is refused, even without routing', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'main', Protocol: 'grpc' }));
    assert.equal(h.fail(set({ Kind: 'service-resolver', Name: 'main', Redirect: { Service: 'other' } })).message, INCONSISTENT('main', 'other', 'tcp', 'grpc'));
    assert.equal(h.fail(set({ Kind: 'service-resolver', Name: 'main', Failover: { '*': { Service: 'other' } } })).message, INCONSISTENT('main', 'other', 'tcp', 'grpc'));
    // tcp to tcp is fine.
    h.ok(set({ Kind: 'service-resolver', Name: 'plain', Redirect: { Service: 'other' } }));
  });

  test('changing a service read by another chain, even indirectly, is checked against that chain', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } }));
    h.ok(set({ Kind: 'service-router', Name: 'front', Routes: [{ Destination: { Service: 'mid' } }] }));
    h.ok(set({ Kind: 'service-splitter', Name: 'mid', Splits: [{ Weight: 50 }, { Weight: 50, Service: 'back' }] }));
    // back is read by chain "mid" directly and by chain "front" through mid's splitter.
    const e = h.fail(set({ Kind: 'service-defaults', Name: 'back', Protocol: 'tcp' }));
    assert.match(e.message, /^discovery chain "(front|mid)" uses inconsistent protocols; service "back" has "tcp" which is not "http"$/);
    // A service no chain reads may change freely.
    h.ok(set({ Kind: 'service-defaults', Name: 'lonely', Protocol: 'tcp' }));
  });
});

describe('config entries: snapshot, codec, watches', () => {
  test('snapshot/restore carries the table and its index; restore of a snapshot without the field is empty', () => {
    const h = new Harness();
    h.ok(set({ Kind: 'service-defaults', Name: 'web', Protocol: 'http', Meta: { owner: 'team' } }));
    h.ok(set({ Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Action: 'allow', Precedence: 9, Type: 'consul' }] }));
    const fresh = new StateStore();
    const fsm = createFsm(fresh);
    fsm.restore(h.store.snapshot());
    assert.deepEqual(fresh.configEntriesAll(), h.store.configEntriesAll());
    assert.equal(fresh.tableIndex('config-entries'), 2);
    assert.deepEqual(fresh.snapshot(), h.store.snapshot(), 'deterministic bytes');
    // A later write keeps CAS semantics on the restored rows.
    assert.equal(fresh.apply(3, set({ Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' }, 1)).ok, true);
    assert.equal(fresh.configEntry('service-defaults', 'web').value!.Protocol, 'grpc');

    const doc = JSON.parse(Buffer.from(h.store.snapshot()).toString('utf8').slice('TRELLIS-STATE\n'.length));
    delete doc.configEntries;
    const old = new StateStore();
    old.restore(Buffer.from('TRELLIS-STATE\n' + JSON.stringify(doc)));
    assert.deepEqual(old.configEntriesAll().value, []);

    doc.configEntries = [{ Kind: 'service-defaults' }];
    assert.throws(() => old.restore(Buffer.from('TRELLIS-STATE\n' + JSON.stringify(doc))), /configEntries\[0\]/);
  });

  test('both commands survive the Raft entry codec', () => {
    for (const cmd of [set({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http', nested: { a: [1] } } }, 0), del('mesh', 'mesh', 4)]) {
      const back = decodeCommand(encodeCommand(cmd, 5));
      assert.deepEqual(back, { ...cmd, now: 5 });
    }
  });

  test('a write wakes readers of that entry, of its kind and of the table, and nobody else', async () => {
    const h = new Harness();
    const entry = h.store.watchSet();
    const kind = h.store.watchSet();
    const other = h.store.watchSet();
    const all = h.store.watchSet();
    h.store.configEntry('service-defaults', 'web', entry);
    h.store.configEntries('service-defaults', kind);
    h.store.configEntry('service-defaults', 'api', other);
    h.store.configEntriesAll(all);
    const acs = [entry, kind, other, all].map(() => new AbortController());
    const waits = ([entry, kind, other, all] as WatchSet[]).map((ws, i) => ws.wait(acs[i]!.signal));
    h.ok(set({ Kind: 'service-defaults', Name: 'Web' }));
    assert.deepEqual(await Promise.all(waits.map(settle)), ['fired', 'fired', 'pending', 'fired']);
    for (const ac of acs) ac.abort();
    // A refused write (the gate) wakes nobody.
    const ws = h.store.watchSet();
    h.store.configEntriesAll(ws);
    const ac = new AbortController();
    const p = ws.wait(ac.signal);
    h.fail(set({ Kind: 'service-router', Name: 'web' }));
    assert.equal(await settle(p), 'pending');
    ac.abort();
  });
});
