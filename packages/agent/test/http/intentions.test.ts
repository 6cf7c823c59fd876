// The legacy intentions API on service-intentions config entries (/v1/connect/intentions, /exact,
// /match, /check) and POST /v1/agent/connect/authorize, on a server and through a client agent's
// cache (a second HTTP server whose backend forwards to the first, as a client agent's does).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, type Harness } from './helpers.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { injectForwarded, type Forwarder } from '../../src/http/forward.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const uri = (svc: string): string => `spiffe://${TD}/ns/default/dc/dc1/svc/${svc}`;

async function withHarness(fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = harness();
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const q = (o: Record<string, string>): string => new URLSearchParams(o).toString();

describe('/v1/connect/intentions', () => {
  test('PUT exact, GET exact, list in precedence order with config-entry rows (no ID), DELETE exact', () => withHarness(async (h) => {
    for (const [src, dst, action] of [['web', 'db', 'allow'], ['*', 'db', 'deny'], ['*', '*', 'deny'], ['web', '*', 'allow']]) {
      const put = await h.json('PUT', `/v1/connect/intentions/exact?${q({ source: src!, destination: dst! })}`, { Action: action });
      assert.equal(put.status, 200, String(put.body));
      assert.equal(put.body, true);
    }
    // Stored as config entries, one per destination, sources by precedence.
    const entry = await h.json<Record<string, any>>('GET', '/v1/config/service-intentions/db');
    assert.deepEqual(entry.body.Sources.map((s: any) => [s.Name, s.Action, s.Precedence, s.Type]), [['web', 'allow', 9, 'consul'], ['*', 'deny', 8, 'consul']]);

    const list = await h.json<any[]>('GET', '/v1/connect/intentions');
    assert.equal(list.status, 200);
    assert.ok(Number(list.headers['x-consul-index']) > 0);
    assert.deepEqual(list.body.map((i) => `${i.SourceName}->${i.DestinationName}:${i.Action}:${i.Precedence}`), ['web->db:allow:9', '*->db:deny:8', 'web->*:allow:6', '*->*:deny:5']);
    assert.equal(list.body[0].ID, undefined);
    assert.equal(list.body[0].SourceNS, 'default');
    assert.equal(list.body[0].SourceType, 'consul');

    const one = await h.json<Record<string, unknown>>('GET', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.Action, 'allow');
    const missing = await h.req('GET', `/v1/connect/intentions/exact?${q({ source: 'api', destination: 'db' })}`);
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.body, 'Intention not found');

    // Replacing keeps one source; deleting the last source deletes the entry; deleting again is fine.
    await h.json('PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`, { Action: 'deny', Description: 'no' });
    const after = await h.json<Record<string, any>>('GET', '/v1/config/service-intentions/db');
    assert.deepEqual(after.body.Sources.map((s: any) => [s.Name, s.Action]), [['web', 'deny'], ['*', 'deny']]);
    for (const src of ['web', '*', '*']) {
      const del = await h.json('DELETE', `/v1/connect/intentions/exact?${q({ source: src, destination: 'db' })}`);
      assert.equal(del.body, true);
    }
    assert.equal((await h.req('GET', '/v1/config/service-intentions/db')).statusCode, 404);
  }));

  test('legacy POST create answers an ID kept as the source\'s LegacyID; a duplicate is refused and changes nothing', () => withHarness(async (h) => {
    const res = await h.json<{ ID: string }>('POST', '/v1/connect/intentions', { SourceName: 'web', DestinationName: 'db', Action: 'allow', Meta: { team: 'a' }, Description: 'hello' });
    assert.equal(res.status, 200, String(res.body));
    assert.match(res.body.ID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const [row] = (await h.json<any[]>('GET', '/v1/connect/intentions')).body;
    assert.equal(row.ID, res.body.ID);
    assert.deepEqual(row.Meta, { team: 'a' });
    assert.equal(row.Description, 'hello');
    assert.ok(typeof row.CreatedAt === 'string');
    const entry = (await h.json<Record<string, any>>('GET', '/v1/config/service-intentions/db')).body;
    assert.equal(entry.Sources[0].LegacyID, res.body.ID);

    // By ID: read, update in place (the source may be renamed, not the destination), delete.
    const byId = await h.json<Record<string, unknown>>('GET', `/v1/connect/intentions/${res.body.ID}`);
    assert.equal(byId.body.SourceName, 'web');
    const upd = await h.req('PUT', `/v1/connect/intentions/${res.body.ID}`, { SourceName: 'web2', DestinationName: 'db', Action: 'deny' });
    assert.equal(upd.statusCode, 200, upd.body);
    const updated = (await h.json<any[]>('GET', '/v1/connect/intentions')).body;
    assert.deepEqual(updated.map((i) => [i.ID, i.SourceName, i.Action, i.CreatedAt]), [[res.body.ID, 'web2', 'deny', row.CreatedAt]]);
    const moved = await h.req('PUT', `/v1/connect/intentions/${res.body.ID}`, { SourceName: 'web2', DestinationName: 'other', Action: 'deny' });
    assert.deepEqual([moved.statusCode, moved.body], [400, 'Cannot modify Destination partition/namespace/name for an intention once it exists.']);
    const ghost = await h.req('PUT', '/v1/connect/intentions/nope', { SourceName: 'web', DestinationName: 'db', Action: 'deny' });
    assert.deepEqual([ghost.statusCode, ghost.body], [404, "Cannot modify non-existent intention: 'nope'"]);
    assert.equal((await h.req('GET', '/v1/connect/intentions/nope')).statusCode, 404);
    await h.req('PUT', `/v1/connect/intentions/${res.body.ID}`, { SourceName: 'web', DestinationName: 'db', Action: 'allow', Meta: { team: 'a' }, Description: 'hello' });

    const before = h.applied.length;
    const dup = await h.req('POST', '/v1/connect/intentions', { SourceName: 'web', DestinationName: 'db', Action: 'deny' });
    assert.equal(dup.statusCode, 400);
    assert.equal(dup.body, 'Sources[1] defines "web" more than once');
    assert.equal(h.applied.length, before);
  }));

  test('two writes to one destination racing: the CAS retry keeps both sources (no lost update)', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    let first = true;
    let secondDone!: () => void;
    const second = new Promise<void>((r) => { secondDone = r; });
    const h = harness({
      beforeApply: async (cmd) => {
        if (cmd.type !== 'configEntrySet') return;
        if (first) {
          first = false;
          await held; // the first write has read the (empty) entry and waits here
        } else {
          secondDone();
        }
      },
    });
    try {
      const a = h.json('PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`, { Action: 'allow' });
      await new Promise((r) => setImmediate(r));
      const b = h.json('PUT', `/v1/connect/intentions/exact?${q({ source: 'api', destination: 'db' })}`, { Action: 'deny' });
      await second;
      release();
      assert.equal((await a).body, true);
      assert.equal((await b).body, true);
      const entry = await h.json<Record<string, any>>('GET', '/v1/config/service-intentions/db');
      assert.deepEqual(entry.body.Sources.map((s: any) => s.Name).sort(), ['api', 'web']);
    } finally {
      await h.close();
    }
  });

  test('bad input: 400 with Consul\'s text and nothing stored', () => withHarness(async (h) => {
    const before = h.applied.length;
    const rows: Array<[string, string, string, unknown, string]> = [
      ['Action and Permissions together', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`,
        { Action: 'allow', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }, "Sources[0].Action must be omitted if Permissions are specified"],
      ['no Action', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`, {}, "Sources[0].Action must be set to 'allow' or 'deny'"],
      ['partial wildcard source', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web*', destination: 'db' })}`, { Action: 'allow' }, "Sources[0].Name: wildcard character '*' cannot be used with partial values"],
      ['partial wildcard destination', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'd*' })}`, { Action: 'allow' }, "Name: wildcard character '*' cannot be used with partial values"],
      ['permissions on a wildcard destination', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: '*' })}`,
        { Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }, 'Sources[0].Permissions cannot be specified on intentions with wildcarded destinations'],
      ['meta on a new entry', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`, { Action: 'allow', Meta: { a: 'b' } }, 'Meta must not be specified'],
      ['empty body', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'web', destination: 'db' })}`, '', 'Request decode failed: EOF'],
      ['missing source', 'PUT', `/v1/connect/intentions/exact?${q({ destination: 'db' })}`, { Action: 'allow' }, "required query parameter 'source' not set"],
      ['a namespace (Enterprise)', 'PUT', `/v1/connect/intentions/exact?${q({ source: 'ns1/web', destination: 'db' })}`, { Action: 'allow' }, 'Invalid source namespace (ns1): Namespaces is a Consul Enterprise feature'],
      ['legacy create: L7 permissions', 'POST', '/v1/connect/intentions', { SourceName: 'web', DestinationName: 'db', Permissions: [{ Action: 'allow' }] },
        "2 errors occurred:\n\t* Action must be set to 'allow' or 'deny'\n\t* Permissions must not be set when using the legacy APIs\n\n"],
      ['legacy create: partial wildcard', 'POST', '/v1/connect/intentions', { SourceName: 'w*', DestinationName: 'db', Action: 'allow' },
        "1 error occurred:\n\t* SourceName: wildcard character '*' cannot be used with partial values\n\n"],
      ['legacy create: an ID', 'POST', '/v1/connect/intentions', { ID: 'x', SourceName: 'web', DestinationName: 'db', Action: 'allow' }, 'ID must be empty when creating a new intention'],
    ];
    for (const [name, method, url, body, text] of rows) {
      const res = await h.req(method, url, body);
      assert.equal(res.statusCode, 400, name);
      assert.equal(res.body, text, name);
    }
    assert.equal(h.applied.length, before, 'nothing was proposed');
    assert.deepEqual((await h.json('GET', '/v1/connect/intentions')).body, []);
    // A config entry with duplicate sources is refused the same way.
    const dup = await h.req('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'db', Sources: [{ Name: 'web', Action: 'allow' }, { Name: 'web', Action: 'deny' }] });
    assert.equal(dup.statusCode, 400);
    assert.equal(dup.body, 'Sources[1] defines "web" more than once');
  }));

  test('match by source and destination, check, and their parameter errors', () => withHarness(async (h) => {
    const filtered = await h.json<any[]>('GET', '/v1/connect/intentions?filter=' + encodeURIComponent('SourceName == "web"'));
    assert.equal(filtered.status, 200, String(filtered.body));
    await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'db', Sources: [{ Name: 'web', Action: 'allow' }, { Name: '*', Action: 'deny' }] });
    await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: '*', Sources: [{ Name: 'web', Action: 'deny' }] });
    const byDst = await h.json<Record<string, any[]>>('GET', '/v1/connect/intentions/match?by=destination&name=db&name=cache');
    assert.deepEqual(Object.keys(byDst.body), ['db', 'cache']);
    assert.deepEqual(byDst.body.db!.map((i) => `${i.SourceName}->${i.DestinationName}`), ['web->db', '*->db', 'web->*']);
    assert.deepEqual(byDst.body.cache!.map((i) => `${i.SourceName}->${i.DestinationName}`), ['web->*']);
    const bySrc = await h.json<Record<string, any[]>>('GET', '/v1/connect/intentions/match?by=source&name=api');
    assert.deepEqual(bySrc.body.api!.map((i) => `${i.SourceName}->${i.DestinationName}`), ['*->db']);

    const check = async (s: string, d: string): Promise<unknown> => (await h.json('GET', `/v1/connect/intentions/check?${q({ source: s, destination: d })}`)).body;
    assert.deepEqual(await check('web', 'db'), { Allowed: true });
    assert.deepEqual(await check('api', 'db'), { Allowed: false });
    assert.deepEqual(await check('web', 'cache'), { Allowed: false });
    assert.deepEqual(await check('api', 'cache'), { Allowed: true });

    for (const [url, text] of [
      ['/v1/connect/intentions/match?name=db', "required query parameter 'by' not set"],
      ['/v1/connect/intentions/match?by=sideways&name=db', "'by' parameter must be one of 'source' or 'destination'"],
      ['/v1/connect/intentions/match?by=source', "required query parameter 'name' not set"],
      ['/v1/connect/intentions/check?source=web', "required query parameter 'destination' not set"],
      ['/v1/connect/intentions/check?source=web&destination=db&source-type=other', 'unsupported SourceType: "other"'],
    ] as const) {
      const res = await h.req('GET', url);
      assert.equal(res.statusCode, 400, url);
      assert.equal(res.body, text, url);
    }
    assert.equal((await h.req('DELETE', '/v1/connect/intentions')).statusCode, 405);
  }));
});

describe('POST /v1/agent/connect/authorize', () => {
  test('on a server: the default, an L4 allow and deny with Consul\'s reasons, and bad requests', () => withHarness(async (h) => {
    const auth = async (body: unknown) => h.json<Record<string, unknown>>('POST', '/v1/agent/connect/authorize', body);
    assert.deepEqual((await auth({ Target: 'db', ClientCertURI: uri('web'), ClientCertSerial: '01' })).body, { Authorized: true, Reason: 'Default behavior configured by ACLs' });
    await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: '*', Sources: [{ Name: '*', Action: 'deny' }] });
    assert.deepEqual((await auth({ target: 'db', clientcerturi: uri('web') })).body, { Authorized: false, Reason: 'Matched L4 intention: default/* => default/* (Precedence: 5, Action: DENY)' });
    await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'db', Sources: [{ Name: 'web', Action: 'allow' }] });
    assert.deepEqual((await auth({ Target: 'db', ClientCertURI: uri('web') })).body, { Authorized: true, Reason: 'Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)' });

    for (const [body, text] of [
      [{ ClientCertURI: uri('web') }, 'Target service must be specified'],
      [{ Target: 'db', ClientCertURI: 'not a uri' }, 'ClientCertURI not a valid Connect identifier'],
      [{ Target: 'db', ClientCertURI: `spiffe://${TD}/agent/client/dc/dc1/id/n1` }, 'ClientCertURI not a valid Service identifier'],
      ['{', 'Request decode failed: unexpected EOF'],
    ] as const) {
      const res = await h.req('POST', '/v1/agent/connect/authorize', body);
      assert.equal(res.statusCode, 400);
      assert.equal(res.body, text);
    }
    assert.equal((await h.req('GET', '/v1/agent/connect/authorize')).statusCode, 405);
  }));

  test('default_intention_policy = "deny": nothing matched is denied, with Consul\'s reason; check agrees', async () => {
    const h = harness({ config: { defaultIntentionPolicy: 'deny' } });
    try {
      const res = await h.json('POST', '/v1/agent/connect/authorize', { Target: 'db', ClientCertURI: uri('web') });
      assert.deepEqual(res.body, { Authorized: false, Reason: 'Default intention policy' });
      assert.deepEqual((await h.json('GET', '/v1/connect/intentions/check?source=web&destination=db')).body, { Allowed: false });
      await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'db', Sources: [{ Name: 'web', Action: 'allow' }] });
      assert.deepEqual((await h.json('GET', '/v1/connect/intentions/check?source=web&destination=db')).body, { Allowed: true });
    } finally {
      await h.close();
    }
  });

  test('on a client agent: answered from the cache once warm (no server round trip), following changes', () => withHarness(async (h) => {
    let forwarded = 0;
    const forward: Forwarder = async (req, signal) => {
      forwarded++;
      return injectForwarded(h.server.app, req, signal);
    };
    const client = createHttpServer({ ...h.backend, forward }, { host: '127.0.0.1', port: 0 });
    const auth = async (): Promise<Record<string, unknown>> => JSON.parse((await client.app.inject({
      method: 'POST', url: '/v1/agent/connect/authorize', payload: JSON.stringify({ Target: 'db', ClientCertURI: uri('web') }),
    })).body) as Record<string, unknown>;
    try {
      assert.equal((await auth()).Authorized, true);
      // The first call filled the cache (one forwarded read) and left one blocking read waiting.
      const deadline = Date.now() + 5000;
      while (forwarded < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(forwarded, 2);
      for (let i = 0; i < 20; i++) assert.equal((await auth()).Authorized, true);
      assert.equal(forwarded, 2, 'warm authorizations do not go to a server');

      // A deny written on the server wakes the cache's blocking read.
      await h.json('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'db', Sources: [{ Name: 'web', Action: 'deny' }] });
      let last = await auth();
      const until = Date.now() + 5000;
      while (last.Authorized !== false && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
        last = await auth();
      }
      assert.deepEqual(last, { Authorized: false, Reason: 'Matched L4 intention: default/web => default/db (Precedence: 9, Action: DENY)' });
    } finally {
      await client.close();
    }
  }));
});
