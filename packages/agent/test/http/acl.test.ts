// ACL enforcement per endpoint family (http/aclEnforce.ts through the real HTTP server): for each
// family, a request that needs read and one that needs write (or a list that is filtered), asked
// with the anonymous token, a token with read, with write, with deny, and with a rule on a prefix
// that does not cover the name; under default_policy deny and allow.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults } from '../../src/config/runtime.ts';
import { storeResolver, isExpired } from '../../src/http/aclResolve.ts';
import { GLOBAL_MANAGEMENT_RULES } from '../../src/acl/rules.ts';
import { ACL_ANONYMOUS_ACCESSOR_ID, ACL_GLOBAL_MANAGEMENT_ID } from '../../src/state/index.ts';
import { harness, NODE, type Harness } from './helpers.ts';

type Kind = 'anonymous' | 'read' | 'write' | 'deny' | 'uncovered';
const KINDS: Kind[] = ['anonymous', 'read', 'write', 'deny', 'uncovered'];

interface Family {
  name: string;
  /** The rules for a token of each kind (anonymous: none). */
  rules: Record<Exclude<Kind, 'anonymous'>, string>;
  /** Global resources (acl) are never granted by default_policy = allow. */
  neverByDefault?: boolean;
  /** A list filtered to nothing answers 404 (KV, as Consul's: the filter runs before the 404 check). */
  emptyIs404?: boolean;
  /** A request needing read: a single object (403 when refused) or a list (filtered). */
  read: { method: string; url: string; body?: unknown; list?: (body: unknown) => boolean };
  /** A request needing write (403 when refused). */
  write: { method: string; url: string; body?: unknown };
}

const named = (res: string, name: string, extra = '') => (p: string) => `${res} "${name}" { policy = "${p}"${extra} }`;

const FAMILIES: Family[] = [
  {
    name: 'kv', rules: { read: 'key_prefix "app/" { policy = "read" }', write: 'key_prefix "app/" { policy = "write" }', deny: 'key_prefix "app/" { policy = "deny" }', uncovered: 'key_prefix "zzz/" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/kv/app/x' },
    write: { method: 'PUT', url: '/v1/kv/app/y', body: 'v' },
  },
  {
    name: 'kv recursive', emptyIs404: true, rules: { read: 'key_prefix "app/" { policy = "read" }', write: 'key_prefix "app/" { policy = "write" }', deny: 'key_prefix "app/" { policy = "deny" }', uncovered: 'key_prefix "zzz/" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/kv/app/?recurse', list: (b) => Array.isArray(b) && b.some((e: { Key: string }) => e.Key === 'app/x') },
    write: { method: 'DELETE', url: '/v1/kv/app/tree/?recurse' },
  },
  {
    name: 'catalog', rules: { read: named('service', 'web')('read'), write: named('service', 'web')('write'), deny: named('service', 'web')('deny'), uncovered: 'service_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/catalog/services', list: (b) => typeof b === 'object' && b !== null && 'web' in b },
    write: { method: 'PUT', url: '/v1/catalog/register', body: { Node: NODE, Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: 'web-2', Service: 'web', Port: 81 } } },
  },
  {
    name: 'agent services', rules: { read: named('service', 'web')('read'), write: named('service', 'web')('write'), deny: named('service', 'web')('deny'), uncovered: 'service_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/agent/services', list: (b) => typeof b === 'object' && b !== null && Object.values(b).some((s: { Service: string }) => s.Service === 'web') },
    write: { method: 'PUT', url: '/v1/agent/service/register', body: { Name: 'web', ID: 'web-local-2', Port: 82 } },
  },
  {
    name: 'agent', rules: { read: named('agent', NODE)('read'), write: named('agent', NODE)('write'), deny: named('agent', NODE)('deny'), uncovered: 'agent_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/agent/self' },
    write: { method: 'PUT', url: '/v1/agent/reload' },
  },
  {
    name: 'session', rules: { read: named('session', NODE)('read'), write: named('session', NODE)('write'), deny: named('session', NODE)('deny'), uncovered: 'session_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/session/list', list: (b) => Array.isArray(b) && b.length > 0 },
    write: { method: 'PUT', url: '/v1/session/create', body: { Node: NODE, Name: 's' } },
  },
  {
    name: 'event', rules: { read: named('event', 'deploy')('read'), write: named('event', 'deploy')('write'), deny: named('event', 'deploy')('deny'), uncovered: 'event_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/event/list', list: (b) => Array.isArray(b) && b.some((e: { Name: string }) => e.Name === 'deploy') },
    write: { method: 'PUT', url: '/v1/event/fire/deploy' },
  },
  {
    name: 'config entries', rules: { read: named('service', 'web')('read'), write: named('service', 'web')('write'), deny: named('service', 'web')('deny'), uncovered: 'service_prefix "zzz" { policy = "write" }' },
    read: { method: 'GET', url: '/v1/config/service-defaults/web' },
    write: { method: 'PUT', url: '/v1/config', body: { Kind: 'service-defaults', Name: 'web', Protocol: 'http' } },
  },
  {
    name: 'intentions', rules: { read: named('service', 'web')('read'), write: named('service', 'web', ' intentions = "write"')('read'), deny: named('service', 'web')('deny'), uncovered: 'service_prefix "zzz" { policy = "write" intentions = "write" }' },
    read: { method: 'GET', url: '/v1/connect/intentions', list: (b) => Array.isArray(b) && b.some((i: { DestinationName: string }) => i.DestinationName === 'web') },
    write: { method: 'PUT', url: '/v1/connect/intentions/exact?source=api&destination=web', body: { Action: 'deny' } },
  },
  {
    name: 'intention exact', rules: { read: named('service', 'web')('read'), write: named('service', 'web', ' intentions = "write"')('read'), deny: named('service', 'web')('deny'), uncovered: 'service_prefix "zzz" { policy = "write" intentions = "write" }' },
    read: { method: 'GET', url: '/v1/connect/intentions/exact?source=api&destination=web' },
    write: { method: 'DELETE', url: '/v1/connect/intentions/exact?source=nobody&destination=web' },
  },
  {
    name: 'operator', rules: { read: 'operator = "read"', write: 'operator = "write"', deny: 'operator = "deny"', uncovered: 'keyring = "write"' },
    read: { method: 'GET', url: '/v1/connect/ca/configuration' },
    write: { method: 'PUT', url: '/v1/connect/ca/configuration', body: { Provider: 'consul', Config: {} } },
  },
  {
    name: 'mesh config entries', rules: { read: 'mesh = "read"', write: 'mesh = "write"', deny: 'mesh = "deny"', uncovered: 'keyring = "write"' },
    read: { method: 'GET', url: '/v1/config/proxy-defaults', list: () => true },
    write: { method: 'PUT', url: '/v1/config', body: { Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } } },
  },
  {
    name: 'acl', neverByDefault: true, rules: { read: 'acl = "read"', write: 'acl = "write"', deny: 'acl = "deny"', uncovered: 'operator = "write"' },
    read: { method: 'GET', url: '/v1/acl/policies' },
    write: { method: 'PUT', url: '/v1/acl/policy', body: { Name: 'p-new', Rules: '' } },
  },
  {
    name: 'txn', rules: { read: 'key_prefix "app/" { policy = "read" }', write: 'key_prefix "app/" { policy = "write" }', deny: 'key_prefix "app/" { policy = "deny" }', uncovered: 'key_prefix "zzz/" { policy = "write" }' },
    read: { method: 'PUT', url: '/v1/txn', body: [{ KV: { Verb: 'get', Key: 'app/x' } }] },
    write: { method: 'PUT', url: '/v1/txn', body: [{ KV: { Verb: 'set', Key: 'app/t', Value: 'eA==' } }] },
  },
];

/** What a token of this kind may do (the expected answer). */
function allowed(kind: Kind, need: 'read' | 'write', defaultAllow: boolean, neverByDefault: boolean): boolean {
  switch (kind) {
    case 'anonymous': case 'uncovered': return defaultAllow && !neverByDefault;
    case 'read': return need === 'read';
    case 'write': return true;
    case 'deny': return false;
  }
}

const MGMT = 'mgmt-secret';

for (const defaultAllow of [false, true]) {
  describe(`ACLs per endpoint family, default_policy = ${defaultAllow ? 'allow' : 'deny'}`, () => {
    let h: Harness;
    let n = 0;
    /** A token whose only policy holds `rules`; its secret. */
    const tokenWith = (rules: string): string => {
      n++;
      const p = h.apply({ type: 'aclPolicySet', Create: true, Policy: { ID: `p${n}`, Name: `p${n}`, Rules: rules } });
      assert.ok(p.ok, JSON.stringify(p));
      const t = h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: `a${n}`, SecretID: `s${n}`, Policies: [{ ID: `p${n}` }] } });
      assert.ok(t.ok, JSON.stringify(t));
      return `s${n}`;
    };
    before(async () => {
      const config = { acl: { ...defaults().acl, enabled: true, defaultPolicy: defaultAllow ? 'allow' as const : 'deny' as const } };
      h = harness({
        config,
        acl: (store, cfg) => ({ resolver: storeResolver(store, cfg, () => ''), defaultToken: '', serviceTokens: new Map() }),
      });
      h.apply({ type: 'aclInit', ServerSecret: 'srv', GlobalManagement: { ID: ACL_GLOBAL_MANAGEMENT_ID, Name: 'global-management', Rules: GLOBAL_MANAGEMENT_RULES }, Anonymous: { AccessorID: ACL_ANONYMOUS_ACCESSOR_ID, SecretID: 'anonymous' } });
      h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'mgmt', SecretID: MGMT, Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] } });
      // Objects every read names, written with the management token.
      const m = { 'X-Consul-Token': MGMT };
      const setup: [string, string, unknown][] = [
        ['PUT', '/v1/kv/app/x', 'x'],
        ['PUT', '/v1/catalog/register', { Node: NODE, Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: 'web-1', Service: 'web', Port: 80 } }],
        ['PUT', '/v1/agent/service/register', { Name: 'web', ID: 'web-local', Port: 80 }],
        ['PUT', '/v1/session/create', { Node: NODE, Name: 'setup' }],
        ['PUT', '/v1/event/fire/deploy', undefined],
        ['PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web', Protocol: 'http' }],
        ['PUT', '/v1/connect/intentions/exact?source=api&destination=web', { Action: 'allow' }],
      ];
      for (const [method, url, body] of setup) {
        const r = await h.req(method, url, body, m);
        assert.equal(r.statusCode, 200, `${method} ${url}: ${r.body}`);
      }
    });
    after(async () => h.close());

    for (const f of FAMILIES) {
      for (const kind of KINDS) {
        test(`${f.name}: ${kind} token`, async () => {
          const secret = kind === 'anonymous' ? undefined : tokenWith(f.rules[kind]);
          const headers: Record<string, string> = secret ? { 'X-Consul-Token': secret } : {};
          const canRead = allowed(kind, 'read', defaultAllow, f.neverByDefault === true);
          const canWrite = allowed(kind, 'write', defaultAllow, f.neverByDefault === true);
          const r = await h.req(f.read.method, f.read.url, f.read.body, headers);
          if (f.read.list && f.emptyIs404 && !canRead) {
            assert.equal(r.statusCode, 404, `read ${f.read.url}: ${r.body}`);
            assert.equal(r.headers['x-consul-results-filtered-by-acls'], 'true');
          } else if (f.read.list) {
            assert.equal(r.statusCode, 200, r.body);
            const body: unknown = JSON.parse(r.body);
            if (f.name !== 'mesh config entries') {
              assert.equal(f.read.list(body), canRead, `read ${f.read.url}: ${r.body}`);
              if (!canRead) assert.equal(r.headers['x-consul-results-filtered-by-acls'], 'true');
            }
          } else if (canRead) {
            assert.notEqual(r.statusCode, 403, `read ${f.read.url}: ${r.body}`);
          } else {
            assert.equal(r.statusCode, 403, `read ${f.read.url}: ${r.statusCode} ${r.body}`);
            assert.match(r.body, /^Permission denied: (anonymous token|token with AccessorID 'a\d+') lacks permission '\w+:read'/);
          }
          const w = await h.req(f.write.method, f.write.url, f.write.body, headers);
          if (canWrite) {
            assert.notEqual(w.statusCode, 403, `write ${f.write.url}: ${w.body}`);
          } else {
            assert.equal(w.statusCode, 403, `write ${f.write.url}: ${w.statusCode} ${w.body}`);
            assert.match(w.body, /^Permission denied/);
          }
        });
      }
    }

    test('with no intention and no default_intention_policy, the ACL default decides a connection', async () => {
      const r = await h.req('GET', '/v1/connect/intentions/check?source=api2&destination=db', undefined, { 'X-Consul-Token': MGMT });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal((JSON.parse(r.body) as { Allowed: boolean }).Allowed, defaultAllow);
    });

    test('a refused write changes nothing', async () => {
      const before = h.store.lastIndex();
      const r = await h.req('PUT', '/v1/kv/app/nothing', 'x');
      if (defaultAllow) return; // anonymous may write under default allow
      assert.equal(r.statusCode, 403);
      assert.equal(h.store.lastIndex(), before);
      assert.equal(h.store.kvGet('app/nothing').value, null);
    });

    test('an expired token is not found; its cached authorizer is not used', async () => {
      h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'exp', SecretID: 'exp-secret', Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }], ExpirationTime: new Date(Date.now() + 60_000).toISOString() } });
      assert.equal((await h.req('GET', '/v1/kv/app/x', undefined, { 'X-Consul-Token': 'exp-secret' })).statusCode, 200);
      const expired = h.store.aclToken('exp').value!;
      assert.equal(isExpired({ ExpirationTime: expired.ExpirationTime }, Date.now() + 120_000), true);
      h.apply({ type: 'aclTokenSet', Create: false, Token: { ...expired, ExpirationTime: new Date(Date.now() - 1000).toISOString() } });
      const r = await h.req('GET', '/v1/kv/app/x', undefined, { 'X-Consul-Token': 'exp-secret' });
      assert.equal(r.statusCode, 403);
      assert.equal(r.body, 'ACL not found');
    });
  });
}

describe('acl.enable_key_list_policy: KV listings need list on the prefix', () => {
  for (const enabled of [true, false]) {
    for (const defaultAllow of [false, true]) {
      test(`enable_key_list_policy = ${enabled}, default_policy = ${defaultAllow ? 'allow' : 'deny'}`, async () => {
        const config = { acl: { ...defaults().acl, enabled: true, defaultPolicy: defaultAllow ? 'allow' as const : 'deny' as const, enableKeyListPolicy: enabled } };
        const h = harness({ config, acl: (store, cfg) => ({ resolver: storeResolver(store, cfg, () => ''), defaultToken: '', serviceTokens: new Map() }) });
        try {
          h.apply({ type: 'aclInit', ServerSecret: 'srv', GlobalManagement: { ID: ACL_GLOBAL_MANAGEMENT_ID, Name: 'global-management', Rules: GLOBAL_MANAGEMENT_RULES }, Anonymous: { AccessorID: ACL_ANONYMOUS_ACCESSOR_ID, SecretID: 'anonymous' } });
          h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'mgmt', SecretID: MGMT, Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] } });
          const tokens: Record<string, string> = {
            read: 'key_prefix "app/" { policy = "read" }',
            list: 'key_prefix "app/" { policy = "list" }',
            write: 'key_prefix "app/" { policy = "write" }',
            // list on app/, but app/secret/ is readable by nobody: the listing is allowed and filtered.
            listSecretDenied: 'key_prefix "app/" { policy = "list" }\nkey_prefix "app/secret/" { policy = "deny" }',
            uncovered: 'key_prefix "zzz/" { policy = "list" }',
          };
          for (const [name, rules] of Object.entries(tokens)) {
            assert.ok(h.apply({ type: 'aclPolicySet', Create: true, Policy: { ID: `p-${name}`, Name: `p-${name}`, Rules: rules } }).ok);
            assert.ok(h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: `a-${name}`, SecretID: `s-${name}`, Policies: [{ ID: `p-${name}` }] } }).ok);
          }
          for (const key of ['app/a', 'app/secret/b']) {
            assert.equal((await h.req('PUT', `/v1/kv/${key}`, 'v', { 'X-Consul-Token': MGMT })).statusCode, 200);
          }
          const as = (name: string) => ({ 'X-Consul-Token': `s-${name}` });
          for (const url of ['/v1/kv/app/?recurse', '/v1/kv/app/?keys', '/v1/kv/app/?keys&separator=/']) {
            // read on the prefix: enough to list only while the option is off.
            const r = await h.req('GET', url, undefined, as('read'));
            if (enabled) {
              assert.equal(r.statusCode, 403, `${url} read: ${r.body}`);
              assert.equal(r.body, 'Permission denied');
            } else {
              assert.equal(r.statusCode, 200, `${url} read: ${r.body}`);
            }
            // list and write grant the listing.
            for (const name of ['list', 'write']) assert.equal((await h.req('GET', url, undefined, as(name))).statusCode, 200, `${url} ${name}`);
            // Allowed to list, entries still filtered by read.
            const f = await h.req('GET', url, undefined, as('listSecretDenied'));
            assert.equal(f.statusCode, 200, f.body);
            assert.doesNotMatch(f.body, /secret/);
            assert.equal(f.headers['x-consul-results-filtered-by-acls'], 'true');
            // No rule on the prefix: the default policy decides the listing (then nothing is readable
            // under default deny).
            const u = await h.req('GET', url, undefined, as('uncovered'));
            if (enabled && !defaultAllow) assert.equal(u.statusCode, 403, `${url} uncovered: ${u.body}`);
            else assert.notEqual(u.statusCode, 403, `${url} uncovered: ${u.body}`);
            // The management token lists everything.
            assert.equal((await h.req('GET', url, undefined, { 'X-Consul-Token': MGMT })).statusCode, 200);
          }
          // A single key needs read, never list.
          assert.equal((await h.req('GET', '/v1/kv/app/a', undefined, as('read'))).statusCode, 200);
        } finally {
          await h.close();
        }
      });
    }
  }
});

describe('X-Consul-Default-ACL-Policy on every answer (Consul 1.9+), ACLs on or off', () => {
  for (const acl of [undefined, 'allow', 'deny'] as const) {
    test(acl ? `acl.enabled, default_policy = ${acl}` : 'ACLs off: allow', async () => {
      const h = acl
        ? harness({
          config: { acl: { ...defaults().acl, enabled: true, defaultPolicy: acl } },
          acl: (store, cfg) => ({ resolver: storeResolver(store, cfg, () => ''), defaultToken: '', serviceTokens: new Map() }),
        })
        : harness();
      try {
        const want = acl ?? 'allow';
        // A read, a 404, a 400 and a refused or accepted write: the header is on each.
        for (const [method, url, body] of [['GET', '/v1/status/leader'], ['GET', '/v1/kv/missing'], ['GET', '/v1/kv/x?index=nope'], ['PUT', '/v1/kv/x', 'v']] as const) {
          const r = await h.req(method, url, body);
          assert.equal(r.headers['x-consul-default-acl-policy'], want, `${method} ${url} (${r.statusCode})`);
        }
      } finally {
        await h.close();
      }
    });
  }
});

describe('KV listings are filtered before ?keys folds them and before the 404, as Consul\'s ListKeys', () => {
  test('a folder shows when a key under it may be read; nothing readable is a 404 that says it was filtered', async () => {
    const config = { acl: { ...defaults().acl, enabled: true, defaultPolicy: 'deny' as const } };
    const h = harness({ config, acl: (store, cfg) => ({ resolver: storeResolver(store, cfg, () => ''), defaultToken: '', serviceTokens: new Map() }) });
    try {
      h.apply({ type: 'aclInit', ServerSecret: 'srv', GlobalManagement: { ID: ACL_GLOBAL_MANAGEMENT_ID, Name: 'global-management', Rules: GLOBAL_MANAGEMENT_RULES }, Anonymous: { AccessorID: ACL_ANONYMOUS_ACCESSOR_ID, SecretID: 'anonymous' } });
      h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'mgmt', SecretID: MGMT, Policies: [{ ID: ACL_GLOBAL_MANAGEMENT_ID }] } });
      assert.ok(h.apply({ type: 'aclPolicySet', Create: true, Policy: { ID: 'p', Name: 'p', Rules: 'key "app/sub/y" { policy = "read" }' } }).ok);
      assert.ok(h.apply({ type: 'aclTokenSet', Create: true, Token: { AccessorID: 'a', SecretID: 'one-key', Policies: [{ ID: 'p' }] } }).ok);
      for (const key of ['app/a', 'app/sub/y', 'app/sub/z']) assert.equal((await h.req('PUT', `/v1/kv/${key}`, 'v', { 'X-Consul-Token': MGMT })).statusCode, 200);
      const as = { 'X-Consul-Token': 'one-key' };
      const folded = await h.req('GET', '/v1/kv/app/?keys&separator=/', undefined, as);
      assert.equal(folded.statusCode, 200, folded.body);
      assert.deepEqual(JSON.parse(folded.body), ['app/sub/']);
      assert.equal(folded.headers['x-consul-results-filtered-by-acls'], 'true');
      const flat = await h.req('GET', '/v1/kv/app/?keys', undefined, as);
      assert.deepEqual(JSON.parse(flat.body), ['app/sub/y']);
      const rec = await h.req('GET', '/v1/kv/app/?recurse', undefined, as);
      assert.deepEqual((JSON.parse(rec.body) as { Key: string }[]).map((e) => e.Key), ['app/sub/y']);
      assert.equal(rec.headers['x-consul-results-filtered-by-acls'], 'true');
      // Nothing readable under the prefix: 404, with the header saying why.
      for (const url of ['/v1/kv/app/a?keys', '/v1/kv/app/a?recurse']) {
        const none = await h.req('GET', url, undefined, as);
        assert.equal(none.statusCode, 404, `${url}: ${none.body}`);
        assert.equal(none.headers['x-consul-results-filtered-by-acls'], 'true');
      }
      // The management token sees everything, unfiltered.
      const all = await h.req('GET', '/v1/kv/app/?keys&separator=/', undefined, { 'X-Consul-Token': MGMT });
      assert.deepEqual(JSON.parse(all.body), ['app/a', 'app/sub/']);
      assert.equal(all.headers['x-consul-results-filtered-by-acls'], undefined);
    } finally {
      await h.close();
    }
  });
});
