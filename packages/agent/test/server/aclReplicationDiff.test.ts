// What a secondary's ACL replication applies (server/aclReplication.ts diffRows) and which ACL
// writes it sends to the primary (http/aclPrimaryWrites.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffRows } from '../../src/server/aclReplication.ts';
import { aclWriteInPrimary } from '../../src/http/aclPrimaryWrites.ts';
import type { StateReader } from '../../src/state/index.ts';

const row = (ID: string, extra: Record<string, unknown> = {}, idx = 1) => ({ ID, Name: ID, Rules: '', ...extra, CreateIndex: idx, ModifyIndex: idx });

test('diffRows: rows equal but for their indexes and CreateTime are no change; new, changed and removed rows are', () => {
  const local = [row('a', { Rules: 'x' }, 5), row('b', {}, 6), row('gone', {}, 7), row('t', { CreateTime: '2026-01-01T00:00:00Z' }, 8)];
  const remote = [row('a', { Rules: 'x' }, 50), row('b', { Rules: 'changed' }, 51), row('new', {}, 52), row('t', { CreateTime: '2025-01-01T00:00:00Z' }, 53)];
  const { upserts, deletes } = diffRows(local, remote, (r) => r.ID);
  assert.deepEqual(upserts.map((u) => [u.row.ID, u.create]), [['b', false], ['new', true]]);
  assert.deepEqual(deletes.map((d) => d.ID), ['gone']);
});

test('aclWriteInPrimary: policies and roles always; tokens unless local (the stored row decides, else the body)', () => {
  const tokens: Record<string, { Local: boolean }> = { loc: { Local: true }, glob: { Local: false } };
  const store = { aclToken: (id: string) => ({ index: 1, value: tokens[id] ?? null }) } as unknown as StateReader;
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));
  assert.equal(aclWriteInPrimary('/v1/acl/policy', 'PUT', '', body({ Name: 'p' }), store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/policy/', 'DELETE', 'some-id', undefined, store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/role', 'PUT', '', body({}), store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/policy/', 'GET', 'some-id', undefined, store), false, 'reads stay');
  assert.equal(aclWriteInPrimary('/v1/acl/token', 'PUT', '', body({ Local: true }), store), false);
  assert.equal(aclWriteInPrimary('/v1/acl/token', 'PUT', '', body({}), store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/token', 'PUT', '', Buffer.from('{not json'), store), true, 'not local unless it says so');
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'PUT', 'loc', body({ Local: false }), store), false, 'the stored row decides');
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'DELETE', 'loc', undefined, store), false);
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'DELETE', 'glob', undefined, store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'PUT', 'glob/clone', body({}), store), true);
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'PUT', 'loc/clone', body({}), store), false);
  assert.equal(aclWriteInPrimary('/v1/acl/token/', 'DELETE', 'unknown', undefined, store), true, 'perhaps not replicated yet');
  assert.equal(aclWriteInPrimary('/v1/acl/bootstrap', 'PUT', '', undefined, store), false);
});
