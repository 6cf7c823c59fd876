// Intention precedence, matching and decisions (connect/intentions.ts: pure), as tables against
// Consul's documented precedence order (developer.hashicorp.com/consul/docs/connect/intentions:
// exact → exact 9, * → exact 8, exact → * 6, * → * 5) and Consul's Intention.String() texts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authorizeConnection, decideIntention, exactIntention, flattenIntentions, intentionDefault, intentionString, matchIntentions, precedence,
  type IntentionsEntry,
} from '../../src/connect/intentions.ts';

const entry = (name: string, sources: Record<string, unknown>[], index = 10): IntentionsEntry => ({ Name: name, Sources: sources, CreateIndex: index, ModifyIndex: index });
const allow = (name: string): Record<string, unknown> => ({ Name: name, Action: 'allow' });
const deny = (name: string): Record<string, unknown> => ({ Name: name, Action: 'deny' });

describe('precedence (Consul documentation table)', () => {
  const rows: Array<[string, string, string, number]> = [
    ['exact source, exact destination', 'web', 'db', 9],
    ['wildcard source, exact destination', '*', 'db', 8],
    ['exact source, wildcard destination', 'web', '*', 6],
    ['wildcard source, wildcard destination', '*', '*', 5],
  ];
  for (const [name, src, dst, want] of rows) {
    test(name, () => assert.equal(precedence(src, dst), want));
  }
  test('wildcard namespaces (Consul Enterprise) rank below: */* → default/db is 7, default/* → */* is 2', () => {
    assert.equal(precedence('*', 'db', '*', 'default'), 7);
    assert.equal(precedence('*', '*', 'default', '*'), 2);
  });
});

describe('flattening and ordering', () => {
  test('rows of every entry, highest precedence first, ties by source then destination name', () => {
    const list = flattenIntentions([
      entry('*', [deny('*'), allow('web')]),
      entry('db', [allow('web'), deny('*'), allow('api')]),
      entry('cache', [allow('web')]),
    ]);
    assert.deepEqual(list.map((i) => `${i.SourceName}->${i.DestinationName}:${i.Precedence}`), [
      'api->db:9', 'web->cache:9', 'web->db:9', '*->db:8', 'web->*:6', '*->*:5',
    ]);
  });

  test("a row has Consul's JSON shape and key order (no ID for config-entry intentions)", () => {
    const [row] = flattenIntentions([entry('db', [allow('web')], 42)]);
    assert.deepEqual(Object.keys(row!), ['SourceNS', 'SourceName', 'DestinationNS', 'DestinationName', 'SourceType', 'Action', 'Precedence', 'CreateIndex', 'ModifyIndex']);
    assert.deepEqual(row, { SourceNS: 'default', SourceName: 'web', DestinationNS: 'default', DestinationName: 'db', SourceType: 'consul', Action: 'allow', Precedence: 9, CreateIndex: 42, ModifyIndex: 42 });
  });

  test('a legacy-created source shows its ID, times, description and meta', () => {
    const [row] = flattenIntentions([entry('db', [{
      Name: 'web', Action: 'deny', LegacyID: 'f0e1', Description: 'no', LegacyMeta: { team: 'a' },
      LegacyCreateTime: '2026-12-07T12:00:00Z', LegacyUpdateTime: '2026-12-07T12:00:01Z',
    }])]);
    assert.deepEqual(Object.keys(row!).slice(0, 4), ['CreatedAt', 'UpdatedAt', 'ID', 'Description']);
    assert.equal(row!.ID, 'f0e1');
    assert.deepEqual(row!.Meta, { team: 'a' });
  });
});

describe('matching', () => {
  const list = flattenIntentions([
    entry('*', [deny('*'), allow('web')]),
    entry('db', [allow('web'), deny('*')]),
    entry('api', [allow('admin')]),
    entry('db2', [{ Name: 'web', Peer: 'other', Action: 'allow' }]),
  ]);
  const rows: Array<[string, 'source' | 'destination', string, string[]]> = [
    ['by destination: exact and wildcard destinations, every source', 'destination', 'db', ['web->db', '*->db', 'web->*', '*->*']],
    ['by destination: a service with no entry of its own gets the wildcard entry', 'destination', 'cache', ['web->*', '*->*']],
    ['by source: exact and wildcard sources, local ones only', 'source', 'web', ['web->db', '*->db', 'web->*', '*->*']],
    ['by source: a service named nowhere gets the wildcard sources', 'source', 'billing', ['*->db', '*->*']],
  ];
  for (const [name, by, svc, want] of rows) {
    test(name, () => assert.deepEqual(matchIntentions(list, by, svc).map((i) => `${i.SourceName}->${i.DestinationName}`), want));
  }
  test('exact lookup does not expand wildcards', () => {
    assert.equal(exactIntention(list, 'web', 'db')?.Action, 'allow');
    assert.equal(exactIntention(list, 'api', 'db'), undefined);
    assert.equal(exactIntention(list, '*', 'db')?.Action, 'deny');
  });
});

describe('decisions', () => {
  const rows: Array<[string, IntentionsEntry[], string, string, boolean, string]> = [
    ['no intentions: the default (allow without ACLs)', [], 'web', 'db', true, 'Default behavior configured by ACLs'],
    ['exact allow', [entry('db', [allow('web')])], 'web', 'db', true, 'Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)'],
    ['exact deny', [entry('db', [deny('web')])], 'web', 'db', false, 'Matched L4 intention: default/web => default/db (Precedence: 9, Action: DENY)'],
    ['* → * deny makes the mesh deny by default', [entry('*', [deny('*')])], 'web', 'db', false, 'Matched L4 intention: default/* => default/* (Precedence: 5, Action: DENY)'],
    ['an exact allow beats * → * deny', [entry('*', [deny('*')]), entry('db', [allow('web')])], 'web', 'db', true, 'Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)'],
    ['exact destination beats exact source: * → db deny over web → * allow', [entry('*', [allow('web')]), entry('db', [deny('*')])], 'web', 'db', false, 'Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)'],
    ['web → * allow beats * → * deny', [entry('*', [deny('*'), allow('web')])], 'web', 'db', true, 'Matched L4 intention: default/web => default/* (Precedence: 6, Action: ALLOW)'],
    ['another source is not matched', [entry('db', [deny('api')])], 'web', 'db', true, 'Default behavior configured by ACLs'],
    ['an L7 intention is a deny for an L4 decision', [entry('db', [{ Name: 'web', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }])], 'web', 'db', false, 'Matched L7 intention: default/web => default/db (Precedence: 9, Permissions: 1)'],
    ['a peer source does not match a local caller', [entry('db', [{ Name: 'web', Peer: 'p', Action: 'deny' }])], 'web', 'db', true, 'Default behavior configured by ACLs'],
  ];
  for (const [name, entries, src, dst, allowed, reason] of rows) {
    test(name, () => {
      const list = flattenIntentions(entries);
      assert.deepEqual(authorizeConnection(list, src, dst, true), { Authorized: allowed, Reason: reason });
      assert.equal(decideIntention(list, src, dst, true).allowed, allowed);
    });
  }
  test('a deny default (ACL default_policy deny) applies only when nothing matches', () => {
    assert.equal(authorizeConnection([], 'web', 'db', false).Authorized, false);
    assert.equal(authorizeConnection(flattenIntentions([entry('db', [allow('web')])]), 'web', 'db', false).Authorized, true);
  });
  test('the default: ACLs (allow, absent) unless default_intention_policy is set', () => {
    assert.deepEqual(intentionDefault(''), { allow: true, reason: 'Default behavior configured by ACLs' });
    assert.deepEqual(intentionDefault('deny'), { allow: false, reason: 'Default intention policy' });
    assert.deepEqual(intentionDefault('allow'), { allow: true, reason: 'Default intention policy' });
  });
  test('String() shows the legacy ID', () => {
    const [row] = flattenIntentions([entry('db', [{ Name: 'web', Action: 'allow', LegacyID: 'abc' }])]);
    assert.equal(intentionString(row!), 'default/web => default/db (ID: abc, Precedence: 9, Action: ALLOW)');
  });
});
