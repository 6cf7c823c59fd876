// The ACL rule language (acl/rules.ts) and the compiled authorizer (acl/authorizer.ts) as tables:
// one table per rule kind (anonymous, read, write, deny, a prefix that does not cover the name;
// default deny and default allow), precedence rows, and malformed rules naming their line.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AclRulesError, GLOBAL_MANAGEMENT_RULES, parseRules } from '../../src/acl/rules.ts';
import { chainedAuthorizer, type Permission, type Resource } from '../../src/acl/authorizer.ts';
import { permissionDeniedMessage, ANONYMOUS_ACCESSOR_ID, secretsEqual, badSecret } from '../../src/acl/identity.ts';
import type { NamedResource } from '../../src/acl/rules.ts';

function authz(rules: string[], defaultAllow: boolean) {
  return chainedAuthorizer(rules.map(parseRules), defaultAllow);
}

type Row = [label: string, rules: string[], defaultAllow: boolean, permission: Permission, name: string, expected: boolean];

/** The same matrix for every named resource: its rule block is written with the resource's name. */
function namedTable(r: NamedResource): Row[] {
  const rule = (kind: string, name: string, policy: string) => `${kind} "${name}" { policy = "${policy}" }`;
  const p = `${r}_prefix`;
  return [
    ['anonymous (no rules), default deny: read', [], false, 'read', 'app/x', false],
    ['anonymous (no rules), default allow: write', [], true, 'write', 'app/x', true],
    ['read rule grants read', [rule(p, 'app/', 'read')], false, 'read', 'app/x', true],
    ['read rule refuses write even with default allow', [rule(p, 'app/', 'read')], true, 'write', 'app/x', false],
    ['write rule grants read and write', [rule(p, 'app/', 'write')], false, 'write', 'app/x', true],
    ['write rule grants read', [rule(p, 'app/', 'write')], false, 'read', 'app/x', true],
    ['deny rule refuses read with default allow', [rule(p, 'app/', 'deny')], true, 'read', 'app/x', false],
    ['prefix not covering the name: default deny', [rule(p, 'app/', 'write')], false, 'read', 'other/x', false],
    ['prefix not covering the name: default allow', [rule(p, 'app/', 'deny')], true, 'write', 'other/x', true],
    ['exact rule beats a prefix rule', [rule(p, '', 'write'), rule(r, 'app/x', 'deny')], false, 'read', 'app/x', false],
    ['exact rule covers only that name', [rule(r, 'app/x', 'write')], false, 'read', 'app/xy', false],
    ['longest prefix wins (longer grants)', [rule(p, '', 'deny'), rule(p, 'app/', 'write')], false, 'write', 'app/x', true],
    ['longest prefix wins (longer denies)', [rule(p, '', 'write'), rule(p, 'app/', 'deny')], false, 'read', 'app/x', false],
    ['deny wins at equal specificity across policies', [rule(p, 'app/', 'write'), rule(p, 'app/', 'deny')], true, 'read', 'app/x', false],
    ['write wins over read at equal specificity', [rule(p, 'app/', 'read'), rule(p, 'app/', 'write')], false, 'write', 'app/x', true],
    ['empty prefix covers everything', [rule(p, '', 'read')], false, 'read', 'anything', true],
  ];
}

for (const r of ['key', 'node', 'service', 'session', 'agent', 'event', 'query'] as const) {
  describe(`${r} / ${r}_prefix rules`, () => {
    for (const [label, rules, defaultAllow, permission, name, expected] of namedTable(r)) {
      test(label, () => {
        assert.equal(authz(rules, defaultAllow).allowed(r, permission, name), expected);
      });
    }
  });
}

describe('key list policy', () => {
  const rows: Row[] = [
    ['list grants list', ['key_prefix "a/" { policy = "list" }'], false, 'list', 'a/', true],
    ['list grants read', ['key_prefix "a/" { policy = "list" }'], false, 'read', 'a/b', true],
    ['list refuses write', ['key_prefix "a/" { policy = "list" }'], true, 'write', 'a/b', false],
    ['read refuses list', ['key_prefix "a/" { policy = "read" }'], true, 'list', 'a/', false],
    ['write grants list', ['key_prefix "a/" { policy = "write" }'], false, 'list', 'a/', true],
  ];
  for (const [label, rules, defaultAllow, permission, name, expected] of rows) {
    test(label, () => assert.equal(authz(rules, defaultAllow).allowed('key', permission, name), expected));
  }
});

describe('key write prefix (recursive delete)', () => {
  const rows: [string, string[], boolean, string, boolean][] = [
    ['write prefix covering, nothing under it', ['key_prefix "a/" { policy = "write" }'], false, 'a/', true],
    ['a read rule under the prefix refuses', ['key_prefix "a/" { policy = "write" }', 'key "a/b" { policy = "read" }'], false, 'a/', false],
    ['covering prefix only reads', ['key_prefix "" { policy = "read" }'], true, 'a/', false],
    ['no rules: default allow', [], true, 'a/', true],
    ['no rules: default deny', [], false, 'a/', false],
  ];
  for (const [label, rules, defaultAllow, prefix, expected] of rows) {
    test(label, () => assert.equal(authz(rules, defaultAllow).keyWritePrefix(prefix), expected));
  }
});

describe('service intentions sub-rule', () => {
  const rows: [string, string[], boolean, Permission, string, boolean][] = [
    ['service read implies intentions read', ['service "web" { policy = "read" }'], false, 'read', 'web', true],
    ['service write does not imply intentions write', ['service "web" { policy = "write" }'], false, 'write', 'web', false],
    ['intentions = "write" grants write', ['service "web" { policy = "read" intentions = "write" }'], false, 'write', 'web', true],
    ['service deny implies intentions deny', ['service "web" { policy = "deny" }'], true, 'read', 'web', false],
    ['intentions = "deny" under a write service', ['service_prefix "" { policy = "write" intentions = "deny" }'], true, 'read', 'db', false],
    ['prefix intentions covers the service', ['service_prefix "w" { policy = "read" intentions = "write" }'], false, 'write', 'web', true],
    ['uncovered service: default deny', ['service_prefix "w" { policy = "read" intentions = "write" }'], false, 'read', 'db', false],
  ];
  for (const [label, rules, defaultAllow, permission, name, expected] of rows) {
    test(label, () => assert.equal(authz(rules, defaultAllow).allowed('intention', permission, name), expected));
  }
});

describe('global resources', () => {
  const rows: [string, string[], boolean, Resource, Permission, boolean][] = [
    ['operator read grants read', ['operator = "read"'], false, 'operator', 'read', true],
    ['operator read refuses write', ['operator = "read"'], true, 'operator', 'write', false],
    ['operator: default deny', [], false, 'operator', 'read', false],
    ['operator: default allow', [], true, 'operator', 'write', true],
    ['keyring write', ['keyring = "write"'], false, 'keyring', 'write', true],
    ['keyring deny with default allow', ['keyring = "deny"'], true, 'keyring', 'read', false],
    ['mesh falls back to operator', ['operator = "write"'], false, 'mesh', 'write', true],
    ['mesh rule beats operator', ['operator = "write"', 'mesh = "read"'], false, 'mesh', 'write', false],
    ['peering falls back to mesh', ['mesh = "read"'], false, 'peering', 'read', true],
    ['acl write', ['acl = "write"'], false, 'acl', 'write', true],
    ['acl is never granted by default allow', [], true, 'acl', 'read', false],
    ['deny wins over write across policies', ['operator = "write"', 'operator = "deny"'], true, 'operator', 'read', false],
  ];
  for (const [label, rules, defaultAllow, resource, permission, expected] of rows) {
    test(label, () => assert.equal(authz(rules, defaultAllow).allowed(resource, permission), expected));
  }
});

describe('global-management rules', () => {
  const a = authz([GLOBAL_MANAGEMENT_RULES], false);
  for (const r of ['key', 'node', 'service', 'session', 'agent', 'event', 'query', 'intention'] as const) {
    test(`${r}:write on anything`, () => assert.equal(a.allowed(r, 'write', 'x/y'), true));
  }
  for (const r of ['acl', 'operator', 'mesh', 'peering', 'keyring'] as const) {
    test(`${r}:write`, () => assert.equal(a.allowed(r, 'write'), true));
  }
});

describe('parsing', () => {
  test('JSON rules mean the same as HCL', () => {
    const hcl = parseRules('key_prefix "a/" { policy = "read" }\nservice "web" { policy = "write"\n intentions = "read" }\noperator = "read"');
    const json = parseRules('{"key_prefix": {"a/": {"policy": "read"}}, "service": {"web": {"policy": "write", "intentions": "read"}}, "operator": "read"}');
    assert.deepEqual(json, hcl);
    assert.deepEqual(hcl.prefix.key, [{ name: 'a/', policy: 'read' }]);
    assert.deepEqual(hcl.exact.service, [{ name: 'web', policy: 'write', intentions: 'read' }]);
  });
  test('two blocks for one resource are both kept', () => {
    const r = parseRules('node "a" { policy = "read" }\nnode "b" { policy = "write" }');
    assert.deepEqual(r.exact.node.map((x) => x.name), ['a', 'b']);
  });
  test('empty rules grant nothing', () => {
    assert.equal(authz([''], false).allowed('key', 'read', 'x'), false);
  });

  const bad: [string, string, RegExp, number | undefined][] = [
    ['unterminated block names its line', 'key_prefix "a/" {\n  policy = "read"\n\nnode "x" {', /^Failed to parse ACL rules: At \d+:\d+/, undefined],
    ['bad policy value names its line', 'operator = "read"\nkey_prefix "a/" {\n  policy = "bogus"\n}', /^Invalid key_prefix policy: key_prefix "a\/" has policy "bogus"/, 2],
    ['list only for keys', 'service "web" { policy = "list" }', /^Invalid service policy/, 1],
    ['bad global', '\n\noperator = "admin"', /^Invalid operator policy: "admin"/, 3],
    ['bad intentions', 'service "web" { policy = "read" intentions = "list" }', /^Invalid service intentions policy/, 1],
    ['bad JSON names its line', '{\n"key": {\n "a": {"policy": "read"},\n}}', /^Failed to parse ACL rules: At line \d+/, undefined],
    ['NUL byte', 'key "a\0" { policy = "read" }', /NUL/, undefined],
  ];
  for (const [label, text, msg, line] of bad) {
    test(label, () => {
      try {
        parseRules(text);
      } catch (e) {
        assert.ok(e instanceof AclRulesError, String(e));
        assert.match(e.message, msg);
        if (line !== undefined) assert.equal(e.line, line);
        else assert.ok(e.line === undefined || e.line > 1 || label === 'NUL byte', `line ${e.line}`);
        return;
      }
      assert.fail('parsed without an error');
    });
  }
});

describe('identity helpers', () => {
  test('permission denied texts are Consul\'s', () => {
    assert.equal(permissionDeniedMessage('abc', 'key', 'write', 'foo'), 'Permission denied: token with AccessorID \'abc\' lacks permission \'key:write\' on "foo"');
    assert.equal(permissionDeniedMessage(ANONYMOUS_ACCESSOR_ID, 'operator', 'read'),
      'Permission denied: anonymous token lacks permission \'operator:read\'. The anonymous token is used implicitly when a request does not specify a token.');
  });
  test('secretsEqual', () => {
    assert.equal(secretsEqual('abc', 'abc'), true);
    assert.equal(secretsEqual('abc', 'abd'), false);
    assert.equal(secretsEqual('abc', 'abcd'), false);
    assert.equal(secretsEqual('', 'a'), false);
    assert.equal(secretsEqual('', ''), true);
  });
  test('badSecret', () => {
    assert.match(badSecret('x'.repeat(10 * 1024))!, /too long/);
    assert.match(badSecret('a\0b')!, /control character/);
    assert.equal(badSecret('6a1253d2-1785-24fd-91c2-f8e78c745511'), undefined);
  });
});
