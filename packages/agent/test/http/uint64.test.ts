// KV Flags as a full uint64 at the HTTP edge: `?flags=` parsing, txn bodies whose Flags are JSON
// numbers above 2^53, and every answer that prints a DirEntry. Assertions read the raw response
// text, because JSON.parse in the test would round the very digits under test.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, type Harness } from './helpers.ts';
import { RequestContext } from '../../src/http/context.ts';
import { decode, DecodeError } from '../../src/http/decode.ts';
import { HttpError } from '../../src/http/errors.ts';
import { encodeJson, numberSource, parseJsonExact } from '../../src/http/json.ts';
import { TxnOpSchema } from '../../src/http/schemas.ts';

const MAX = '18446744073709551615';
const LOCK = '3304740253564472344'; // 0x2ddccbc058a50c18, `consul lock`
const SEMAPHORE = '16210313421097356768'; // 0xe0f69a2baa414de0, `consul lock -n`

const accepted: [string, string][] = [
  ['0', '0'],
  ['2^53-1', '9007199254740991'],
  ['2^53+1', '9007199254740993'],
  ['2^63', '9223372036854775808'],
  ['2^64-1', MAX],
  ['the lock marker', LOCK],
  ['the semaphore marker', SEMAPHORE],
];
const refused: [string, string][] = [
  ['2^64', '18446744073709551616'],
  ['-1', '-1'],
  ['1e3', '1e3'],
  ['1.5', '1.5'],
  ['+1', '+1'],
  ['0x10', '0x10'],
  ['empty', ''],
  ['abc', 'abc'],
];

function ctxWith(query: string): RequestContext {
  return new RequestContext({
    method: 'PUT', rawPath: '/v1/kv/k', rest: 'k', query: new URLSearchParams(query), headers: {}, body: undefined, signal: new AbortController().signal,
  });
}

async function session(h: Harness): Promise<string> {
  const res = await h.json<{ ID: string }>('PUT', '/v1/session/create', {});
  assert.equal(res.status, 200);
  return res.body.ID;
}

describe('RequestContext.uint64Param (?flags=)', () => {
  for (const [name, digits] of accepted) {
    test(`accepts ${name}`, () => {
      assert.equal(ctxWith(`flags=${digits}`).uint64Param('flags'), BigInt(digits));
    });
  }
  for (const [name, text] of refused) {
    test(`refuses ${name} with a 400 that names the parameter`, () => {
      assert.throws(
        () => ctxWith(`flags=${encodeURIComponent(text)}`).uint64Param('flags'),
        (e: unknown) => e instanceof HttpError && e.statusCode === 400 && e.message.includes('flags') && e.message.includes(JSON.stringify(text)) && /unsigned 64-bit/.test(e.message),
      );
    });
  }
  test('absent is undefined', () => {
    assert.equal(ctxWith('').uint64Param('flags'), undefined);
  });
});

describe('encodeJson (the response serializer)', () => {
  test('bigints are exact JSON numbers, never strings, with or without ?pretty', () => {
    const v = { Flags: BigInt(MAX), List: [BigInt(LOCK), 0n], N: 1, S: 'x' };
    assert.equal(encodeJson(v), `{"Flags":${MAX},"List":[${LOCK},0],"N":1,"S":"x"}`);
    assert.equal(encodeJson(v, 4), `{\n    "Flags": ${MAX},\n    "List": [\n        ${LOCK},\n        0\n    ],\n    "N": 1,\n    "S": "x"\n}`);
  });
  test('bytes stay base64 (Buffer and Uint8Array)', () => {
    assert.equal(encodeJson({ a: Buffer.from('hi'), b: new Uint8Array([1, 2]) }), '{"a":"aGk=","b":"AQI="}');
  });
});

describe('parseJsonExact + decode uint64', () => {
  const kvOp = (flags: string) => `{"KV":{"Verb":"set","Key":"k","Flags":${flags}}}`;
  for (const [name, digits] of accepted) {
    test(`a JSON number ${name} decodes to the exact bigint`, () => {
      const op = decode(parseJsonExact(kvOp(digits)), TxnOpSchema) as { KV: { Flags: bigint } };
      assert.equal(op.KV.Flags, BigInt(digits));
    });
  }
  for (const flags of ['18446744073709551616', '-1', '1e3', '1.0', '-0', '"5"']) {
    test(`refuses ${flags} as Go does, quoting what was sent`, () => {
      assert.throws(() => decode(parseJsonExact(kvOp(flags)), TxnOpSchema), (e: unknown) =>
        e instanceof DecodeError && e.message === `json: cannot unmarshal ${flags.startsWith('"') ? 'string' : `number ${flags}`} into Go struct field TxnOp.KV.Flags of type uint64`);
    });
  }
  test('without parseJsonExact an unsafe number is refused, not rounded', () => {
    assert.throws(() => decode(JSON.parse(kvOp(LOCK)), TxnOpSchema), DecodeError);
  });
  test('only the uint64 field is affected: big numbers elsewhere parse as JSON.parse does', () => {
    const raw = parseJsonExact(`{"a":{"Flags":${LOCK}},"b":[1e3, 5]}`) as { a: { Flags: number }; b: number[] };
    assert.deepEqual(raw, JSON.parse(`{"a":{"Flags":${LOCK}},"b":[1e3, 5]}`));
    assert.equal(numberSource(raw.a, 'Flags'), LOCK);
    assert.equal(numberSource(raw.b, '0'), '1e3');
    assert.equal(numberSource(raw.b, '1'), undefined, 'plain safe integers need no source');
  });
});

describe('/v1/kv with 64-bit flags', () => {
  test('PUT ?flags= then GET: the exact digits in the raw JSON (single key, recurse, ?pretty)', async () => {
    const h = harness();
    for (const [i, [name, digits]] of accepted.entries()) {
      const put = await h.req('PUT', `/v1/kv/f/${i}?flags=${digits}`, 'v');
      assert.equal(put.statusCode, 200, name);
      assert.equal(put.body, 'true');
      assert.equal(h.store.kvGet(`f/${i}`).value!.Flags, BigInt(digits), name);
      const get = await h.req('GET', `/v1/kv/f/${i}`);
      assert.equal(get.statusCode, 200);
      assert.match(get.body, new RegExp(`^\\[\\{"LockIndex":0,"Key":"f/${i}","Flags":${digits},"Value":"dg==","CreateIndex":\\d+,"ModifyIndex":\\d+\\}\\]$`), name);
    }
    const list = await h.req('GET', '/v1/kv/f/?recurse');
    for (const [, digits] of accepted) assert.ok(list.body.includes(`"Flags":${digits},`), digits);
    const pretty = await h.req('GET', '/v1/kv/f/4?pretty');
    assert.ok(pretty.body.includes(`"Flags": ${MAX},`), pretty.body);
    await h.close();
  });

  test('?flags out of range or malformed: 400 naming flags, nothing written', async () => {
    const h = harness();
    const before = h.store.lastIndex();
    for (const [name, text] of refused) {
      const res = await h.req('PUT', `/v1/kv/bad?flags=${encodeURIComponent(text)}`, 'v');
      assert.equal(res.statusCode, 400, name);
      assert.equal(res.body, `Invalid flags: ${JSON.stringify(text)}: must be an unsigned 64-bit integer (0 to ${MAX})`);
    }
    assert.equal(h.store.lastIndex(), before);
    assert.equal((await h.req('GET', '/v1/kv/bad')).statusCode, 404);
    await h.close();
  });

  test("Consul's lock recipe: acquire with the lock marker, read it back exactly, release keeps it", async () => {
    const h = harness();
    const id = await session(h);
    const acq = await h.req('PUT', `/v1/kv/locks/x/.lock?acquire=${id}&flags=${LOCK}`, '');
    assert.equal(acq.body, 'true');
    const held = await h.req('GET', '/v1/kv/locks/x/.lock');
    assert.ok(held.body.includes(`"Flags":${LOCK},"Value":null,"Session":"${id}"`), held.body);
    const rel = await h.req('PUT', `/v1/kv/locks/x/.lock?release=${id}&flags=${LOCK}`, '');
    assert.equal(rel.body, 'true');
    const after = await h.req('GET', '/v1/kv/locks/x/.lock');
    assert.ok(after.body.includes(`"Flags":${LOCK},"Value":null,"CreateIndex"`), after.body);
    await h.close();
  });

  test('the semaphore recipe: cas create with the semaphore marker', async () => {
    const h = harness();
    const res = await h.req('PUT', `/v1/kv/sem/.lock?cas=0&flags=${SEMAPHORE}`, '{"Limit":2,"Holders":{}}');
    assert.equal(res.body, 'true');
    const got = await h.req('GET', '/v1/kv/sem/?recurse');
    assert.ok(got.body.includes(`"Key":"sem/.lock","Flags":${SEMAPHORE},`), got.body);
    await h.close();
  });
});

describe('/v1/txn with 64-bit flags', () => {
  test('a JSON number above 2^53 in the body is stored exactly and printed exactly', async () => {
    const h = harness();
    const body = `[{"KV":{"Verb":"set","Key":"t/a","Value":"MQ==","Flags":${MAX}}},{"KV":{"Verb":"cas","Key":"t/b","Index":0,"Flags":${LOCK}}},{"KV":{"Verb":"get","Key":"t/a"}}]`;
    const res = await h.req('PUT', '/v1/txn', body);
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(res.body.includes(`{"KV":{"LockIndex":0,"Key":"t/a","Flags":${MAX},"Value":null,`), res.body);
    assert.ok(res.body.includes(`{"KV":{"LockIndex":0,"Key":"t/b","Flags":${LOCK},"Value":null,`), res.body);
    assert.ok(res.body.includes(`{"KV":{"LockIndex":0,"Key":"t/a","Flags":${MAX},"Value":"MQ==",`), res.body);
    assert.equal(h.store.kvGet('t/a').value!.Flags, BigInt(MAX));
    assert.equal(h.store.kvGet('t/b').value!.Flags, BigInt(LOCK));
    // The command that went through the (real) Raft codec carried the exact value.
    assert.deepEqual(h.applied.at(-1), { type: 'txn', now: (h.applied.at(-1) as { now: number }).now, Ops: [
      { KV: { Verb: 'set', Key: 't/a', Value: Buffer.from('1'), Flags: BigInt(MAX) } },
      { KV: { Verb: 'cas', Key: 't/b', Flags: BigInt(LOCK), Index: 0 } },
      { KV: { Verb: 'get', Key: 't/a' } },
    ] });
    await h.close();
  });

  test('a read-only txn (served from the store) prints big flags exactly', async () => {
    const h = harness();
    await h.req('PUT', `/v1/kv/r?flags=${SEMAPHORE}`, 'x');
    const before = h.applied.length;
    const res = await h.req('PUT', '/v1/txn', '[{"KV":{"Verb":"get","Key":"r"}},{"KV":{"Verb":"get-tree","Key":""}}]');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(h.applied.length, before, 'reads do not go through Raft');
    assert.equal(res.body.split(`"Flags":${SEMAPHORE},`).length - 1, 2, res.body);
    await h.close();
  });

  test('lowercase keys (Go matches fields case-insensitively) keep the digits too', async () => {
    const h = harness();
    const res = await h.req('PUT', '/v1/txn', `[{"kv":{"verb":"set","key":"lc","flags":${LOCK}}}]`);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(h.store.kvGet('lc').value!.Flags, BigInt(LOCK));
    await h.close();
  });

  const bad: [string, string][] = [
    ['2^64', '18446744073709551616'],
    ['-1', '-1'],
    ['1e3', '1e3'],
    ['a string', `"${LOCK}"`],
  ];
  for (const [name, flags] of bad) {
    test(`Flags ${name}: 400 with Go's message, nothing applied`, async () => {
      const h = harness();
      const before = h.store.lastIndex();
      const res = await h.req('PUT', '/v1/txn', `[{"KV":{"Verb":"set","Key":"x","Flags":${flags}}}]`);
      assert.equal(res.statusCode, 400);
      const what = flags.startsWith('"') ? 'string' : `number ${flags}`;
      assert.equal(res.body, `Failed to parse body: json: cannot unmarshal ${what} into Go struct field TxnOp.KV.Flags of type uint64`);
      assert.equal(h.store.lastIndex(), before);
      await h.close();
    });
  }
});
