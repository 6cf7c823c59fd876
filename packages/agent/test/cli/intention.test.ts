// `trellis intention create|get|list|check|match|delete` in-process against the real HTTP API (the
// HTTP test harness, reached through an injected fetch): Consul's outputs and exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from './harness.ts';
import { harness } from '../http/helpers.ts';
import type { FetchLike } from '../../src/cli/command.ts';

test('intention commands: outputs and exit codes as Consul\'s', async () => {
  const h = harness();
  const fetch: FetchLike = async (input, init) => {
    const u = new URL(input);
    const res = await h.server.app.inject({ method: (init.method ?? 'GET') as 'GET', url: u.pathname + u.search, ...(init.body !== undefined ? { payload: init.body as string } : {}) });
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v));
    return new Response(res.statusCode === 204 ? null : res.rawPayload, { status: res.statusCode, headers });
  };
  const run = (...args: string[]) => cli(args, { extra: { fetch } });
  try {
    let r = await run('intention', 'list');
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'There are no intentions.\n');

    r = await run('intention', 'create', 'web', 'db');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Created: web => db (allow)\n');
    r = await run('intention', 'create', '-deny', '-meta', 'team=a', '*', 'db');
    assert.equal(r.stdout, 'Created: * => db (deny)\n');
    // A second one of the same pair is refused; -replace upserts it silently.
    r = await run('intention', 'create', '-deny', 'web', 'db');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error creating intention "web => db (deny)": Unexpected response code: 400 (Sources[1] defines "web" more than once)\n');
    r = await run('intention', 'create', '-allow', '-deny', 'web', 'db');
    assert.equal(r.stderr, 'Only one of -allow or -deny may be specified.\n');
    r = await run('intention', 'create', 'web');
    assert.equal(r.stderr, 'Error: Must specify two arguments: source and destination\n');

    r = await run('intention', 'check', 'web', 'db');
    assert.deepEqual([r.code, r.stdout], [0, 'Allowed\n']);
    r = await run('intention', 'check', 'api', 'db');
    assert.deepEqual([r.code, r.stdout], [1, 'Denied\n']);
    r = await run('intention', 'check', '-bogus', 'api', 'db');
    assert.equal(r.code, 2, 'a flag error is exit 2, as Consul\'s check');
    r = await run('intention', 'check', 'api');
    assert.deepEqual([r.code, r.stderr], [2, 'Error: command requires exactly two arguments: src and dst\n']);

    r = await run('intention', 'create', '-replace', '-deny', 'web', 'db');
    assert.deepEqual([r.code, r.stdout], [0, '']);
    r = await run('intention', 'check', 'web', 'db');
    assert.deepEqual([r.code, r.stdout], [1, 'Denied\n']);

    r = await run('intention', 'match', 'db');
    assert.equal(r.stdout, 'web => db (deny)\n* => db (deny)\n');
    r = await run('intention', 'match', '-source', 'web');
    assert.equal(r.stdout, 'web => db (deny)\n* => db (deny)\n');
    r = await run('intention', 'match', '-source', '-destination', 'web');
    assert.equal(r.stderr, 'Error: only one of -source or -destination may be specified\n');

    r = await run('intention', 'list');
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+Source\s+Action\s+Destination\s+Precedence$/);
    // -replace updated the legacy intention in place: it keeps its ID.
    assert.match(lines[1]!, /^[0-9a-f-]{36}\s+web\s+deny\s+db\s+9$/);
    assert.match(lines[2]!, /^[0-9a-f-]{36}\s+\*\s+deny\s+db\s+8$/);

    r = await run('intention', 'get', '*', 'db');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Source:\s+\*\nDestination:\s+db\nAction:\s+deny\nID:\s+[0-9a-f-]{36}\nMeta\[team\]:\s+a\nCreated At:\s+\w+, \d\d-\w\w\w-\d\d \d\d:\d\d:\d\d UTC\n$/);
    const id = /ID:\s+(\S+)/.exec(r.stdout)![1]!;
    r = await run('intention', 'get', id);
    assert.equal(r.code, 0, r.stderr);
    r = await run('intention', 'get', 'api', 'db');
    assert.deepEqual([r.code, r.stderr], [1, 'Intention not found with source "api" and destination "db"\n']);

    r = await run('intention', 'delete', id);
    assert.deepEqual([r.code, r.stdout], [0, 'Intention deleted.\n']);
    r = await run('intention', 'delete', 'web', 'db');
    assert.deepEqual([r.code, r.stdout], [0, 'Intention deleted.\n']);
    r = await run('intention', 'list');
    assert.equal(r.code, 2);
    assert.equal((await h.req('GET', '/v1/config/service-intentions/db')).statusCode, 404);
  } finally {
    await h.close();
  }
});
