// L7 intentions as Consul's RBAC filter decides them (agent/xds/rbac.go): the caller's
// highest-precedence intention applies; its first matching permission decides; a request no
// permission matches gets the DEFAULT intention policy, never the next intention down (rbac.go
// gives every lower intention "AND NOT <higher source>"), and is denied while the default is unknown.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decideL7, defaultFromAgentSelf, type IntentionDefault, type L7Intention } from '../src/l7Intentions.ts';
import type { HttpRequestInfo } from '../src/routeMatch.ts';

const req = (over: Partial<HttpRequestInfo> = {}): HttpRequestInfo => ({ method: 'GET', path: '/', headers: {}, query: {}, ...over });
const ALLOW: IntentionDefault = { allow: true, reason: 'Default behavior configured by ACLs' };
const DENY: IntentionDefault = { allow: false, reason: 'Default intention policy' };

describe('decideL7: a request no permission matches falls to the default policy', () => {
  // In the agent's precedence order: web's L7 intention, then a wildcard L4 intention.
  const withWildcardDeny: L7Intention[] = [
    { SourceName: 'web', Permissions: [{ Action: 'deny', HTTP: { PathPrefix: '/admin' } }, { Action: 'allow', HTTP: { PathExact: '/pay', Methods: ['POST'] } }] },
    { SourceName: '*', Action: 'deny' },
  ];
  const withWildcardAllow: L7Intention[] = [withWildcardDeny[0]!, { SourceName: '*', Action: 'allow' }];
  const onlyAllowPerms: L7Intention[] = [{ SourceName: 'web', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/api' } }] }];
  const rows: Array<[string, L7Intention[], string, Partial<HttpRequestInfo>, IntentionDefault | undefined, boolean | undefined]> = [
    ['a deny permission matches: denied whatever the default', withWildcardDeny, 'web', { path: '/admin/x' }, ALLOW, false],
    ['an allow permission matches: allowed whatever the default', withWildcardDeny, 'web', { method: 'POST', path: '/pay' }, DENY, true],
    ['no permission matches, default allow: allowed (the * deny below does not cover web)', withWildcardDeny, 'web', { path: '/other' }, ALLOW, true],
    ['no permission matches, default deny: denied (the * allow below does not cover web)', withWildcardAllow, 'web', { path: '/other' }, DENY, false],
    ['no permission matches, default allow, only allow permissions: allowed', onlyAllowPerms, 'web', { path: '/static' }, ALLOW, true],
    ['no permission matches, default deny, only allow permissions: denied', onlyAllowPerms, 'web', { path: '/static' }, DENY, false],
    ['no permission matches and the default is unknown: denied (fail closed)', withWildcardDeny, 'web', { path: '/other' }, undefined, false],
    ['another caller gets the wildcard L4 intention, not the default', withWildcardDeny, 'billing', { path: '/other' }, ALLOW, false],
    ['no intention names the caller: undefined (the agent\'s L4 answer decides)', onlyAllowPerms, 'billing', {}, ALLOW, undefined],
  ];
  for (const [name, ixns, src, over, def, want] of rows) test(name, () => assert.equal(decideL7(ixns, src, req(over), def)?.allowed, want));
  test('the reason names the fallback', () =>
    assert.match(decideL7(withWildcardDeny, 'web', req({ path: '/x' }), ALLOW)!.reason, /no permission matches; Default behavior configured by ACLs: allow/));
});

describe('defaultFromAgentSelf: the local agent\'s default (Consul\'s intentionDefaultAllow)', () => {
  const rows: Array<[string, unknown, boolean, RegExp]> = [
    ['default_intention_policy deny', { DebugConfig: { DefaultIntentionPolicy: 'deny' } }, false, /Default intention policy/],
    ['default_intention_policy allow wins over an ACL deny', { DebugConfig: { DefaultIntentionPolicy: 'allow', ACLsEnabled: true, ACLResolverSettings: { ACLDefaultPolicy: 'deny' } } }, true, /Default intention policy/],
    ['unset, ACLs on with default deny', { DebugConfig: { DefaultIntentionPolicy: '', ACLsEnabled: true, ACLResolverSettings: { ACLDefaultPolicy: 'deny' } } }, false, /ACLs/],
    ['unset, ACLs off: allow', { DebugConfig: { DefaultIntentionPolicy: '', ACLsEnabled: false } }, true, /ACLs/],
    ['an agent that does not say: allow (Consul without ACLs)', {}, true, /ACLs/],
  ];
  for (const [name, self, allow, reason] of rows) test(name, () => {
    const d = defaultFromAgentSelf(self);
    assert.equal(d.allow, allow);
    assert.match(d.reason, reason);
  });
});
