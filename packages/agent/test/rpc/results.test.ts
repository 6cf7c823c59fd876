// The encoding of command results and node state between servers and client agents (rpc/results.ts):
// every CommandResult kind and NodeState round-trip exactly (uint64 Flags above 2^53, binary
// values), fields a newer build adds are ignored, and bad bytes fail with an error that says what.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import {
  RESULT_FORMAT, ResultDecodeError, decodeCommandResult, decodeNodeState, encodeCommandResult, encodeNodeState,
  type NodeCatalogState,
} from '../../src/rpc/results.ts';
import type { Command, CommandResult, TxnResponse } from '../../src/state/index.ts';
import { Harness, SESSION_A } from '../state/helpers.ts';

/** Consul's lock recipe's flag: far above 2^53, where a JS number rounds. */
const LOCK_FLAG = 0x2ddccbc058a50c18n;
const BINARY = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x80, 0x00, 0x7f]);

const roundTrip = (r: CommandResult) => decodeCommandResult(encodeCommandResult(r));

/** A store holding one of every row kind, and results produced by it. */
function harness() {
  const h = new Harness();
  h.node('n1');
  h.ok({
    type: 'catalogRegister', Node: 'n1', Address: '10.0.0.1', SkipNodeUpdate: true,
    Service: {
      ID: 'web-1', Service: 'web', Tags: ['a', 'b'], Port: 8080, Meta: { v: '1' }, SocketPath: '/run/web.sock',
      Proxy: { DestinationServiceName: 'db', Config: { deep: { list: [1, 'two', null] } } },
    },
    Check: { CheckID: 'web-http', Name: 'web', ServiceID: 'web-1', Status: 'warning', Interval: '10s', Definition: { HTTP: 'http://x/' } },
  } as Command);
  h.session(SESSION_A, 'n1', { TTL: '30s' });
  h.ok({ type: 'kvSet', Key: 'bin', Value: BINARY, Flags: LOCK_FLAG });
  h.ok({ type: 'kvLock', Key: 'locked', Value: new Uint8Array([1]), Flags: (1n << 64n) - 1n, Session: SESSION_A });
  h.ok({ type: 'kvSet', Key: 'empty', Value: new Uint8Array(0) });
  return h;
}

/** Rewrites the JSON of encoded bytes, keeping the byte tail (what a newer build might send). */
function editJson(data: Buffer, edit: (doc: Record<string, unknown>) => void): Buffer {
  const len = data.readUInt32BE(1);
  const doc = JSON.parse(data.subarray(5, 5 + len).toString('utf8')) as Record<string, unknown>;
  edit(doc);
  const json = Buffer.from(JSON.stringify(doc));
  const head = Buffer.alloc(5);
  head[0] = data[0]!;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json, data.subarray(5 + len)]);
}

describe('command results on the wire', () => {
  test('every CommandResult kind round-trips exactly', () => {
    const h = harness();
    const results: CommandResult[] = [
      h.apply({ type: 'kvSet', Key: 'k', Value: new Uint8Array([1]) }), // value true
      h.apply({ type: 'kvCas', Key: 'k', Value: new Uint8Array([2]), Index: 1 }), // value false
      h.apply({ type: 'kvCas', Key: 'new', Value: new Uint8Array([2]), Index: 0 }), // value true
      h.apply({ type: 'sessionCreate', Session: { ID: 'bbbbbbbb-0000-4000-8000-000000000002', Node: 'n1' } }), // value: the ID
      h.apply({ type: 'sessionDestroy', ID: 'bbbbbbbb-0000-4000-8000-000000000002' }),
      h.apply({ type: 'kvLock', Key: 'l', Value: new Uint8Array(), Session: 'no-such-session' }), // refused
      h.apply({ type: 'txn', Ops: [
        { KV: { Verb: 'get', Key: 'bin' } },
        { KV: { Verb: 'get', Key: 'locked' } },
        { KV: { Verb: 'get', Key: 'empty' } },
        { KV: { Verb: 'set', Key: 'written', Value: new Uint8Array([9]), Flags: LOCK_FLAG + 1n } }, // Value null in the result
        { Node: { Verb: 'get', Node: { Node: 'n1' } } },
        { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web-1', Service: 'web' } } },
        { Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'web-http' } } },
      ] } as Command),
      h.apply({ type: 'txn', Ops: [{ KV: { Verb: 'check-index', Key: 'bin', Index: 1 } }, { Node: { Verb: 'get', Node: { Node: 'n9' } } }] } as Command),
    ];
    const kinds = results.map((r) => (r.ok ? (typeof r.value === 'object' ? ((r.value as TxnResponse).Errors ? 'txn-errors' : 'txn') : typeof r.value) : 'refused'));
    assert.deepEqual(kinds, ['boolean', 'boolean', 'boolean', 'string', 'boolean', 'refused', 'txn', 'txn-errors']);
    assert.equal((results[1] as { value: boolean }).value, false);
    for (const r of results) assert.deepStrictEqual(roundTrip(r), r);

    const txn = roundTrip(results[6]!) as { value: TxnResponse };
    const kv = (i: number) => (txn.value.Results![i] as { KV: { Flags: bigint; Value: Uint8Array | null; Session?: string } }).KV;
    assert.equal(kv(0).Flags, LOCK_FLAG);
    assert.deepEqual([...kv(0).Value!], [...BINARY]);
    assert.equal(kv(1).Flags, (1n << 64n) - 1n);
    assert.equal(kv(1).Session, SESSION_A);
    assert.deepEqual(kv(2).Value, new Uint8Array(0));
    assert.equal(kv(3).Value, null);
    assert.equal(kv(3).Flags, LOCK_FLAG + 1n);
    // Rows read back with their fields in the order they were written (the HTTP JSON stays the same).
    const svc = (txn.value.Results![5] as { Service: object }).Service;
    const original = ((results[6] as { value: TxnResponse }).value.Results![5] as { Service: object }).Service;
    assert.deepEqual(Object.keys(svc), Object.keys(original));
  });

  test('the control entries\' result (restore) and a refusal with a code this build does not know', () => {
    assert.deepStrictEqual(roundTrip({ ok: true, index: 7, value: true } as CommandResult), { ok: true, index: 7, value: true });
    const future = { ok: false, index: 3, error: { code: 'ERR_SOMETHING_NEW', message: 'a newer refusal' } } as unknown as CommandResult;
    assert.deepStrictEqual(roundTrip(future), future);
  });

  test('fields a newer build adds are ignored, at every level', () => {
    const h = harness();
    const r = h.apply({ type: 'txn', Ops: [
      { KV: { Verb: 'get', Key: 'bin' } }, { Node: { Verb: 'get', Node: { Node: 'n1' } } },
      { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web-1', Service: 'web' } } },
      { Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'web-http' } } },
    ] } as Command);
    const newer = editJson(encodeCommandResult(r), (doc) => {
      doc.TraceID = 'abc';
      const value = doc.value as { Results: Array<Record<string, Record<string, unknown>>>; Partition?: string };
      value.Partition = 'default';
      value.Results[0]!.KV!.Namespace = 'ns';
      value.Results[1]!.Node!.Locality = { Region: 'r1' };
      value.Results[2]!.Service!.Locality = { Region: 'r1' };
      value.Results[3]!.Check!.PeerName = 'p';
    });
    assert.deepStrictEqual(decodeCommandResult(newer), r);
    const refused = h.apply({ type: 'kvLock', Key: 'l', Value: new Uint8Array(), Session: 'none' });
    const newerRefusal = editJson(encodeCommandResult(refused), (doc) => {
      (doc.error as Record<string, unknown>).Detail = { retryable: false };
    });
    assert.deepStrictEqual(decodeCommandResult(newerRefusal), refused);
  });

  test('bytes this build cannot read fail with an error naming what is wrong', () => {
    const good = encodeCommandResult({ ok: true, index: 1, value: true } as CommandResult);
    assert.equal(good[0], RESULT_FORMAT);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['empty', new Uint8Array(0), /command result from the server: empty/],
      ['a newer format', Buffer.concat([Buffer.from([2]), good.subarray(1)]), /format 2 is not supported \(this build reads 1\)/],
      ['truncated', good.subarray(0, good.length - 2), /truncated/],
      ['not JSON', editRaw(good, '{nope'), /not valid JSON/],
      ['no ok', editRaw(good, '{"index":1,"value":true}'), /result\.ok is missing/],
      ['bad value', editRaw(good, '{"ok":true,"index":1,"value":7}'), /value must be a boolean, a string or a txn response/],
      ['rounded flags', editRaw(good, '{"ok":true,"index":1,"value":{"Results":[{"KV":{"LockIndex":0,"Key":"k","Flags":1e19,"Value":null,"CreateIndex":1,"ModifyIndex":1}}],"Errors":null}}'),
        /value\.Results\[0\]\.KV\.Flags must be an unsigned 64-bit integer/],
      ['value outside the tail', editRaw(good, '{"ok":true,"index":1,"value":{"Results":[{"KV":{"LockIndex":0,"Key":"k","Flags":0,"Value":[0,5],"CreateIndex":1,"ModifyIndex":1}}],"Errors":null}}'),
        /value\.Results\[0\]\.KV\.Value must be an \[offset, length\] inside the 0 bytes/],
      ['unknown result kind', editRaw(good, '{"ok":true,"index":1,"value":{"Results":[{"Intention":{}}],"Errors":null}}'), /holds no result this build knows/],
      ['a row field of the wrong type', editRaw(good, '{"ok":true,"index":1,"value":{"Results":[{"Node":{"ID":"","Node":5}}],"Errors":null}}'),
        /value\.Results\[0\]\.Node\.Node must be a string/],
    ];
    for (const [name, bytes, re] of cases) {
      assert.throws(() => decodeCommandResult(bytes), (err: Error) => err instanceof ResultDecodeError && re.test(err.message), name);
    }
  });

  test('node:v8 bytes from a build before this encoding are still read (an upgrade from it rolls)', () => {
    const h = harness();
    const r = h.apply({ type: 'txn', Ops: [{ KV: { Verb: 'get', Key: 'bin' } }] } as Command);
    assert.deepStrictEqual(decodeCommandResult(v8.serialize(r)), r);
    const state: NodeCatalogState = { node: h.store.node('n1').value, services: [], checks: [] };
    assert.deepStrictEqual(decodeNodeState(v8.serialize(state)), state);
  });
});

function editRaw(data: Buffer, json: string): Buffer {
  const j = Buffer.from(json);
  const head = Buffer.alloc(5);
  head[0] = data[0]!;
  head.writeUInt32BE(j.length, 1);
  return Buffer.concat([head, j]);
}

describe('node state on the wire', () => {
  test('a node with services and checks, and an unknown node, round-trip exactly', () => {
    const h = harness();
    const full: NodeCatalogState = {
      node: h.store.node('n1').value,
      services: h.store.nodeServices('n1').value!.Services,
      checks: h.store.nodeChecks('n1').value,
    };
    assert.equal(full.services.length, 1);
    assert.equal(full.checks.length, 2);
    assert.deepStrictEqual(decodeNodeState(encodeNodeState(full)), full);
    const none: NodeCatalogState = { node: null, services: [], checks: [] };
    assert.deepStrictEqual(decodeNodeState(encodeNodeState(none)), none);
  });

  test('fields a newer build adds are ignored', () => {
    const h = harness();
    const state: NodeCatalogState = {
      node: h.store.node('n1').value,
      services: h.store.nodeServices('n1').value!.Services,
      checks: h.store.nodeChecks('n1').value,
    };
    const newer = editJson(encodeNodeState(state), (doc) => {
      doc.coordinates = [{ x: 1 }];
      (doc.node as Record<string, unknown>).PeerName = 'p';
      (doc.services as Array<Record<string, unknown>>)[0]!.Locality = { Zone: 'z' };
      (doc.checks as Array<Record<string, unknown>>)[1]!.ExposedPath = '/x';
    });
    assert.deepStrictEqual(decodeNodeState(newer), state);
  });

  test('a malformed answer names the field', () => {
    const bad = editRaw(encodeNodeState({ node: null, services: [], checks: [] }), '{"node":null,"services":[{"ID":"x"}],"checks":[]}');
    assert.throws(() => decodeNodeState(bad), /node state from the server: services\[0\]\.\w+ is missing/);
  });
});

describe('ACL command results (plain JSON rows)', () => {
  test('a token row and a bootstrap answer survive the round trip a forwarded write makes', () => {
    const token = { AccessorID: 'a', SecretID: 's', Description: '', Policies: [{ ID: 'p', Name: 'n' }], Roles: [], ServiceIdentities: [], NodeIdentities: [], Local: false, ExpirationTime: '', CreateTime: '', CreateIndex: 3, ModifyIndex: 3 };
    assert.deepEqual(roundTrip({ ok: true, index: 3, value: token } as unknown as CommandResult), { ok: true, index: 3, value: token });
    const boot = { Bootstrapped: false, ResetIndex: 7 };
    assert.deepEqual(roundTrip({ ok: true, index: 9, value: boot } as unknown as CommandResult), { ok: true, index: 9, value: boot });
  });
});
