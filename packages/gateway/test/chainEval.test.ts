// What the L7 proxy does with one request on a compiled chain (chainEval.ts), with chains made by
// the agent's compiler so the shapes are the ones the proxy reads: route → split → resolver, the
// failover order, timeouts, header changes, path rewrite, load balancing; and L7 intentions.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDiscoveryChain, type ChainEntries } from '../../agent/src/connect/discoveryChain.ts';
import { applyHeaderMods, Balancer, chooseTarget, durationMs, pickSplit, planRequest, rewritePath } from '../src/chainEval.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { decideL7, type L7Intention } from '../src/l7Intentions.ts';
import type { HttpRequestInfo } from '../src/routeMatch.ts';

const req = (over: Partial<HttpRequestInfo> = {}): HttpRequestInfo => ({ method: 'GET', path: '/', headers: {}, query: {}, ...over });
const compile = (entries: ChainEntries, serviceName = 'payments'): CompiledDiscoveryChain =>
  JSON.parse(JSON.stringify(compileDiscoveryChain({ serviceName, datacenter: 'dc1', trustDomain: 'td.consul', formatDuration: (ns) => `${ns / 1e9}s`, entries }))) as CompiledDiscoveryChain;
const http = { payments: { Protocol: 'http' }, currency: { Protocol: 'http' }, backup: { Protocol: 'http' }, 'payments-new': { Protocol: 'http' } };
const T = (s: string) => `${s}.default.default.dc1`;

describe('pickSplit: cumulative weights over a draw in [0, 100)', () => {
  const halves = [{ Weight: 50, n: 'a' }, { Weight: 50, n: 'b' }];
  const tenth = [{ Weight: 90, n: 'a' }, { Weight: 10, n: 'b' }];
  const rows: Array<[string, Array<{ Weight: number; n: string }>, number, string]> = [
    ['50/50, draw 0', halves, 0, 'a'],
    ['50/50, draw 49.99', halves, 49.99, 'a'],
    ['50/50, draw 50', halves, 50, 'b'],
    ['50/50, draw 99.99', halves, 99.99, 'b'],
    ['90/10, draw 89.9', tenth, 89.9, 'a'],
    ['90/10, draw 90', tenth, 90, 'b'],
    ['a zero weight is never drawn', [{ Weight: 0, n: 'a' }, { Weight: 100, n: 'b' }], 0, 'b'],
    ['weights summing under 100: the last weighted split takes the rest', [{ Weight: 33.33, n: 'a' }, { Weight: 66.66, n: 'b' }, { Weight: 0, n: 'c' }], 99.995, 'b'],
  ];
  for (const [name, splits, r, want] of rows) test(name, () => assert.equal(pickSplit(splits, r)?.n, want));
});

describe('planRequest', () => {
  const a2 = compile({ serviceDefaults: http, routers: { payments: { Name: 'payments', Routes: [
    { Match: { HTTP: { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }] } }, Destination: { Service: 'currency', PrefixRewrite: '/', RequestTimeout: 2_000_000_000, NumRetries: 2, RequestHeaders: { Set: { 'x-route': 'currency' } } } },
  ] } } });
  test('A2: the matching route leads to its service; its destination settings come along', () => {
    const p = planRequest(a2, req({ path: '/currency/gbp', headers: { group: 'dev' } }));
    assert.deepEqual(p.targets, [T('currency')]);
    assert.equal(p.route?.index, 0);
    assert.equal(p.route?.destination?.NumRetries, 2);
    assert.equal(p.requestTimeoutMs, 2000);
    assert.deepEqual(p.requestHeaders, [{ Set: { 'x-route': 'currency' } }]);
  });
  test('no RequestTimeout on the route or the resolver: Envoy\'s 15 s route timeout', () => {
    const p = planRequest(a2, req({ path: '/other' }));
    assert.equal(p.route?.destination?.RequestTimeout, undefined, 'the default route sets none');
    assert.equal(p.requestTimeoutMs, 15_000);
  });
  test('A2: others take the catch-all to payments', () => {
    assert.deepEqual(planRequest(a2, req({ path: '/currency' })).targets, [T('payments')]);
    assert.deepEqual(planRequest(a2, req({ headers: { group: 'dev' } })).targets, [T('payments')]);
  });

  const a34: ChainEntries = {
    serviceDefaults: http,
    resolvers: { payments: { Name: 'payments', DefaultSubset: 'v1', Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2', OnlyPassing: true } }, RequestTimeoutNs: 3_000_000_000, LoadBalancer: { Policy: 'least_request' } } },
    splitters: { payments: { Name: 'payments', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2', ResponseHeaders: { Add: { 'x-canary': '1' } } }] } },
    routers: { payments: { Name: 'payments', Routes: [{ Match: { HTTP: { Header: [{ Name: 'x-version', Exact: '2' }] } }, Destination: { ServiceSubset: 'v2' } }] } },
  };
  const chain = compile(a34);
  test('A3: a route naming a subset skips the splitter', () => {
    const p = planRequest(chain, req({ headers: { 'x-version': '2' } }), () => 0);
    assert.deepEqual(p.targets, [`v2.${T('payments')}`]);
    assert.deepEqual(p.responseHeaders, []);
  });
  test('A4: the catch-all goes through the splitter; the draw picks the subset and its header changes', () => {
    assert.deepEqual(planRequest(chain, req(), () => 89).targets, [`v1.${T('payments')}`]);
    const canary = planRequest(chain, req(), () => 95);
    assert.deepEqual(canary.targets, [`v2.${T('payments')}`]);
    assert.deepEqual(canary.responseHeaders, [{ Add: { 'x-canary': '1' } }]);
  });
  test('the resolver\'s RequestTimeout and LoadBalancer apply when the route sets none', () => {
    const p = planRequest(chain, req(), () => 0);
    assert.equal(p.requestTimeoutMs, 3000);
    assert.equal(p.lbPolicy, 'least_request');
  });
  test('subset targets carry their Filter and OnlyPassing for the health query', () => {
    assert.equal(chain.Targets[`v2.${T('payments')}`]?.Subset?.Filter, 'Service.Meta.version == 2');
    assert.equal(chain.Targets[`v2.${T('payments')}`]?.Subset?.OnlyPassing, true);
  });
  test('failover: the primary first, then the failover targets in order', () => {
    const f = compile({ serviceDefaults: http, resolvers: { payments: { Name: 'payments', Failover: { '*': { Service: 'backup' } } } } });
    assert.deepEqual(planRequest(f, req()).targets, [T('payments'), T('backup')]);
  });
  test('redirect: the resolver of another service answers', () => {
    const r = compile({ serviceDefaults: http, resolvers: { payments: { Name: 'payments', Redirect: { Service: 'payments-new' } } } });
    assert.deepEqual(planRequest(r, req()).targets, [T('payments-new')]);
  });
  test('a plain chain (no entries): its one resolver, round robin', () => {
    const p = planRequest(compile({}), req());
    assert.deepEqual(p.targets, [T('payments')]);
    assert.equal(p.lbPolicy, 'round_robin');
  });
});

describe('chooseTarget: failover when the primary has no healthy instance', () => {
  const inst: Record<string, string[]> = { a: [], b: ['b1'], c: ['c1'] };
  const rows: Array<[string, string[], string | undefined]> = [
    ['primary healthy', ['b', 'c'], 'b'],
    ['primary empty: the next', ['a', 'b', 'c'], 'b'],
    ['unknown target counts as empty', ['x', 'c'], 'c'],
    ['none healthy', ['a', 'x'], undefined],
  ];
  for (const [name, targets, want] of rows) test(name, () => assert.equal(chooseTarget(targets, (id) => inst[id] ?? [])?.id, want));
});

describe('header modifiers, path rewrite, durations', () => {
  test('Add appends, Set replaces, Remove deletes; names case-insensitive; in order', () => {
    const h: Record<string, string | string[]> = { 'x-a': '1', 'x-b': '2', 'x-c': '3' };
    applyHeaderMods(h, [{ Add: { 'X-A': 'more' }, Set: { 'X-B': 'set', 'x-new': 'n' }, Remove: ['X-C'] }, { Set: { 'x-new': 'later' } }]);
    assert.deepEqual(h, { 'x-a': ['1', 'more'], 'x-b': 'set', 'x-new': 'later' });
  });
  const prefix = { HTTP: { PathPrefix: '/currency' } };
  const rows: Array<[string, string, Record<string, unknown> | undefined, string | undefined, string]> = [
    ['prefix replaced', '/currency/gbp?x=1', prefix, '/', '//gbp?x=1'],
    ['prefix replaced by a path', '/currency/gbp', prefix, '/v2', '/v2/gbp'],
    ['exact replaced', '/old', { HTTP: { PathExact: '/old' } }, '/new', '/new'],
    ['no rewrite', '/currency/gbp', prefix, undefined, '/currency/gbp'],
    ['regex routes are not rewritten', '/a', { HTTP: { PathRegex: '/a' } }, '/b', '/a'],
  ];
  for (const [name, path, match, rw, want] of rows) test(`rewritePath: ${name}`, () => assert.equal(rewritePath(path, match, rw), want));
  const durations: Array<[unknown, number | undefined]> = [['5s', 5000], ['1m30s', 90_000], ['250ms', 250], [2_000_000_000, 2000], ['0s', undefined], [0, undefined], ['bogus', undefined], [undefined, undefined]];
  for (const [v, want] of durations) test(`durationMs(${JSON.stringify(v)})`, () => assert.equal(durationMs(v), want));
});

describe('Balancer', () => {
  const insts = [{ key: 'a' }, { key: 'b' }, { key: 'c' }];
  test('round_robin cycles per target', () => {
    const b = new Balancer();
    assert.deepEqual([0, 1, 2, 3].map(() => b.pick('t', 'round_robin', insts)?.key), ['a', 'b', 'c', 'a']);
    assert.equal(b.pick('other', 'round_robin', insts)?.key, 'a');
  });
  test('random follows the draw', () => {
    const draws = [0.1, 0.5, 0.9];
    const b = new Balancer(() => draws.shift()!);
    assert.deepEqual([0, 1, 2].map(() => b.pick('t', 'random', insts)?.key), ['a', 'b', 'c']);
  });
  test('least_request takes the less loaded of two drawn', () => {
    const draws = [0, 0.5];
    const b = new Balancer(() => draws.shift() ?? 0);
    b.begin('a'); b.begin('a');
    assert.equal(b.pick('t', 'least_request', insts)?.key, 'b');
    b.end('a'); b.end('a');
    assert.equal(b.active.size, 0);
  });
  test('no instances: undefined', () => assert.equal(new Balancer().pick('t', 'random', []), undefined));
});

describe('decideL7 (intentions in the agent\'s precedence order)', () => {
  const ixns: L7Intention[] = [
    { SourceName: 'web', Permissions: [
      { Action: 'deny', HTTP: { PathPrefix: '/admin' } },
      { Action: 'allow', HTTP: { PathPrefix: '/', Methods: ['GET', 'HEAD'] } },
      { Action: 'allow', HTTP: { PathExact: '/pay', Header: [{ Name: 'x-role', Exact: 'cashier' }] } },
    ] },
    { SourceName: 'billing', Action: 'deny' },
    { SourceName: '*', Action: 'allow' },
  ];
  const rows: Array<[string, string, Partial<HttpRequestInfo>, boolean | undefined]> = [
    ['denied path', 'web', { path: '/admin/users' }, false],
    ['allowed GET', 'web', { path: '/pay' }, true],
    ['POST matches no GET-only permission, but the header one', 'web', { method: 'POST', path: '/pay', headers: { 'x-role': 'cashier' } }, true],
    ['POST without the header: no permission matches, denied', 'web', { method: 'POST', path: '/pay' }, false],
    ['L4 intention for the caller decides', 'billing', {}, false],
    ['the wildcard source', 'other', {}, true],
  ];
  for (const [name, src, over, want] of rows) test(name, () => assert.equal(decideL7(ixns, src, req(over))?.allowed, want));
  test('no intention names the caller: undefined (the L4 answer decides)', () => assert.equal(decideL7(ixns.slice(0, 2), 'other', req()), undefined));
});
