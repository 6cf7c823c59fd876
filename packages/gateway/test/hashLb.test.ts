// Consistent-hash load balancing (hashLb.ts, Balancer in chainEval.ts): xxHash64 against published
// vectors, the ketama ring and maglev table against their properties (same key → same instance,
// removing one of N instances moves about 1/N of the keys and only keys that were on it, spread
// close to even), and the hash policies as Envoy combines them (header, cookie, query_parameter,
// SourceIP, Terminal, a generated cookie).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileDiscoveryChain, type ChainEntries } from '../../agent/src/connect/discoveryChain.ts';
import { Balancer, planRequest } from '../src/chainEval.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { cookieValue, KetamaRing, MaglevTable, requestHash, xxHash64, type HashPolicy, type HashTable } from '../src/hashLb.ts';
import type { HttpRequestInfo } from '../src/routeMatch.ts';

const req = (over: Partial<HttpRequestInfo> = {}): HttpRequestInfo => ({ method: 'GET', path: '/', headers: {}, query: {}, ...over });
const hosts = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}:21000`);

describe('xxHash64 (Envoy HashUtil::xxHash64)', () => {
  const rows: Array<[string, string, bigint, bigint]> = [
    ['empty input', '', 0n, 0xef46db3751d8e999n],
    ['short input (under 4 bytes)', 'abc', 0n, 0x44bc2cf5ad770999n],
    ['32 bytes and more (the four-lane path)', 'Nobody inspects the spammish repetition', 0n, 0xfbcea83c8a378bf1n],
  ];
  for (const [name, input, seed, want] of rows) test(name, () => assert.equal(xxHash64(input, seed), want));
  test('the seed changes the hash (maglev uses seed 1 for the skip)', () => assert.notEqual(xxHash64('abc', 1n), xxHash64('abc', 0n)));
});

/** Keys that moved between two tables over host lists `a` and `b` (compared by host key). */
function moved(ta: HashTable, a: string[], tb: HashTable, b: string[], keys: bigint[]): { moved: number; fromRemoved: number } {
  let m = 0;
  let fromRemoved = 0;
  for (const k of keys) {
    const ha = a[ta.pick(k)]!;
    const hb = b[tb.pick(k)]!;
    if (ha !== hb) { m++; if (!b.includes(ha)) fromRemoved++; }
  }
  return { moved: m, fromRemoved };
}

const keys = Array.from({ length: 4000 }, (_, i) => xxHash64(`user-${i}`));

// `spread`: the most keys a removal may move, as a multiple of 1/N. Maglev's table moves a little
// more than the removed host's keys (its paper's "minimal disruption"); Envoy's ring gives each
// host ceil(MinimumRingSize / N) points, so with one host fewer the others gain points and take a
// few keys from each other too (about 1.5/N measured for N = 3..10), which this keeps.
for (const [name, build, spread] of [
  ['ketama ring (ring_hash)', (h: string[]) => new KetamaRing(h), 2.2],
  ['maglev table', (h: string[]) => new MaglevTable(h, 5003), 1.35],
] as Array<[string, (h: string[]) => HashTable, number]>) {
  describe(name, () => {
    test('same key → same instance, and a table built again over the same hosts agrees', () => {
      fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (n, k) => {
        const h = hosts(n);
        const t1 = build(h);
        const t2 = build([...h].reverse());
        const i1 = t1.pick(k);
        assert.ok(i1 >= 0 && i1 < n);
        assert.equal(t1.pick(k), i1);
        assert.equal([...h].reverse()[t2.pick(k)], h[i1], 'host order must not matter');
      }), { numRuns: 30 });
    });
    test(`removing one of N instances moves about 1/N of the keys (at most ${spread}/N), mostly the removed one's`, () => {
      fc.assert(fc.property(fc.integer({ min: 3, max: 10 }), fc.nat(), (n, r) => {
        const a = hosts(n);
        const gone = r % n;
        const b = a.filter((_, i) => i !== gone);
        const { moved: m, fromRemoved } = moved(build(a), a, build(b), b, keys);
        const share = m / keys.length;
        assert.ok(share > 0.7 / n && share < spread / n, `moved ${share.toFixed(3)} of keys, expected about ${(1 / n).toFixed(3)}`);
        // The removed instance held about 1/N of the keys; every one of them had to move.
        assert.ok(fromRemoved / keys.length > 0.6 / n, `only ${fromRemoved} keys came from the removed instance`);
        assert.ok(fromRemoved / m > 0.5, `${fromRemoved} of ${m} moved keys came from the removed instance`);
      }), { numRuns: 8 });
    });
    test('keys spread over all instances, none with more than twice its share', () => {
      const h = hosts(5);
      const t = build(h);
      const counts = new Array(5).fill(0) as number[];
      for (const k of keys) counts[t.pick(k)]!++;
      for (const c of counts) assert.ok(c > 0 && c < (2 * keys.length) / 5, `counts ${counts.join(',')}`);
    });
    test('a retry (attempt 1) can land elsewhere; an empty host list picks nothing', () => {
      const h = hosts(4);
      const t = build(h);
      assert.ok(keys.slice(0, 50).some((k) => t.pick(k, 1) !== t.pick(k)));
      assert.equal(build([]).pick(1n), -1);
    });
  });
}

describe('KetamaRing sizes (RingHashConfig)', () => {
  test('each host gets ceil(MinimumRingSize / N) points', () => assert.equal(new KetamaRing(hosts(3), 1024).hashes.length, 1026));
  test('MaximumRingSize caps the ring (3 × ceil(1000 / 3) = 1002 points wanted, 1000 allowed)', () => assert.equal(new KetamaRing(hosts(3), 1000, 1000).hashes.length, 1000));
  test('a minimum above the maximum is refused with Envoy\'s message', () =>
    assert.throws(() => new KetamaRing(hosts(2), 10, 5), /minimum_ring_size \(10\) > maximum_ring_size \(5\)/));
});

describe('requestHash: HashPolicies as Envoy evaluates them', () => {
  const src = '127.0.0.9';
  const h = (p: HashPolicy[], r: HttpRequestInfo, ip = src) => requestHash(p, { req: r, sourceIp: ip });
  const rows: Array<[string, HashPolicy[], HttpRequestInfo, bigint | undefined]> = [
    ['header', [{ Field: 'header', FieldValue: 'X-User' }], req({ headers: { 'x-user': 'alice' } }), xxHash64('alice')],
    ['header absent: no hash', [{ Field: 'header', FieldValue: 'x-user' }], req(), undefined],
    ['query_parameter', [{ Field: 'query_parameter', FieldValue: 'id' }], req({ query: { id: '42' } }), xxHash64('42')],
    ['cookie', [{ Field: 'cookie', FieldValue: 'session' }], req({ headers: { cookie: 'a=1; session=xyz' } }), xxHash64('xyz')],
    ['cookie absent without CookieConfig: no hash, no cookie made', [{ Field: 'cookie', FieldValue: 'session' }], req(), undefined],
    ['SourceIP', [{ SourceIP: true }], req(), xxHash64(src)],
    ['two policies combine as rotl(h1, 1) XOR h2', [{ Field: 'header', FieldValue: 'x-a' }, { Field: 'header', FieldValue: 'x-b' }],
      req({ headers: { 'x-a': 'p', 'x-b': 'q' } }), (((xxHash64('p') << 1n) | (xxHash64('p') >> 63n)) & ((1n << 64n) - 1n)) ^ xxHash64('q')],
    ['Terminal with a hash stops the list', [{ Field: 'header', FieldValue: 'x-a', Terminal: true }, { SourceIP: true }],
      req({ headers: { 'x-a': 'p' } }), xxHash64('p')],
    ['Terminal without a hash goes on to the next policy', [{ Field: 'header', FieldValue: 'x-a', Terminal: true }, { SourceIP: true }], req(), xxHash64(src)],
    ['several header values hash the same in any order', [{ Field: 'header', FieldValue: 'x-a' }], req({ headers: { 'x-a': ['2', '1'] } }), xxHash64('12')],
  ];
  for (const [name, policies, r, want] of rows) test(name, () => assert.equal(h(policies, r).hash, want));

  test('a cookie policy with a TTL makes a cookie for a request without one (Set-Cookie), derived from the source', () => {
    const p: HashPolicy[] = [{ Field: 'cookie', FieldValue: 'route', CookieConfig: { TTL: '1h', Path: '/app' } }];
    const out = h(p, req());
    assert.ok(out.hash !== undefined);
    assert.match(out.setCookie ?? '', /^route="[0-9a-f]{16}"; Max-Age=3600; Path=\/app; HttpOnly$/);
    const value = /"([0-9a-f]+)"/.exec(out.setCookie!)![1]!;
    // The next request carries the cookie and hashes to the same place.
    assert.equal(h(p, req({ headers: { cookie: `route=${value}` } }), '127.0.0.200').hash, out.hash);
  });
  test('a Session cookie has no Max-Age', () => {
    const out = h([{ Field: 'cookie', FieldValue: 'route', CookieConfig: { Session: true } }], req());
    assert.match(out.setCookie ?? '', /^route="[0-9a-f]{16}"; HttpOnly$/);
  });
  test('cookieValue reads one cookie among several, quoted or not, across Cookie headers', () => {
    assert.equal(cookieValue('a=1; b="two"', 'b'), 'two');
    assert.equal(cookieValue(['a=1', 'c=3'], 'c'), '3');
    assert.equal(cookieValue('a=1', 'z'), undefined);
  });
});

describe('Balancer with ring_hash and maglev over a compiled chain', () => {
  const entries = (lb: Record<string, unknown>): ChainEntries => ({
    serviceDefaults: { payments: { Protocol: 'http' } },
    resolvers: { payments: { Name: 'payments', LoadBalancer: lb } },
  } as unknown as ChainEntries);
  const compile = (e: ChainEntries): CompiledDiscoveryChain =>
    JSON.parse(JSON.stringify(compileDiscoveryChain({ serviceName: 'payments', datacenter: 'dc1', trustDomain: 'td.consul', formatDuration: (ns) => `${ns / 1e9}s`, entries: e }))) as CompiledDiscoveryChain;
  const inst = hosts(6).map((key) => ({ key }));

  for (const policy of ['ring_hash', 'maglev']) {
    test(`${policy}: the plan carries the policy and HashPolicies; one user always reaches one instance, users spread`, () => {
      const chain = compile(entries({ Policy: policy, HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }], ...(policy === 'ring_hash' ? { RingHashConfig: { MinimumRingSize: 64 } } : {}) }));
      const b = new Balancer<{ key: string }>();
      const seen = new Set<string>();
      for (let u = 0; u < 40; u++) {
        const r = req({ headers: { 'x-user': `u${u}` } });
        const plan = planRequest(chain, r);
        assert.equal(plan.lbPolicy, policy);
        const hp = plan.loadBalancer?.HashPolicies ?? [];
        const pick = () => b.pick('t', plan.lbPolicy, inst, { hash: requestHash(hp, { req: r, sourceIp: '127.0.0.1' }).hash, ring: plan.loadBalancer?.RingHashConfig })!.key;
        const first = pick();
        for (let i = 0; i < 5; i++) assert.equal(pick(), first);
        seen.add(first);
      }
      assert.ok(seen.size >= 4, `40 users reached only ${seen.size} of 6 instances`);
    });
  }
  test('no hash (no policy matched): a random instance, like Envoy', () => {
    let x = 0;
    const b = new Balancer<{ key: string }>(() => ((x = (x * 9301 + 49297) % 233280) / 233280));
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) seen.add(b.pick('t', 'maglev', inst)!.key);
    assert.ok(seen.size >= 4);
  });
  test('a new instance list (the target watch replaced it) gets a new table', () => {
    const b = new Balancer<{ key: string }>();
    const k = xxHash64('someone');
    const one = [{ key: 'only:1' }];
    assert.equal(b.pick('t', 'ring_hash', one, { hash: k })!.key, 'only:1');
    const two = [{ key: 'other:2' }];
    assert.equal(b.pick('t', 'ring_hash', two, { hash: k })!.key, 'other:2');
  });
});
