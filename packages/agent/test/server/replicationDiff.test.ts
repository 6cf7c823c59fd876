// The diff a secondary's config entry replication applies (server/replication.ts): by content, not
// by the indexes each datacenter's Raft log assigns; dependencies first, deletes in reverse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffConfigEntries } from '../../src/server/replication.ts';
import type { ConfigEntry } from '../../src/state/index.ts';

const e = (Kind: string, Name: string, extra: Record<string, unknown> = {}, idx = 1): ConfigEntry =>
  ({ Kind, Name, ...extra, CreateIndex: idx, ModifyIndex: idx }) as unknown as ConfigEntry;

test('equal content at other indexes is no change; changed, new and removed entries are', () => {
  const local = [e('service-defaults', 'web', { Protocol: 'http' }, 7), e('service-defaults', 'old', {}, 8), e('service-router', 'gone', {}, 9)];
  const remote = [
    e('service-defaults', 'web', { Protocol: 'http' }, 100),
    e('service-router', 'web', { Routes: [] }, 103),
    e('service-resolver', 'web', { ConnectTimeout: '3s' }, 102),
    e('proxy-defaults', 'global', { Config: { b: 1, a: 2 } }, 101),
  ];
  const { upserts, deletes } = diffConfigEntries(local, remote);
  assert.deepEqual(upserts.map((x) => `${x.Kind}/${x.Name}`), ['proxy-defaults/global', 'service-resolver/web', 'service-router/web']);
  assert.deepEqual(deletes.map((x) => `${x.Kind}/${x.Name}`), ['service-router/gone', 'service-defaults/old']);
  // Key order inside an entry does not matter; a changed value does.
  assert.equal(diffConfigEntries([e('proxy-defaults', 'global', { Config: { a: 2, b: 1 } })], [e('proxy-defaults', 'global', { Config: { b: 1, a: 2 } }, 5)]).upserts.length, 0);
  assert.equal(diffConfigEntries([e('proxy-defaults', 'global', { Config: { a: 2 } })], [e('proxy-defaults', 'global', { Config: { a: 3 } })]).upserts.length, 1);
});
