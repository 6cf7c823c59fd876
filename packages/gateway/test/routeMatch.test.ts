// The route matcher the proxy uses per request (connect/routeMatch.ts): a table per matcher, first
// match wins, the catch-all, and the RE2 → JavaScript regex translation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDiscoveryChain, type ChainRoute } from '../../agent/src/connect/discoveryChain.ts';
import { matchRoute, re2ToRegExp, routeMatches, type HttpRequestInfo } from '../src/routeMatch.ts';

const req = (over: Partial<HttpRequestInfo> = {}): HttpRequestInfo => ({ method: 'GET', path: '/', headers: {}, query: {}, ...over });
const when = (HTTP: Record<string, unknown>): ChainRoute => ({ Match: { HTTP } });

type Row = [string, Record<string, unknown>, Partial<HttpRequestInfo>, boolean];
const rows: Row[] = [
  ['path exact: equal', { PathExact: '/a' }, { path: '/a' }, true],
  ['path exact: longer', { PathExact: '/a' }, { path: '/a/b' }, false],
  ['path exact: query string ignored', { PathExact: '/a' }, { path: '/a?x=1' }, true],
  ['path exact: case-sensitive', { PathExact: '/a' }, { path: '/A' }, false],
  ['path prefix: match', { PathPrefix: '/currency' }, { path: '/currency/GBP' }, true],
  ['path prefix: plain string prefix, not segment', { PathPrefix: '/currency' }, { path: '/currencyx' }, true],
  ['path prefix: no match', { PathPrefix: '/currency' }, { path: '/payment' }, false],
  ['path regex: whole path', { PathRegex: '/v[0-9]+/.*' }, { path: '/v2/items' }, true],
  ['path regex: must match all of it', { PathRegex: '/v[0-9]+' }, { path: '/v2/items' }, false],
  ['header present', { Header: [{ Name: 'x-debug', Present: true }] }, { headers: { 'x-debug': '' } }, true],
  ['header present: absent', { Header: [{ Name: 'x-debug', Present: true }] }, {}, false],
  ['header present inverted: absent', { Header: [{ Name: 'x-debug', Present: true, Invert: true }] }, {}, true],
  ['header exact, name case-insensitive', { Header: [{ Name: 'Group', Exact: 'dev' }] }, { headers: { group: 'dev' } }, true],
  ['header exact: other value', { Header: [{ Name: 'group', Exact: 'dev' }] }, { headers: { group: 'test' } }, false],
  ['header exact: absent', { Header: [{ Name: 'group', Exact: 'dev' }] }, {}, false],
  ['header exact inverted', { Header: [{ Name: 'group', Exact: 'dev', Invert: true }] }, { headers: { group: 'dev' } }, false],
  ['header exact inverted: absent header matches', { Header: [{ Name: 'group', Exact: 'dev', Invert: true }] }, {}, true],
  ['header prefix', { Header: [{ Name: 'ua', Prefix: 'curl/' }] }, { headers: { ua: 'curl/8.1' } }, true],
  ['header prefix: no', { Header: [{ Name: 'ua', Prefix: 'curl/' }] }, { headers: { ua: 'wget' } }, false],
  ['header suffix', { Header: [{ Name: 'host', Suffix: '.example.com' }] }, { headers: { host: 'a.example.com' } }, true],
  ['header suffix: no', { Header: [{ Name: 'host', Suffix: '.example.com' }] }, { headers: { host: 'a.example.org' } }, false],
  ['header regex: full match', { Header: [{ Name: 'v', Regex: '[0-9]+' }] }, { headers: { v: '42' } }, true],
  ['header regex: partial is no match', { Header: [{ Name: 'v', Regex: '[0-9]+' }] }, { headers: { v: '42a' } }, false],
  ['header repeated: values joined with ","', { Header: [{ Name: 'v', Exact: 'a,b' }] }, { headers: { v: ['a', 'b'] } }, true],
  ['headers: all must hold', { Header: [{ Name: 'a', Exact: '1' }, { Name: 'b', Exact: '2' }] }, { headers: { a: '1' } }, false],
  ['query present', { QueryParam: [{ Name: 'debug', Present: true }] }, { query: { debug: '' } }, true],
  ['query present: absent', { QueryParam: [{ Name: 'debug', Present: true }] }, {}, false],
  ['query exact', { QueryParam: [{ Name: 'v', Exact: '2' }] }, { query: { v: '2' } }, true],
  ['query exact: other', { QueryParam: [{ Name: 'v', Exact: '2' }] }, { query: { v: '3' } }, false],
  ['query regex', { QueryParam: [{ Name: 'v', Regex: '[23]' }] }, { query: { v: '3' } }, true],
  ['query regex: whole value', { QueryParam: [{ Name: 'v', Regex: '[23]' }] }, { query: { v: '33' } }, false],
  ['methods: listed', { Methods: ['GET', 'POST'] }, { method: 'POST' }, true],
  ['methods: not listed', { Methods: ['GET', 'POST'] }, { method: 'DELETE' }, false],
  ['methods: request method case-folded', { Methods: ['GET'] }, { method: 'get' }, true],
  ['everything together', { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }], Methods: ['GET'] }, { path: '/currency', headers: { group: 'dev' } }, true],
  ['empty match: everything', {}, { path: '/anything' }, true],
];

describe('routeMatches', () => {
  for (const [name, http, over, want] of rows) test(name, () => assert.equal(routeMatches(when(http), req(over)), want));
  test('a route with no Match matches everything', () => assert.equal(routeMatches({}, req({ path: '/x' })), true));
});

describe('matchRoute on a compiled chain', () => {
  const chain = compileDiscoveryChain({
    serviceName: 'payments', datacenter: 'dc1', trustDomain: 'td.consul', formatDuration: (ns) => `${ns / 1e9}s`,
    entries: {
      serviceDefaults: { payments: { Protocol: 'http' }, currency: { Protocol: 'http' } },
      resolvers: { payments: { Name: 'payments', Subsets: { v2: {} } } },
      routers: {
        payments: {
          Name: 'payments',
          Routes: [
            { Match: { HTTP: { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }] } }, Destination: { Service: 'currency' } },
            { Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { ServiceSubset: 'v2' } },
          ],
        },
      },
    },
  });
  const table: Array<[string, Partial<HttpRequestInfo>, number, string]> = [
    ['A2: /currency with group: dev → currency', { path: '/currency', headers: { group: 'dev' } }, 0, 'resolver:currency.default.default.dc1'],
    ['A2: /currency without the header → the catch-all', { path: '/currency' }, 2, 'resolver:payments.default.default.dc1'],
    ['A2: / with group: dev → the catch-all', { path: '/', headers: { group: 'dev' } }, 2, 'resolver:payments.default.default.dc1'],
    ['A3: group: test → subset v2', { path: '/', headers: { group: 'test' } }, 1, 'resolver:v2.payments.default.default.dc1'],
  ];
  for (const [name, over, index, next] of table) {
    test(name, () => {
      const got = matchRoute(chain, req(over));
      assert.equal(got?.index, index);
      assert.equal(got?.nextNode, next);
    });
  }
  test('a chain without a router: null (its start node takes every request)', () => {
    const plain = compileDiscoveryChain({ serviceName: 'web', datacenter: 'dc1', trustDomain: 'td.consul', formatDuration: String, entries: {} });
    assert.equal(matchRoute(plain, req()), null);
  });
});

describe('RE2 → JavaScript regexes', () => {
  const cases: Array<[string, string, boolean]> = [
    ['(?P<v>[0-9]+)', '12', true],
    ['(?i)abc', 'ABC', true],
    ['\\Aabc\\z', 'abc', true],
    ['a|b', 'b', true],
    ['a|b', 'ab', false], // alternation is anchored as a whole
  ];
  for (const [re, value, want] of cases) test(`${re} on ${JSON.stringify(value)}`, () => assert.equal(re2ToRegExp(re)?.test(value), want));
  test('backreferences and lookaround (not RE2) and invalid patterns never match', () => {
    for (const re of ['(a)\\1', 'a(?=b)', '(?<!x)a', '[']) assert.equal(re2ToRegExp(re), null, re);
    assert.equal(routeMatches(when({ PathRegex: '(a)\\1' }), req({ path: 'aa' })), false);
  });
});
