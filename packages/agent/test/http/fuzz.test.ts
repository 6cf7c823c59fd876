// Fuzzing the HTTP API: thousands of random requests. The agent must keep answering with a sane
// status, never leak an internal JS error as a 500, and — when every request is invalid — change
// nothing. Seeded: set FUZZ_SEED to replay a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { harness } from './helpers.ts';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

const ENDPOINTS = [
  '/v1/status/leader', '/v1/status/peers', '/v1/agent/self', '/v1/agent/members', '/v1/agent/services',
  '/v1/agent/service/', '/v1/agent/service/register', '/v1/agent/service/deregister/', '/v1/agent/service/maintenance/',
  '/v1/agent/maintenance', '/v1/agent/checks', '/v1/agent/check/register', '/v1/agent/check/deregister/',
  '/v1/agent/check/pass/', '/v1/agent/check/warn/', '/v1/agent/check/fail/', '/v1/agent/check/update/',
  '/v1/agent/metrics', '/v1/catalog/register', '/v1/catalog/deregister', '/v1/catalog/datacenters',
  '/v1/catalog/nodes', '/v1/catalog/services', '/v1/catalog/service/', '/v1/catalog/node/', '/v1/catalog/node-services/',
  '/v1/health/node/', '/v1/health/checks/', '/v1/health/service/', '/v1/health/state/', '/v1/kv/',
  '/v1/session/create', '/v1/session/destroy/', '/v1/session/renew/', '/v1/session/info/', '/v1/session/node/',
  '/v1/session/list', '/v1/txn', '/v1/event/fire/', '/v1/event/list', '/v1/nope', '/',
];
const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const PARAMS = ['index', 'wait', 'stale', 'consistent', 'dc', 'filter', 'pretty', 'recurse', 'keys', 'separator', 'raw', 'cas', 'flags',
  'acquire', 'release', 'tag', 'passing', 'near', 'node-meta', 'enable', 'reason', 'note', 'name', 'hash', 'token', 'format', 'replace-existing-checks'];

/** Internal failures that must never reach a client: a bug, not a Consul answer. */
const JS_ERROR = /(Cannot read properties|is not a function|is not iterable|undefined is not|Maximum call stack|Unexpected token|TypeError|ReferenceError|RangeError)/;

const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.constantFrom('Name', 'name', 'ID', 'Port', 'Check', 'Checks', 'TTL', 'KV', 'Verb', 'Key', 'Value', 'Node', 'Service', 'Status', 'LockDelay', 'Behavior'), fc.string()), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 40 }),
  jsonish.map((v) => JSON.stringify(v)),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
);

const requestArb = fc.record({
  method: fc.constantFrom(...METHODS),
  endpoint: fc.constantFrom(...ENDPOINTS),
  suffix: fc.oneof(fc.constant(''), fc.stringMatching(/^[a-z0-9:%/._-]{0,12}$/), fc.constantFrom('web', 'node1', 'serfHealth', '%2F', '..%2Fx', '%00', '%E0%A4%A', 'a b')),
  params: fc.array(fc.tuple(fc.constantFrom(...PARAMS), fc.oneof(fc.constant(''), fc.string({ maxLength: 8 }), fc.constantFrom('0', '1', '-1', '10s', 'abc', 'true', 'x==', '5m'))), { maxLength: 3 }),
  body: bodyArb,
});

test(`random requests: the server keeps answering sane statuses (seed ${SEED})`, async () => {
  const h = harness();
  const statuses = new Map<number, number>();
  try {
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        // Blocking reads are bounded so a random ?index cannot hang the run.
        const params = r.params.map(([k, v]) => (k === 'wait' ? [k, '1ms'] : [k, v]));
        if (params.some(([k]) => k === 'index')) params.push(['wait', '1ms']);
        const qs = params.map(([k, v]) => `${k}=${encodeURIComponent(v!)}`).join('&');
        const url = `${r.endpoint}${r.endpoint.endsWith('/') ? r.suffix : ''}${qs ? `?${qs}` : ''}`;
        const res = await h.req(r.method, url, r.body);
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        assert.ok([200, 400, 403, 404, 405, 409, 413, 500].includes(res.statusCode), `${r.method} ${url} → ${res.statusCode}`);
        if (res.statusCode >= 400) {
          assert.doesNotMatch(res.body, JS_ERROR, `${r.method} ${url} → ${res.statusCode} ${res.body}`);
          assert.match(String(res.headers['content-type'] ?? 'text/plain'), /^text\/plain/);
        }
      }),
      { seed: SEED, numRuns: 2500 },
    );
    // Still healthy afterwards.
    assert.equal((await h.req('GET', '/v1/status/leader')).statusCode, 200);
    assert.ok((statuses.get(200) ?? 0) > 100 && (statuses.get(400) ?? 0) > 100 && (statuses.get(405) ?? 0) > 100, JSON.stringify([...statuses]));
  } finally {
    await h.close();
  }
});

test(`invalid requests only: nothing changes (seed ${SEED})`, async () => {
  const h = harness();
  await h.req('PUT', '/v1/kv/keep', 'v');
  await h.req('PUT', '/v1/agent/service/register', { Name: 'web', Check: { TTL: '30s' } });
  const snapshot = Buffer.from(h.store.snapshot());
  const lastIndex = h.store.lastIndex();
  const localServices = JSON.stringify(h.backend.local.services());
  const localChecks = JSON.stringify(h.backend.local.checks());

  const jsonWrites = ['/v1/agent/service/register', '/v1/agent/check/register', '/v1/catalog/register', '/v1/catalog/deregister', '/v1/session/create', '/v1/txn', '/v1/agent/check/update/service:web'];
  const invalid = fc.oneof(
    // A wrong method on a write endpoint.
    fc.record({ method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE'), url: fc.constantFrom(...jsonWrites, '/v1/agent/maintenance?enable=true', '/v1/session/destroy/x', '/v1/event/fire/x'), body: bodyArb }),
    // Malformed or ill-typed JSON for every JSON write endpoint.
    fc.record({
      method: fc.constant('PUT'),
      url: fc.constantFrom(...jsonWrites),
      body: fc.oneof(
        fc.constantFrom('', '{', '[', 'nul', '{"Name":', '"x"', '1', 'true'),
        fc.string({ maxLength: 20 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }),
        fc.record({ Name: fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string())), Port: fc.string({ minLength: 1 }), TTL: fc.integer() }).map((o) => JSON.stringify(o)),
      ),
    // An empty body is a valid session/create (Consul's defaults).
    }).filter((r) => !(r.url === '/v1/session/create' && r.body === '')),
    // Bad parameters and keys on KV writes.
    fc.record({
      method: fc.constantFrom('PUT', 'DELETE'),
      url: fc.constantFrom('/v1/kv/', '/v1/kv/a?cas=x', '/v1/kv/%2Fa', '/v1/kv/a%2F..%2Fb', '/v1/kv/keep?dc=far'),
      body: fc.string({ maxLength: 10 }),
    }),
    fc.record({ method: fc.constant('DELETE'), url: fc.constant('/v1/kv/keep?recurse&cas=1'), body: fc.constant('') }),
    fc.record({
      method: fc.constant('PUT'),
      url: fc.constantFrom('/v1/kv/a?flags=-1', '/v1/kv/a?cas=1&acquire=s', '/v1/kv/a?acquire=s&release=s', '/v1/kv/a?flags=1.5'),
      body: fc.string({ maxLength: 10 }),
    }),
    // Oversized bodies.
    fc.record({ method: fc.constant('PUT'), url: fc.constantFrom('/v1/kv/big', '/v1/txn'), body: fc.constant(Buffer.alloc(600 * 1024, 'x')) }),
  );
  try {
    await fc.assert(
      fc.asyncProperty(invalid, async (r) => {
        const res = await h.req(r.method, r.url, r.body);
        assert.ok(res.statusCode >= 400 && res.statusCode < 500 || (res.statusCode === 500 && res.body === 'No path to datacenter'), `${r.method} ${r.url} ${String(r.body).slice(0, 40)} → ${res.statusCode} ${res.body}`);
        assert.doesNotMatch(res.body, JS_ERROR);
      }),
      { seed: SEED, numRuns: 1500 },
    );
    assert.equal(h.store.lastIndex(), lastIndex, 'no command was proposed');
    assert.deepEqual(Buffer.from(h.store.snapshot()), snapshot, 'the state is byte-for-byte the same');
    assert.equal(JSON.stringify(h.backend.local.services()), localServices);
    assert.equal(JSON.stringify(h.backend.local.checks()), localChecks);
  } finally {
    await h.close();
  }
});
