// Bad input over real HTTP against a real agent: each mistake gets Consul's status code and a
// plain-text sentence that says what was wrong, the state does not change, and the agent goes on
// answering. A seeded fuzzer then sends a few thousand malformed requests (set TRELLIS_FUZZ_SEED to
// replay a run; the seed is printed) and checks the same three things.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess, printLogsIfFailed, closeIdleSockets, type HttpResult } from '../support/index.ts';
import { mulberry32 as prng } from '../support/random.ts';

let agent: AgentProcess;

/** Writes that give every table something to lose: KV, an external node, a local service and check, a session. */
async function fixture(): Promise<void> {
  const w = async (method: string, path: string, body?: unknown) => {
    const r = await agent.request(method, path, { body });
    assert.equal(r.status, 200, `fixture ${method} ${path}: ${r.text}`);
  };
  for (let i = 0; i < 5; i++) await w('PUT', `/v1/kv/fixture/k${i}`, `v${i}`);
  await w('PUT', '/v1/catalog/register', { Node: 'fixture-node', Address: '10.4.4.4', Service: { ID: 'db-1', Service: 'db', Port: 5432 } });
  await w('PUT', '/v1/agent/service/register', { Name: 'web', ID: 'web-1', Port: 8080, Check: { TTL: '60s' } });
  await w('PUT', '/v1/session/create', { Name: 'fixture-session' });
}

/** Every read that would show a state change, with its index. */
const STATE_READS = [
  '/v1/kv/?recurse', '/v1/catalog/nodes', '/v1/catalog/services', '/v1/catalog/service/web', '/v1/catalog/service/db',
  '/v1/health/state/any', '/v1/agent/services', '/v1/agent/checks', '/v1/session/list',
];

async function snapshotState(): Promise<Record<string, { status: number; index: string | undefined; body: string }>> {
  const out: Record<string, { status: number; index: string | undefined; body: string }> = {};
  for (const p of STATE_READS) {
    const r = await agent.request('GET', p);
    out[p] = { status: r.status, index: r.headers['x-consul-index'] as string | undefined, body: r.text };
  }
  return out;
}

before(async () => {
  agent = await AgentProcess.start({ name: 'bad-input' });
  await fixture();
});
after(async () => { await agent?.dispose(); closeIdleSockets(); });
afterEach((t) => printLogsIfFailed(t, agent));

interface Case {
  name: string;
  method: string;
  path: string;
  body?: string | Buffer;
  status: number;
  /** The sentence the client gets. */
  text: RegExp;
}

const big = Buffer.alloc(512 * 1024 + 1, 'a');

const CASES: Case[] = [
  // Bodies that are not JSON, or not the JSON the endpoint takes.
  { name: 'malformed JSON (truncated)', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "x", "Address": ', status: 400, text: /^Request decode failed: / },
  { name: 'malformed JSON (garbage)', method: 'PUT', path: '/v1/agent/service/register', body: 'name=web&port=80', status: 400, text: /^Request decode failed: / },
  { name: 'empty body where JSON is required', method: 'PUT', path: '/v1/catalog/register', body: '', status: 400, text: /^Request decode failed: EOF/ },
  { name: 'wrong type: Name a number', method: 'PUT', path: '/v1/agent/service/register', body: '{"Name": 5}', status: 400, text: /^Request decode failed: .*Name/ },
  { name: 'wrong type: Port a string', method: 'PUT', path: '/v1/agent/service/register', body: '{"Name": "web2", "Port": "eighty"}', status: 400, text: /^Request decode failed: .*Port/ },
  { name: 'wrong type: Tags an object', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "n", "Address": "1.1.1.1", "Service": {"Service": "s", "Tags": {"a": 1}}}', status: 400, text: /^Request decode failed: .*Tags/ },
  { name: 'wrong type: body an array', method: 'PUT', path: '/v1/session/create', body: '[1,2]', status: 400, text: /^Request decode failed: / },
  { name: 'unknown field in a service registration', method: 'PUT', path: '/v1/agent/service/register', body: '{"Name": "web3", "Colour": "red"}', status: 400, text: /^Request decode failed: json: unknown field "Colour"/ },
  { name: 'unknown field in a catalog registration', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "n", "Address": "1.1.1.1", "Bogus": true}', status: 400, text: /^Request decode failed: json: unknown field "Bogus"/ },
  { name: 'unknown field in a check registration', method: 'PUT', path: '/v1/agent/check/register', body: '{"Name": "c", "TTL": "10s", "Frequency": 3}', status: 400, text: /unknown field "Frequency"/ },
  // Consul's txn endpoint words its decode errors differently from the others.
  { name: 'txn body not a list', method: 'PUT', path: '/v1/txn', body: '{"KV": {}}', status: 400, text: /^Failed to parse body: / },
  // Registrations that decode but say nothing usable.
  { name: 'service without a name', method: 'PUT', path: '/v1/agent/service/register', body: '{"Port": 80}', status: 400, text: /^Missing service name/ },
  { name: 'service name with a control character', method: 'PUT', path: '/v1/agent/service/register', body: '{"Name": "we\\u0000b"}', status: 400, text: /[Ss]ervice name/ },
  { name: 'catalog register without a node', method: 'PUT', path: '/v1/catalog/register', body: '{"Address": "1.1.1.1"}', status: 400, text: /^Must provide node/ },
  { name: 'catalog register without an address', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "n"}', status: 400, text: /^Must provide address/ },
  { name: 'catalog service with an ID but no name', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "n", "Address": "1.1.1.1", "Service": {"ID": "x"}}', status: 400, text: /service name/i },
  { name: 'session TTL out of range', method: 'PUT', path: '/v1/session/create', body: '{"TTL": "1s"}', status: 400, text: /^Invalid Session TTL/ },
  // KV keys and parameters.
  { name: 'key with ..', method: 'PUT', path: '/v1/kv/a/../fixture/k0', body: 'x', status: 400, text: /path traversal/ },
  { name: 'key with .. (GET)', method: 'GET', path: '/v1/kv/fixture/../fixture/k0', status: 400, text: /path traversal/ },
  { name: 'key with percent-encoded ..', method: 'PUT', path: '/v1/kv/a/%2e%2e/fixture/k0', body: 'x', status: 400, text: /path traversal/ },
  { name: 'empty key without recurse', method: 'GET', path: '/v1/kv/', status: 400, text: /[Mm]issing key/ },
  { name: 'flags not a number', method: 'PUT', path: '/v1/kv/fixture/k0?flags=abc', body: 'x', status: 400, text: /flags/i },
  { name: 'cas negative', method: 'PUT', path: '/v1/kv/fixture/k0?cas=-1', body: 'x', status: 400, text: /cas/i },
  { name: 'acquire and release together', method: 'PUT', path: '/v1/kv/fixture/k0?acquire=a&release=b', body: 'x', status: 400, text: /^Conflicting flags/ },
  { name: 'value over 512 KiB', method: 'PUT', path: '/v1/kv/fixture/huge', body: big, status: 413, text: /too large, max size: 524288 bytes/ },
  { name: 'value over 512 KiB replacing a key', method: 'PUT', path: '/v1/kv/fixture/k1', body: big, status: 413, text: /too large/ },
  { name: 'txn over the body limit', method: 'PUT', path: '/v1/txn', body: Buffer.concat([Buffer.from('['), big, Buffer.from(']')]), status: 413, text: /too large/ },
  // The same name and key rules on every path that writes them (issue 11: txn stored a key /v1/kv/
  // cannot address; invalid UTF-8 became U+FFFD; check and session names took NUL).
  { name: 'txn KV key with NUL', method: 'PUT', path: '/v1/txn', body: JSON.stringify([{ KV: { Verb: 'set', Key: 'fixture/a\u0000b', Value: 'eA==' } }]), status: 400, text: /^Invalid KV key "fixture\/a\\u0000b" in op 0: key contains invalid characters/ },
  { name: 'txn KV key that /v1/kv/ refuses (traversal)', method: 'PUT', path: '/v1/txn', body: JSON.stringify([{ KV: { Verb: 'get', Key: 'x' } }, { KV: { Verb: 'delete', Key: 'a/../fixture/k0' } }]), status: 400, text: /^Invalid KV key "a\/\.\.\/fixture\/k0" in op 1: key contains path traversal/ },
  { name: 'service name with invalid UTF-8 (agent)', method: 'PUT', path: '/v1/agent/service/register', body: Buffer.concat([Buffer.from('{"Name": "we'), Buffer.from([0xff]), Buffer.from('b", "Port": 1}')]), status: 400, text: /^Request decode failed: invalid UTF-8 in Name at offset 13: JSON text must be UTF-8$/ },
  { name: 'service name with invalid UTF-8 (catalog)', method: 'PUT', path: '/v1/catalog/register', body: Buffer.concat([Buffer.from('{"Node": "n", "Address": "1.1.1.1", "Service": {"Service": "d'), Buffer.from([0xc3, 0x28]), Buffer.from('b"}}')]), status: 400, text: /^Request decode failed: invalid UTF-8 in Service\.Service at offset/ },
  { name: 'service name with invalid UTF-8 (txn)', method: 'PUT', path: '/v1/txn', body: Buffer.concat([Buffer.from('[{"Service": {"Verb": "set", "Node": "fixture-node", "Service": {"Service": "x'), Buffer.from([0xe2, 0x82]), Buffer.from('"}}}]')]), status: 400, text: /^Failed to parse body: invalid UTF-8 in \[0\]\.Service\.Service\.Service at offset/ },
  { name: 'meta key with invalid UTF-8', method: 'PUT', path: '/v1/agent/service/register', body: Buffer.concat([Buffer.from('{"Name": "web4", "Meta": {"k'), Buffer.from([0x80]), Buffer.from('": "v"}}')]), status: 400, text: /^Request decode failed: invalid UTF-8 in a key of Meta at offset/ },
  { name: 'check name with NUL (agent check)', method: 'PUT', path: '/v1/agent/check/register', body: '{"Name": "c\\u0000d", "TTL": "10s"}', status: 400, text: /^Invalid check name "c\\u0000d": control characters are not allowed$/ },
  { name: 'check name with NUL (in a service registration)', method: 'PUT', path: '/v1/agent/service/register', body: '{"Name": "web5", "Check": {"Name": "c\\u0000", "TTL": "10s"}}', status: 400, text: /^Invalid check name/ },
  { name: 'check name with NUL (catalog)', method: 'PUT', path: '/v1/catalog/register', body: '{"Node": "fixture-node", "Address": "10.4.4.4", "Check": {"CheckID": "c1", "Name": "x\\u0000"}}', status: 400, text: /^Invalid check name/ },
  { name: 'check name with NUL (txn)', method: 'PUT', path: '/v1/txn', body: '[{"Check": {"Verb": "set", "Check": {"Node": "fixture-node", "CheckID": "c1", "Name": "x\\u0000"}}}]', status: 400, text: /^Invalid check name/ },
  { name: 'session name with NUL', method: 'PUT', path: '/v1/session/create', body: '{"Name": "s\\u0000"}', status: 400, text: /^Invalid session name "s\\u0000": control characters are not allowed$/ },
  // serf's limit counts the encoded event; Consul answers its error as a 500 (event_endpoint.go).
  { name: 'event payload over 512 bytes', method: 'PUT', path: '/v1/event/fire/big', body: Buffer.alloc(600, 'p'), status: 500, text: /^user event exceeds configured limit of 512 bytes before encoding$/ },
  { name: 'event payload over the limit once encoded', method: 'PUT', path: '/v1/event/fire/big', body: Buffer.alloc(480, 'p'), status: 500, text: /^user event exceeds configured limit of 512 bytes before encoding$/ },
  // Query parameters of reads.
  { name: 'index not a number', method: 'GET', path: '/v1/kv/fixture/k0?index=abc', status: 400, text: /^Invalid index/ },
  { name: 'index negative', method: 'GET', path: '/v1/catalog/nodes?index=-5', status: 400, text: /^Invalid index/ },
  { name: 'wait not a duration', method: 'GET', path: '/v1/kv/fixture/k0?index=1&wait=soon', status: 400, text: /^Invalid wait time/ },
  { name: 'stale and consistent together', method: 'GET', path: '/v1/kv/fixture/k0?stale&consistent', status: 400, text: /^Cannot specify \?stale with \?consistent/ },
  { name: 'filter that does not parse', method: 'GET', path: '/v1/catalog/nodes?filter=((Node', status: 400, text: /filter|expression/i },
  { name: 'unknown health state', method: 'GET', path: '/v1/health/state/sideways', status: 400, text: /state/i },
  // Methods and paths.
  { name: 'GET on a write endpoint', method: 'GET', path: '/v1/catalog/register', status: 405, text: /method/i },
  { name: 'DELETE on status/leader', method: 'DELETE', path: '/v1/status/leader', status: 405, text: /method/i },
  { name: 'PUT on a catalog read', method: 'PUT', path: '/v1/catalog/nodes', body: '{}', status: 405, text: /method/i },
  { name: 'unknown endpoint', method: 'GET', path: '/v1/no/such/thing', status: 404, text: /./ },
  { name: 'deregister a service that is not there', method: 'PUT', path: '/v1/agent/service/deregister/nope', status: 404, text: /nope/ },
  { name: 'pass a check that is not there', method: 'PUT', path: '/v1/agent/check/pass/nope', status: 404, text: /nope/ },
];

describe('bad input', () => {
  for (const c of CASES) {
    test(`${c.name}: ${c.status}`, async () => {
      const before = await snapshotState();
      const r = await agent.request(c.method, c.path, { body: c.body });
      assert.equal(r.status, c.status, `${c.method} ${c.path}: got ${r.status} ${JSON.stringify(r.text.slice(0, 200))}`);
      assert.match(r.text, c.text);
      if (c.status !== 404 || r.text !== '') {
        assert.ok(!String(r.headers['content-type'] ?? '').includes('json'), `an error is plain text, not ${r.headers['content-type']}`);
      }
      assert.deepEqual(await snapshotState(), before, 'the state changed');
    });
  }

  test('the agent still answers after all of the above', async () => {
    const r = await agent.request('GET', '/v1/status/leader');
    assert.equal(r.status, 200);
    assert.equal(r.json(), `127.0.0.1:${agent.ports.server}`);
    assert.ok(agent.running);
  });
});

interface FuzzRequest { method: string; path: string; body?: string | Buffer }

/**
 * Requests that must not change state, by construction: JSON bodies broken on purpose for every
 * write endpoint, KV writes with a broken key or parameter, and any method or garbage on paths
 * that only read. (No valid write can come out of this, so "state unchanged" is a fair oracle.)
 */
function fuzzRequests(rand: () => number, n: number): FuzzRequest[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const junk = (len: number) => Array.from({ length: len }, () => String.fromCharCode(Math.floor(rand() * 95) + 32)).join('');
  const bytes = (len: number) => Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
  const VALID_BODIES: Record<string, unknown> = {
    '/v1/catalog/register': { Node: 'fz', Address: '10.9.9.9', Service: { Service: 'fz', Port: 1, Tags: ['a'] }, Check: { CheckID: 'c', Status: 'passing' } },
    '/v1/catalog/deregister': { Node: 'fixture-node' },
    '/v1/agent/service/register': { Name: 'fz', Port: 1, Tags: ['a'], Meta: { k: 'v' }, Check: { TTL: '10s' } },
    '/v1/agent/check/register': { Name: 'fz', TTL: '10s' },
    '/v1/session/create': { Name: 'fz', TTL: '15s', Behavior: 'release' },
    '/v1/txn': [{ KV: { Verb: 'set', Key: 'fz', Value: 'eA==' } }],
  };
  // Breakages that no decoder may accept.
  const breakJson = (valid: unknown): string | Buffer => {
    const text = JSON.stringify(valid);
    switch (Math.floor(rand() * 6)) {
      // Truncated: never closes. At least one byte: an empty body is a valid session/create.
      case 0: return text.slice(0, 1 + Math.floor(rand() * (text.length - 2)));
      case 1: return notJson(() => bytes(1 + Math.floor(rand() * 64)));
      case 2: { // an unknown field next to the real ones
        const v = structuredClone(valid) as Record<string, unknown> | Array<Record<string, unknown>>;
        const target = Array.isArray(v) ? v[0]! : v;
        target[`X${junk(4).replace(/[^A-Za-z]/g, 'q')}`] = 1;
        return JSON.stringify(v);
      }
      case 3: { // every string field's value becomes an object (Go will not put an object in a string)
        return JSON.stringify(valid, (_k, x) => (typeof x === 'string' ? { length: x.length } : x));
      }
      case 4: return `${text}${pick(['}', ']', ',', 'x', '{'])}`; // trailing garbage
      default: return notJson(() => `{${junk(Math.floor(rand() * 40))}`);
    }
  };
  // Random text or bytes can be JSON by chance: "{" + "}" is "{}", a valid session/create (seed 662480620).
  const notJson = (make: () => string | Buffer): string | Buffer => {
    for (;;) {
      const b = make();
      try {
        JSON.parse(b.toString());
      } catch {
        return b;
      }
    }
  };
  const readPaths = ['/v1/kv/fixture/k0', '/v1/kv/fixture?recurse', '/v1/kv/?keys', '/v1/catalog/nodes', '/v1/catalog/services',
    '/v1/catalog/service/web', '/v1/catalog/node/fixture-node', '/v1/health/service/web', '/v1/health/node/fixture-node',
    '/v1/health/checks/web', '/v1/health/state/any', '/v1/agent/self', '/v1/agent/members', '/v1/agent/services', '/v1/agent/checks',
    '/v1/session/list', '/v1/status/leader', '/v1/status/peers', '/v1/catalog/datacenters', '/v1/event/list'];
  const badQuery = () => pick(['index=', 'index=x', 'index=-1', 'index=1e3', 'wait=forever', 'wait=-1s', 'filter=' + encodeURIComponent(junk(8)),
    'stale&consistent', 'dc=' + encodeURIComponent(junk(5)), encodeURIComponent(junk(6)), 'near=' + encodeURIComponent(junk(3)), '%zz', 'pretty&index=99999999999999999999']);
  const out: FuzzRequest[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rand();
    if (kind < 0.45) {
      const path = pick(Object.keys(VALID_BODIES));
      out.push({ method: pick(['PUT', 'PUT', 'PUT', 'POST']), path, body: breakJson(VALID_BODIES[path]) });
    } else if (kind < 0.65) {
      const key = pick(['a/../b', '..', 'x/..', '%2e%2e/x', 'fixture/k0']);
      const q = key === 'fixture/k0' ? pick(['?flags=zz', '?cas=-2', '?cas=x', '?acquire=1&release=2', '?flags=1.5']) : '';
      out.push({ method: 'PUT', path: `/v1/kv/${key}${q}`, body: bytes(Math.floor(rand() * 32)) });
    } else if (kind < 0.85) {
      out.push({ method: pick(['GET', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE']), path: `${pick(readPaths)}${rand() < 0.7 ? (rand() < 0.5 ? '?' : '&') + badQuery() : ''}` });
    } else {
      const segs = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => encodeURIComponent(junk(1 + Math.floor(rand() * 8))));
      out.push({ method: pick(['GET', 'PATCH', 'OPTIONS', 'HEAD']), path: `/v1/${segs.join('/')}`, body: rand() < 0.3 ? junk(20) : undefined });
    }
  }
  return out;
}

/** 500s that Consul itself answers for input like this (the request is wrong, the server is fine). */
const EXPECTED_500 = /^(No path to datacenter|invalid session)/;

test('fuzz: a few thousand malformed requests; no 5xx, no state change, the agent still answers', async () => {
  const seed = process.env.TRELLIS_FUZZ_SEED ? Number(process.env.TRELLIS_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
  process.stdout.write(`# fuzz seed ${seed} (replay: TRELLIS_FUZZ_SEED=${seed})\n`);
  const requests = fuzzRequests(prng(seed), 3000);
  const before = await snapshotState();
  const problems: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  const started = Date.now();
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < requests.length && Date.now() - started < 60_000) {
      const req = requests[next++]!;
      let r: HttpResult;
      try {
        r = await agent.request(req.method, req.path, { body: req.body, timeoutMs: 10_000 });
      } catch (err) {
        problems.push(`${req.method} ${req.path}: no answer (${(err as Error).message})`);
        continue;
      }
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      // A HEAD answer has no body to read the reason from: the same GET's text says it (an unknown ?dc=).
      const why = r.status >= 500 && req.method === 'HEAD' ? (await agent.request('GET', req.path, { timeoutMs: 10_000 }).catch(() => r)).text : r.text;
      if (r.status >= 500 && !EXPECTED_500.test(why)) problems.push(`${req.method} ${req.path} ${JSON.stringify(String(req.body ?? '').slice(0, 80))}: ${r.status} ${r.text.slice(0, 120)}`);
      if (r.status >= 400 && req.method !== 'HEAD' && r.text.trim() === '' && r.status !== 404) problems.push(`${req.method} ${req.path}: ${r.status} with an empty body`);
    }
  }));
  assert.equal(next >= requests.length, true, `only ${next} of ${requests.length} requests were sent in 60 s`);
  assert.deepEqual(problems.slice(0, 15), [], `seed ${seed}: ${problems.length} problems; statuses ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(400) ?? 0) > 1000, `seed ${seed}: the fuzzer's bad requests should mostly be 400s: ${JSON.stringify([...statuses])}`);
  assert.deepEqual(await snapshotState(), before, `seed ${seed}: the state changed`);
  const leader = await agent.request('GET', '/v1/status/leader');
  assert.equal(leader.status, 200);
  assert.ok(agent.running);
});
