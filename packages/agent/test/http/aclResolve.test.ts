// A client agent's token resolution (http/aclResolve.ts remoteResolver): answers kept for
// acl.token_ttl, and acl.down_policy while no server answers (Consul's extend-cache, async-cache,
// allow, deny); a token the server does not know is "ACL not found" at once. Plus the servers'
// store resolver: a cached authorizer follows policy edits (the ACL tables' generation).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults, type RuntimeConfig } from '../../src/config/runtime.ts';
import { remoteResolver, storeResolver, type ResolvedTokenWire } from '../../src/http/aclResolve.ts';
import type { ForwardedRequest, ForwardedResponse } from '../../src/http/forward.ts';
import { StateStore } from '../../src/state/index.ts';

type DownPolicy = RuntimeConfig['acl']['downPolicy'];

function setup(downPolicy: DownPolicy) {
  let up = true;
  let calls = 0;
  let clock = 1_000_000;
  const wire: ResolvedTokenWire = { AccessorID: 'acc-1', Rules: ['key_prefix "app/" { policy = "write" }'], ExpirationTime: '', Management: false };
  const forward = async (req: ForwardedRequest): Promise<ForwardedResponse> => {
    calls++;
    if (!up) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ERR_NO_SERVERS' });
    if (req.headers['x-consul-token'] === 'unknown') return { status: 403, headers: {}, body: Buffer.from('ACL not found') };
    return { status: 200, headers: {}, body: Buffer.from(JSON.stringify(wire)) };
  };
  const acl = { ...defaults().acl, enabled: true, defaultPolicy: 'deny' as const, downPolicy, tokenTtlMs: 30_000 };
  const config = { nodeName: 'client-1', acl: { ...acl, tokens: { ...acl.tokens, agentRecovery: 'recovery-secret' } } };
  const r = remoteResolver(forward, config, () => clock);
  return {
    r,
    calls: () => calls,
    down: () => { up = false; },
    advance: (ms: number) => { clock += ms; },
  };
}

const canWrite = async (r: ReturnType<typeof setup>['r'], key: string) => (await r.resolve('tok')).authorizer.allowed('key', 'write', key);

describe('client agents resolve tokens through a server', () => {
  test('an answer is kept for token_ttl: one server call', async () => {
    const s = setup('extend-cache');
    assert.equal(await canWrite(s.r, 'app/x'), true);
    assert.equal(await canWrite(s.r, 'other'), false);
    s.advance(29_000);
    await s.r.resolve('tok');
    assert.equal(s.calls(), 1);
    s.advance(2_000);
    await s.r.resolve('tok');
    assert.equal(s.calls(), 2);
  });

  const downRows: [DownPolicy, 'app/x' | 'other', boolean][] = [
    ['extend-cache', 'app/x', true],
    ['extend-cache', 'other', false],
    ['async-cache', 'app/x', true],
    ['allow', 'other', true],
    ['deny', 'app/x', false],
  ];
  for (const [policy, key, expected] of downRows) {
    test(`down_policy ${policy}: ${key} is ${expected ? 'allowed' : 'refused'} once the servers are gone`, async () => {
      const s = setup(policy);
      await s.r.resolve('tok');
      s.down();
      s.advance(60_000);
      assert.equal(await canWrite(s.r, key), expected);
    });
  }

  test('extend-cache with nothing cached: an error, not a guess', async () => {
    const s = setup('extend-cache');
    s.down();
    await assert.rejects(async () => s.r.resolve('tok'), /no server could resolve the token/);
  });

  test('a token the server does not know: 403 ACL not found, even with extend-cache', async () => {
    const s = setup('extend-cache');
    await assert.rejects(async () => s.r.resolve('unknown'), (e: Error & { statusCode?: number }) => e.statusCode === 403 && e.message === 'ACL not found');
  });

  test('the agent recovery token works with every server gone: agent:write on this node, node:read', async () => {
    const s = setup('deny');
    s.down();
    const z = (await s.r.resolve('recovery-secret')).authorizer;
    assert.equal(z.allowed('agent', 'write', 'client-1'), true);
    assert.equal(z.allowed('agent', 'write', 'client-2'), false);
    assert.equal(z.allowed('node', 'read', 'anything'), true);
    assert.equal(z.allowed('key', 'read', 'app/x'), false);
    assert.equal(s.calls(), 0);
  });

  test('a 10 KB token or one with a NUL byte is refused before any server call', async () => {
    const s = setup('allow');
    await assert.rejects(async () => s.r.resolve('x'.repeat(10_240)), /ACL not found: ACL token is too long/);
    await assert.rejects(async () => s.r.resolve('a\u0000b'), /control character/);
    assert.equal(s.calls(), 0);
  });
});

describe('servers resolve tokens from their replica', () => {
  test('a cached authorizer never outlives a change to its token, its roles or their policies, or a snapshot restore', () => {
    const store = new StateStore();
    let i = 1;
    const apply = (cmd: Parameters<StateStore['apply']>[1]) => assert.ok(store.apply(i++, cmd).ok);
    apply({ type: 'aclPolicySet', Create: true, Policy: { ID: 'p-app', Name: 'p-app', Rules: 'key_prefix "app/" { policy = "write" }' } });
    apply({ type: 'aclPolicySet', Create: true, Policy: { ID: 'p-db', Name: 'p-db', Rules: 'key_prefix "db/" { policy = "write" }' } });
    apply({ type: 'aclRoleSet', Create: true, Role: { ID: 'r', Name: 'r', Policies: [{ ID: 'p-app' }] } });
    apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a', SecretID: 's', Roles: [{ ID: 'r' }] } });
    const config = { ...defaults(), acl: { ...defaults().acl, enabled: true, defaultPolicy: 'deny' as const } };
    const r = storeResolver(store, config, () => 'server-secret');
    const can = (key: string) => (r.resolve('s') as Exclude<ReturnType<typeof r.resolve>, Promise<unknown>>).authorizer.allowed('key', 'write', key);
    assert.deepEqual([can('app/x'), can('db/x')], [true, false]);
    // The role now links the other policy.
    apply({ type: 'aclRoleSet', Create: false, Role: { ID: 'r', Name: 'r', Policies: [{ ID: 'p-db' }] } });
    assert.deepEqual([can('app/x'), can('db/x')], [false, true]);
    // That policy's rules change.
    apply({ type: 'aclPolicySet', Create: false, Policy: { ID: 'p-db', Name: 'p-db', Rules: 'key_prefix "db/" { policy = "read" }' } });
    assert.deepEqual([can('app/x'), can('db/x')], [false, false]);
    // The token itself: the role replaced by a direct policy link.
    const snap = store.snapshot();
    apply({ type: 'aclTokenSet', Create: false, Token: { AccessorID: 'a', SecretID: 's', Policies: [{ ID: 'p-app' }] } });
    assert.deepEqual([can('app/x'), can('db/x')], [true, false]);
    // The role deleted: a token still linking it loses what it gave.
    apply({ type: 'aclTokenSet', Create: false, Token: { AccessorID: 'a', SecretID: 's', Roles: [{ ID: 'r' }] } });
    apply({ type: 'aclRoleDelete', ID: 'r' });
    assert.deepEqual([can('app/x'), can('db/x')], [false, false]);
    apply({ type: 'aclTokenSet', Create: false, Token: { AccessorID: 'a', SecretID: 's', Policies: [{ ID: 'p-app' }] } });
    assert.deepEqual([can('app/x'), can('db/x')], [true, false]);
    // A snapshot restore (a follower catching up) brings back the older rows, whatever the indexes.
    store.restore(snap);
    assert.deepEqual([can('app/x'), can('db/x')], [false, false], 'the restored role links p-db, now read-only');
    apply({ type: 'aclPolicySet', Create: false, Policy: { ID: 'p-db', Name: 'p-db', Rules: 'key_prefix "db/" { policy = "write" }' } });
    assert.deepEqual([can('app/x'), can('db/x')], [false, true]);
  });

  test('a cached authorizer follows a policy edit and a token deletion', () => {
    const store = new StateStore();
    store.apply(1, { type: 'aclPolicySet', Create: true, Policy: { ID: 'p', Name: 'p', Rules: 'key_prefix "app/" { policy = "write" }' } });
    store.apply(2, { type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a', SecretID: 's', Policies: [{ ID: 'p' }] } });
    const config = { ...defaults(), acl: { ...defaults().acl, enabled: true, defaultPolicy: 'deny' as const } };
    const r = storeResolver(store, config, () => 'server-secret');
    const id = () => r.resolve('s') as Exclude<ReturnType<typeof r.resolve>, Promise<unknown>>;
    assert.equal(id().authorizer.allowed('key', 'write', 'app/x'), true);
    assert.equal(id(), id(), 'a cache hit returns the same compiled identity');
    store.apply(3, { type: 'aclPolicySet', Create: false, Policy: { ID: 'p', Name: 'p', Rules: 'key_prefix "app/" { policy = "read" }' } });
    assert.equal(id().authorizer.allowed('key', 'write', 'app/x'), false);
    store.apply(4, { type: 'aclTokenDelete', AccessorID: 'a' });
    assert.throws(() => r.resolve('s'), /ACL not found/);
    // The servers' own secret is management; the empty token is anonymous (default deny here).
    const srv = r.resolve('server-secret') as Exclude<ReturnType<typeof r.resolve>, Promise<unknown>>;
    assert.equal(srv.authorizer.allowed('acl', 'write'), true);
    const anon = r.resolve('') as Exclude<ReturnType<typeof r.resolve>, Promise<unknown>>;
    assert.equal(anon.authorizer.allowed('key', 'read', 'app/x'), false);
  });
});
