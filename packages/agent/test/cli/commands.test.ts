// The HTTP-client commands against a fake Consul-shaped server: the exact text, stream and exit
// code a user (or a script written for `consul`) gets.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startFakeConsul, type FakeConsul } from './fakeConsul.ts';
import { cli, type RunOptions } from './harness.ts';

let fake: FakeConsul;
let tmp: string;
const run = (args: string[], opts: RunOptions = {}) => cli(args, { ...opts, env: { CONSUL_HTTP_ADDR: fake.addr, ...(opts.env ?? {}) } });

before(async () => {
  fake = await startFakeConsul();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-cli-'));
});
after(async () => {
  await fake.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.kv.clear();
  fake.failures.clear();
});

describe('members', () => {
  const members = [
    { Name: 'node-b', Addr: '10.0.0.2', Port: 8301, Tags: { role: 'node', dc: 'dc1', build: '1.2.3:abc', vsn: '2' }, Status: 1 },
    { Name: 'server-a-long-name', Addr: '10.0.0.1', Port: 8301, Tags: { role: 'consul', dc: 'dc1', build: '0.1.0', vsn: '2' }, Status: 1 },
    { Name: 'gone', Addr: '::1', Port: 8301, Tags: { role: 'node', dc: 'dc1', build: '0.1.0', vsn: '2' }, Status: 4 },
  ];
  test('columns as Consul aligns them: servers first, then by name', async () => {
    fake.members = members;
    const r = await run(['members']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, [
      'Node                Address        Status  Type    Build  Protocol  DC   Partition  Segment',
      'server-a-long-name  10.0.0.1:8301  alive   server  0.1.0  2         dc1  default    <all>',
      'gone                [::1]:8301     failed  client  0.1.0  2         dc1  default    <default>',
      'node-b              10.0.0.2:8301  alive   client  1.2.3  2         dc1  default    <default>',
      '',
    ].join('\n'));
  });
  test('-detailed lists sorted tags', async () => {
    fake.members = [members[1]!];
    const r = await run(['members', '-detailed']);
    assert.equal(r.stdout, [
      'Node                Address        Status  Tags',
      'server-a-long-name  10.0.0.1:8301  alive   ap=default,build=0.1.0,dc=dc1,role=consul,segment=<all>,vsn=2',
      '',
    ].join('\n'));
  });
  test('-status filters by regexp; no match exits 2 with no output; -wan asks the WAN pool', async () => {
    fake.members = members;
    const failed = await run(['members', '-status=failed']);
    assert.equal(failed.code, 0);
    assert.equal(failed.stdout.split('\n').length, 3);
    assert.match(failed.stdout, /^gone /m);
    const none = await run(['members', '-status=left', '-wan']);
    assert.equal(none.code, 2);
    assert.equal(none.stdout, '');
    assert.equal(fake.requests.at(-1)!.query.get('wan'), '1');
  });
});

describe('kv get', () => {
  test('prints the raw value', async () => {
    fake.put('app/name', 'hello world');
    const r = await run(['kv', 'get', 'app/name']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'hello world\n', '']);
  });
  test('a leading slash is dropped, as Consul does', async () => {
    fake.put('app/name', 'v');
    assert.equal((await run(['kv', 'get', '/app/name'])).stdout, 'v\n');
  });
  test('a missing key is an error on stderr, exit 1', async () => {
    const r = await run(['kv', 'get', 'missing/key']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'Error! No key exists at: missing/key\n']);
  });
  test('no key and no -recurse/-keys', async () => {
    const r = await run(['kv', 'get']);
    assert.deepEqual([r.code, r.stderr], [1, 'Error! Missing KEY argument\n']);
  });
  test('binary values are written as bytes', async () => {
    fake.kv.set('bin', { Key: 'bin', Value: Buffer.from([0, 255, 10, 1]), Flags: 0n, CreateIndex: 5, ModifyIndex: 5, LockIndex: 0, Session: '' });
    const r = await run(['kv', 'get', 'bin']);
    assert.deepEqual(r.stdoutBytes, Buffer.from([0, 255, 10, 1, 10]));
  });
  test('-detailed aligns like text/tabwriter with padding 6', async () => {
    fake.put('app/name', 'v1', 42n);
    const idx = fake.index();
    const r = await run(['kv', 'get', '-detailed', 'app/name']);
    assert.equal(r.stdout, [
      `CreateIndex      ${idx}`,
      'Flags            42',
      'Key              app/name',
      'LockIndex        0',
      `ModifyIndex      ${idx}`,
      'Session          -',
      'Value            v1',
      '',
    ].join('\n'));
  });
  test('-recurse prints key:value lines; -base64 encodes', async () => {
    fake.put('p/a', '1');
    fake.put('p/b', 'two');
    fake.put('q', 'no');
    assert.equal((await run(['kv', 'get', '-recurse', 'p/'])).stdout, 'p/a:1\np/b:two\n');
    assert.equal((await run(['kv', 'get', '-recurse', '-base64', 'p/'])).stdout, 'p/a:MQ==\np/b:dHdv\n');
  });
  test('-keys with the default "/" separator', async () => {
    fake.put('p/a', '1');
    fake.put('p/dir/x', '2');
    fake.put('p/dir/y', '3');
    const r = await run(['kv', 'get', '-keys', 'p/']);
    assert.equal(r.stdout, 'p/a\np/dir/\n');
    assert.equal(fake.requests.at(-1)!.query.get('separator'), '/');
  });
  test('an agent error is reported with its status and body', async () => {
    fake.failures.set('/v1/kv/x', { status: 500, body: 'No cluster leader' });
    const r = await run(['kv', 'get', 'x']);
    assert.deepEqual([r.code, r.stderr], [1, 'Error querying agent: Unexpected response code: 500 (No cluster leader)\n']);
  });
});

describe('kv put', () => {
  test('writes the value and says so', async () => {
    const r = await run(['kv', 'put', 'app/name', 'hello']);
    assert.deepEqual([r.code, r.stdout], [0, 'Success! Data written to: app/name\n']);
    assert.equal(fake.kv.get('app/name')!.Value.toString(), 'hello');
  });
  test('no data writes an empty value', async () => {
    await run(['kv', 'put', 'flag']);
    assert.equal(fake.kv.get('flag')!.Value.length, 0);
  });
  test('@file and - (stdin)', async () => {
    const f = path.join(tmp, 'value.bin');
    fs.writeFileSync(f, Buffer.from([1, 2, 3]));
    assert.equal((await run(['kv', 'put', 'fromfile', `@${f}`])).code, 0);
    assert.deepEqual(fake.kv.get('fromfile')!.Value, Buffer.from([1, 2, 3]));
    assert.equal((await run(['kv', 'put', 'fromstdin', '-'], { stdin: 'piped\n' })).code, 0);
    assert.equal(fake.kv.get('fromstdin')!.Value.toString(), 'piped\n');
    const missing = await run(['kv', 'put', 'k', '@/no/such/file']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error! Failed to read file: ENOENT/);
  });
  test('-flags up to uint64 travel exactly', async () => {
    await run(['kv', 'put', '-flags=18446744073709551615', 'f', 'x']);
    assert.equal(fake.requests.at(-1)!.query.get('flags'), '18446744073709551615');
    assert.equal(fake.kv.get('f')!.Flags, 18446744073709551615n);
    const r = await run(['kv', 'get', '-detailed', 'f']);
    assert.match(r.stdout, /^Flags {12}18446744073709551615$/m);
  });
  test('-cas succeeds with the current index and fails with a stale one', async () => {
    fake.put('c', 'v1');
    const idx = fake.index();
    const stale = await run(['kv', 'put', '-cas', `-modify-index=${idx - 1}`, 'c', 'v2']);
    assert.deepEqual([stale.code, stale.stderr], [1, 'Error! Did not write to c: CAS failed\n']);
    const ok = await run(['kv', 'put', '-cas', `-modify-index=${idx}`, 'c', 'v2']);
    assert.deepEqual([ok.code, ok.stdout], [0, 'Success! Data written to: c\n']);
    assert.equal(fake.kv.get('c')!.Value.toString(), 'v2');
    const missingIndex = await run(['kv', 'put', '-cas', 'c', 'v3']);
    assert.deepEqual([missingIndex.code, missingIndex.stderr], [1, 'Must specify -modify-index with -cas!\n']);
  });
  test('-acquire and -release need -session, and report the lock outcome', async () => {
    const noSession = await run(['kv', 'put', '-acquire', 'l', 'x']);
    assert.deepEqual([noSession.code, noSession.stderr], [1, 'Error! Missing -session (required with -acquire and -release)\n']);
    fake.sessions.set('s1', { Name: '', TTL: '', Behavior: 'release' });
    fake.sessions.set('s2', { Name: '', TTL: '', Behavior: 'release' });
    assert.equal((await run(['kv', 'put', '-acquire', '-session=s1', 'l', 'x'])).stdout, 'Success! Lock acquired on: l\n');
    const busy = await run(['kv', 'put', '-acquire', '-session=s2', 'l', 'x']);
    assert.deepEqual([busy.code, busy.stderr], [1, 'Error! Did not acquire lock\n']);
    assert.equal((await run(['kv', 'put', '-release', '-session=s1', 'l'])).stdout, 'Success! Lock released on: l\n');
    const bad = await run(['kv', 'put', '-acquire', '-session=nope', 'l', 'x']);
    assert.deepEqual([bad.code, bad.stderr], [1, 'Error! Failed writing data: Unexpected response code: 500 (invalid session "nope")\n']);
  });
  test('-base64 decodes the data', async () => {
    await run(['kv', 'put', '-base64', 'b', 'aGVsbG8=']);
    assert.equal(fake.kv.get('b')!.Value.toString(), 'hello');
    const bad = await run(['kv', 'put', '-base64', 'b', 'not base64!']);
    assert.deepEqual([bad.code, bad.stderr], [1, 'Error! Cannot base 64 decode data: illegal base64 data\n']);
  });
  test('argument count', async () => {
    assert.deepEqual(Object.values(await run(['kv', 'put'])).slice(0, 1), [1]);
    const many = await run(['kv', 'put', 'a', 'b', 'c']);
    assert.deepEqual([many.code, many.stderr], [1, 'Error! Too many arguments (expected 1 or 2, got 3)\n']);
  });
});

describe('kv delete', () => {
  test('one key, a prefix, and CAS', async () => {
    fake.put('d/a', '1');
    fake.put('d/b', '2');
    fake.put('keep', '3');
    assert.equal((await run(['kv', 'delete', 'd/a'])).stdout, 'Success! Deleted key: d/a\n');
    assert.equal(fake.kv.has('d/a'), false);
    assert.equal((await run(['kv', 'delete', '-recurse', 'd/'])).stdout, 'Success! Deleted keys with prefix: d/\n');
    assert.deepEqual([...fake.kv.keys()], ['keep']);
    const idx = fake.kv.get('keep')!.ModifyIndex;
    const stale = await run(['kv', 'delete', '-cas', `-modify-index=${idx + 1}`, 'keep']);
    assert.deepEqual([stale.code, stale.stderr], [1, 'Error! Did not delete key keep: CAS failed\n']);
    assert.equal((await run(['kv', 'delete', '-cas', `-modify-index=${idx}`, 'keep'])).code, 0);
    assert.equal(fake.kv.size, 0);
  });
  test('flag combinations Consul refuses', async () => {
    const cases: Array<[string[], string]> = [
      [['kv', 'delete'], 'Error! Missing KEY argument\n'],
      [['kv', 'delete', '-cas', 'k'], 'Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.\n'],
      [['kv', 'delete', '-modify-index=3', 'k'], 'Cannot specify -modify-index without -cas!\n'],
      [['kv', 'delete', '-cas', '-modify-index=3', '-recurse', 'k'], 'Cannot specify both -cas and -recurse!\n'],
    ];
    for (const [args, err] of cases) {
      const r = await run(args);
      assert.deepEqual([r.code, r.stderr], [1, err], args.join(' '));
    }
    assert.equal(fake.requests.length, 0, 'nothing was sent');
  });
});

describe('kv export and import', () => {
  test('export is Consul\'s JSON (tab indent, HTML-safe escapes, exact uint64 flags)', async () => {
    fake.put('e/a', 'x<y>', 3304740253564472344n);
    fake.put('e/b&c', '');
    const r = await run(['kv', 'export', 'e/']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, [
      '[',
      '\t{',
      '\t\t"key": "e/a",',
      '\t\t"flags": 3304740253564472344,',
      '\t\t"value": "eDx5Pg=="',
      '\t},',
      '\t{',
      '\t\t"key": "e/b\\u0026c",',
      '\t\t"flags": 0,',
      '\t\t"value": ""',
      '\t}',
      ']',
      '',
    ].join('\n'));
  });
  test('an empty tree exports []', async () => {
    assert.equal((await run(['kv', 'export', 'nothing/'])).stdout, '[]\n');
  });
  test('import from @file and from stdin restores keys, values and flags', async () => {
    fake.put('i/a', 'alpha', 7n);
    fake.put('i/b', 'beta', 3304740253564472344n);
    const exported = (await run(['kv', 'export', 'i/'])).stdout;
    fake.kv.clear();
    const f = path.join(tmp, 'export.json');
    fs.writeFileSync(f, exported);
    const r = await run(['kv', 'import', `@${f}`]);
    assert.deepEqual([r.code, r.stdout], [0, 'Imported: i/a\nImported: i/b\n']);
    assert.equal(fake.kv.get('i/a')!.Value.toString(), 'alpha');
    assert.equal(fake.kv.get('i/b')!.Flags, 3304740253564472344n);
    fake.kv.clear();
    assert.equal((await run(['kv', 'import', '-'], { stdin: exported })).code, 0);
    assert.equal(fake.kv.get('i/b')!.Value.toString(), 'beta');
  });
  test('import refuses what it cannot decode', async () => {
    const notJson = await run(['kv', 'import', '{nope']);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /^Cannot unmarshal data: /);
    const badValue = await run(['kv', 'import', '[{"key":"k","flags":0,"value":"***"}]']);
    assert.deepEqual([badValue.code, badValue.stderr], [1, 'Error base 64 decoding value for key k: illegal base64 data\n']);
    const badFlags = await run(['kv', 'import', '[{"key":"k","flags":-1,"value":""}]']);
    assert.deepEqual([badFlags.code, badFlags.stderr], [1, 'Error! Invalid flags for key k: -1 is not an unsigned 64-bit integer\n']);
    assert.equal(fake.kv.size, 0);
    assert.equal((await run(['kv', 'import'])).stderr, 'Error! Missing DATA argument\n');
  });
});

describe('catalog', () => {
  test('datacenters, one per line', async () => {
    fake.datacenters = ['dc1', 'dc2'];
    assert.equal((await run(['catalog', 'datacenters'])).stdout, 'dc1\ndc2\n');
  });
  test('nodes: Node ID Address DC with the short ID', async () => {
    fake.nodes = [
      { ID: '5a8c2b3e-1111-2222-3333-444455556666', Node: 'alpha', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1', wan: '1.2.3.4' }, Meta: { rack: 'r1' } },
      { ID: '', Node: 'b', Address: '10.0.0.22', Datacenter: 'dc1', TaggedAddresses: null, Meta: null },
    ];
    assert.equal((await run(['catalog', 'nodes'])).stdout, [
      'Node   ID        Address    DC',
      'alpha  5a8c2b3e  10.0.0.1   dc1',
      'b                10.0.0.22  dc1',
      '',
    ].join('\n'));
    assert.equal((await run(['catalog', 'nodes', '-detailed'])).stdout, [
      'Node   ID                                    Address    DC   TaggedAddresses            Meta',
      'alpha  5a8c2b3e-1111-2222-3333-444455556666  10.0.0.1   dc1  lan=10.0.0.1, wan=1.2.3.4  rack=r1',
      // columnize pads every cell but the last, so empty trailing columns leave spaces (as in Consul).
      'b                                            10.0.0.22  dc1                             ',
      '',
    ].join('\n'));
  });
  test('nodes -service and -node-meta query what Consul queries', async () => {
    fake.serviceNodes = { web: [{ ID: 'abcd-ef', Node: 'n9', Address: '10.9.9.9', Datacenter: 'dc1', NodeMeta: {} }] };
    const r = await run(['catalog', 'nodes', '-service=web', '-node-meta=rack=r1']);
    assert.equal(r.stdout, 'Node  ID    Address   DC\nn9    abcd  10.9.9.9  dc1\n');
    const req = fake.requests.at(-1)!;
    assert.equal(req.path, '/v1/catalog/service/web');
    assert.deepEqual(req.query.getAll('node-meta'), ['rack:r1']);
  });
  test('no nodes: a hint on stderr, exit 0', async () => {
    fake.nodes = [];
    const r = await run(['catalog', 'nodes']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', 'No nodes match the given query - try expanding your search.\n']);
  });
  test('services: sorted names; -tags aligned by tabwriter', async () => {
    fake.services = { web: ['v2', 'v1'], consul: [], 'db-primary': ['pg'] };
    assert.equal((await run(['catalog', 'services'])).stdout, 'consul\ndb-primary\nweb\n');
    // tabwriter pads a cell even when the last cell after it is empty (Consul trims only the ends).
    assert.equal((await run(['catalog', 'services', '-tags'])).stdout, [
      'consul          ',
      'db-primary      pg',
      'web             v1,v2',
      '',
    ].join('\n'));
  });
  test('services -node reads the node\'s services', async () => {
    fake.catalogNodes = { n1: { Node: { Node: 'n1' }, Services: { 'web-1': { Service: 'web', Tags: ['a'] }, 'web-2': { Service: 'web', Tags: ['b'] }, redis: { Service: 'redis', Tags: [] } } } };
    assert.equal((await run(['catalog', 'services', '-node=n1', '-tags'])).stdout, 'redis      \nweb        a,b\n');
  });
});

describe('agent operations', () => {
  test('info prints Stats sections sorted, tab-indented', async () => {
    fake.self = { Config: {}, Stats: { raft: { state: 'Leader', applied_index: '12' }, agent: { checks: '0', services: '1' } } };
    assert.equal((await run(['info'])).stdout, 'agent:\n\tchecks = 0\n\tservices = 1\nraft:\n\tapplied_index = 12\n\tstate = Leader\n');
  });
  test('leave and reload', async () => {
    assert.equal((await run(['leave'])).stdout, 'Graceful leave complete\n');
    assert.equal(fake.requests.at(-1)!.method, 'PUT');
    assert.equal((await run(['reload'])).stdout, 'Configuration reload triggered\n');
    assert.equal(fake.requests.at(-1)!.path, '/v1/agent/reload');
  });
  test('operator raft list-peers', async () => {
    fake.raftConfig = { Servers: [
      { ID: '11111111-aaaa', Node: 'server-1', Address: '10.0.0.1:8300', Leader: true, Voter: true, ProtocolVersion: '3' },
      { ID: '22222222-bbbb', Node: 's2', Address: '10.0.0.2:8300', Leader: false, Voter: false, ProtocolVersion: '' },
    ], Index: 5 };
    assert.equal((await run(['operator', 'raft', 'list-peers'])).stdout, [
      'Node      ID             Address        State     Voter  RaftProtocol',
      'server-1  11111111-aaaa  10.0.0.1:8300  leader    true   3',
      's2        22222222-bbbb  10.0.0.2:8300  follower  false  <=1',
      '',
    ].join('\n'));
  });
  test('operator raft remove-peer by -id or -address: DELETE with that query, Consul\'s success line', async () => {
    const byId = await run(['operator', 'raft', 'remove-peer', '-id=22222222-bbbb']);
    assert.deepEqual([byId.code, byId.stdout, byId.stderr], [0, 'Removed peer with id "22222222-bbbb"\n', '']);
    let req = fake.requests.at(-1)!;
    assert.deepEqual([req.method, req.path, req.query.get('id'), req.query.has('address')], ['DELETE', '/v1/operator/raft/peer', '22222222-bbbb', false]);
    const byAddr = await run(['operator', 'raft', 'remove-peer', '-address=10.0.0.2:8300']);
    assert.deepEqual([byAddr.code, byAddr.stdout], [0, 'Removed peer with address "10.0.0.2:8300"\n']);
    req = fake.requests.at(-1)!;
    assert.deepEqual([req.method, req.query.get('address'), req.query.has('id')], ['DELETE', '10.0.0.2:8300', false]);
  });
  test('operator raft remove-peer needs exactly one of -id / -address and sends nothing otherwise', async () => {
    const none = await run(['operator', 'raft', 'remove-peer']);
    assert.deepEqual([none.code, none.stdout, none.stderr], [1, '', 'Error removing peer: an address or id is required for the peer to remove\n']);
    const both = await run(['operator', 'raft', 'remove-peer', '-id=a', '-address=10.0.0.2:8300']);
    assert.deepEqual([both.code, both.stderr], [1, 'Error removing peer: cannot give both an address and id\n']);
    assert.equal(fake.requests.length, 0);
  });
  test('operator raft remove-peer prints the server\'s error and exits 1', async () => {
    fake.failures.set('/v1/operator/raft/peer', { status: 500, body: 'id "nope" was not found in the Raft configuration' });
    const r = await run(['operator', 'raft', 'remove-peer', '-id=nope']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'Error removing peer: Unexpected response code: 500 (id "nope" was not found in the Raft configuration)\n']);
  });
  test('operator raft transfer-leader: POST, with ?id only when given; prints Success', async () => {
    const any = await run(['operator', 'raft', 'transfer-leader']);
    assert.deepEqual([any.code, any.stdout, any.stderr], [0, 'Success\n', '']);
    let req = fake.requests.at(-1)!;
    assert.deepEqual([req.method, req.path, req.query.has('id')], ['POST', '/v1/operator/raft/transfer-leader', false]);
    const to = await run(['operator', 'raft', 'transfer-leader', '-id=33333333-cccc']);
    assert.deepEqual([to.code, to.stdout], [0, 'Success\n']);
    req = fake.requests.at(-1)!;
    assert.equal(req.query.get('id'), '33333333-cccc');
  });
  test('operator raft transfer-leader prints the server\'s error and exits 1', async () => {
    fake.failures.set('/v1/operator/raft/transfer-leader', { status: 500, body: 'No cluster leader' });
    const r = await run(['operator', 'raft', 'transfer-leader']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'Error transferring leadership: Failed to transfer leadership: Unexpected response code: 500 (No cluster leader)\n']);
  });
  test('keygen prints 32 random bytes in base64', async () => {
    const a = (await cli(['keygen'])).stdout.trim();
    const b = (await cli(['keygen'])).stdout.trim();
    assert.equal(Buffer.from(a, 'base64').length, 32);
    assert.equal(Buffer.from(a, 'base64').toString('base64'), a);
    assert.notEqual(a, b);
  });
});

describe('services register / deregister', () => {
  test('from flags', async () => {
    const r = await run(['services', 'register', '-name=web', '-port=8080', '-tag=v1', '-tag=v2', '-meta=team=a', '-tagged-address=lan=10.0.0.1:80']);
    assert.deepEqual([r.code, r.stdout], [0, 'Registered service: web\n']);
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), {
      Name: 'web', Port: 8080, Tags: ['v1', 'v2'], Meta: { team: 'a' }, TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } },
    });
  });
  test('from a config file, with flag values filling gaps', async () => {
    const f = path.join(tmp, 'web.json');
    fs.writeFileSync(f, JSON.stringify({ service: { name: 'web', port: 80, check: { http: 'http://localhost/health', interval: '10s' } } }));
    const r = await run(['services', 'register', '-tag=extra', f]);
    assert.deepEqual([r.code, r.stdout], [0, 'Registered service: web\n']);
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), {
      Name: 'web', Port: 80, Checks: [{ HTTP: 'http://localhost/health', Interval: '10s' }], Tags: ['extra'],
    });
  });
  test('from an HCL file: a sidecar with two upstreams blocks, in the API\'s shape', async () => {
    const f = path.join(tmp, 'web.hcl');
    fs.writeFileSync(f, `service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      proxy {
        upstreams {
          destination_name = "db"
          local_bind_port  = 9191
        }
        upstreams {
          destination_name = "cache"
          local_bind_port  = 9192
        }
      }
    }
  }
}
`);
    const r = await run(['services', 'register', f]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'Registered service: web\n', '']);
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), {
      Name: 'web', Port: 8080,
      Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }, { DestinationName: 'cache', LocalBindPort: 9192 }] } } },
    });
    const d = await run(['services', 'deregister', f]);
    assert.deepEqual([d.code, d.stdout], [0, 'Deregistered service: web\n']);
  });
  test('an HCL syntax error names the file, line and column; nothing is registered', async () => {
    const f = path.join(tmp, 'bad.hcl');
    fs.writeFileSync(f, 'service {\n  name = "web"\n  port = 80 80\n}\n');
    const r = await run(['services', 'register', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^Error: config: ${f.replace(/[.]/g, '\\.')}: invalid HCL at line 3, column 13`));
    assert.equal(fake.requests.length, 0);
  });
  test('a broken file is reported with its name, nothing is registered', async () => {
    const f = path.join(tmp, 'bad.json');
    fs.writeFileSync(f, JSON.stringify({ service: { name: 'web', prot: 80 } }));
    const r = await run(['services', 'register', f]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Error: config: ${f}: unknown field "service.prot" (did you mean "service.port"?)\n`);
    assert.equal(fake.requests.length, 0);
  });
  test('argument rules', async () => {
    assert.equal((await run(['services', 'register'])).stderr, 'Service registration requires at least one argument or flags.\n');
    assert.equal((await run(['services', 'register', '-name=x', 'f.json'])).stderr, 'Service registration requires arguments or -id, not both.\n');
  });
  test('deregister -id', async () => {
    const r = await run(['services', 'deregister', '-id=web-1']);
    assert.deepEqual([r.code, r.stdout], [0, 'Deregistered service: web-1\n']);
    assert.equal(fake.requests.at(-1)!.path, '/v1/agent/service/deregister/web-1');
  });
});

describe('snapshot', () => {
  test('save writes the body and reports the index; no .unverified file is left', async () => {
    fake.snapshot = Buffer.from('\x1f\x8bsnapshot-data');
    const file = path.join(tmp, 'backup.snap');
    const r = await run(['snapshot', 'save', file]);
    assert.deepEqual([r.code, r.stdout], [0, `Saved and verified snapshot to index ${fake.index()}\n`]);
    assert.deepEqual(fs.readFileSync(file), fake.snapshot);
    assert.equal(fs.existsSync(`${file}.unverified`), false);
  });
  test('save on an agent error leaves no file', async () => {
    fake.failures.set('/v1/snapshot', { status: 500, body: 'No cluster leader' });
    const file = path.join(tmp, 'fail.snap');
    const r = await run(['snapshot', 'save', file]);
    assert.deepEqual([r.code, r.stderr], [1, 'Error saving snapshot: Unexpected response code: 500 (No cluster leader)\n']);
    assert.equal(fs.existsSync(file), false);
    assert.equal(fs.existsSync(`${file}.unverified`), false);
  });
  test('restore sends the file', async () => {
    const file = path.join(tmp, 'restore.snap');
    fs.writeFileSync(file, Buffer.from([9, 8, 7]));
    const r = await run(['snapshot', 'restore', file]);
    assert.deepEqual([r.code, r.stdout], [0, 'Restored snapshot\n']);
    assert.deepEqual(fake.restored, Buffer.from([9, 8, 7]));
    assert.equal(fake.requests.at(-1)!.method, 'PUT');
    const missing = await run(['snapshot', 'restore', path.join(tmp, 'nope.snap')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error opening snapshot file: ENOENT/);
  });
});

describe('HTTP options', () => {
  test('-http-addr (with scheme) wins over the environment; -token and -datacenter are sent', async () => {
    fake.put('k', 'v');
    const r = await cli(['kv', 'get', `-http-addr=http://${fake.addr}`, '-token=secret', '-datacenter=dc1', 'k'], { env: { CONSUL_HTTP_ADDR: '127.0.0.1:1' } });
    assert.equal(r.stdout, 'v\n');
    const req = fake.requests.at(-1)!;
    assert.equal(req.headers['x-consul-token'], 'secret');
    assert.equal(req.query.get('dc'), 'dc1');
  });
  test('TRELLIS_HTTP_ADDR, then CONSUL_HTTP_ADDR; CONSUL_HTTP_TOKEN', async () => {
    fake.put('k', 'v');
    assert.equal((await cli(['kv', 'get', 'k'], { env: { TRELLIS_HTTP_ADDR: fake.addr, CONSUL_HTTP_ADDR: '127.0.0.1:1' } })).stdout, 'v\n');
    assert.equal((await cli(['kv', 'get', 'k'], { env: { CONSUL_HTTP_ADDR: fake.addr, CONSUL_HTTP_TOKEN: 't2' } })).stdout, 'v\n');
    assert.equal(fake.requests.at(-1)!.headers['x-consul-token'], 't2');
  });
  test('an agent that is not running: what went wrong and what to do', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await cli(['kv', 'get', 'k'], { env: { CONSUL_HTTP_ADDR: `127.0.0.1:${port}` } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Error querying agent: connection refused to 127.0.0.1:${port} — is the agent running? Set -http-addr or CONSUL_HTTP_ADDR to its HTTP address\n`);
  });
  test('a bare 404 names the endpoint the agent does not serve', async () => {
    fake.failures.set('/v1/operator/raft/configuration', { status: 404, body: '' });
    const r = await run(['operator', 'raft', 'list-peers']);
    assert.deepEqual([r.code, r.stderr], [1, 'Error getting peers: Failed to retrieve raft configuration: Unexpected response code: 404 (GET /v1/operator/raft/configuration is not served by this agent)\n']);
  });
  test('unix sockets are refused clearly', async () => {
    const r = await cli(['members', '-http-addr=unix:///tmp/consul.sock']);
    assert.deepEqual([r.code, r.stderr], [1, 'Error connecting to agent: unix socket addresses (unix:///tmp/consul.sock) are not supported by the trellis CLI yet; give host:port\n']);
  });
});

describe('dispatch', () => {
  test('no command prints the command list on stderr, exit 1; -h on stdout, exit 0', async () => {
    const bare = await cli([]);
    assert.equal(bare.code, 1);
    assert.match(bare.stderr, /^Usage: trellis \[--version\] \[--help\] <command> \[<args>\]\n\nAvailable commands are:\n {4}acl {12}Interact with Trellis's ACLs\n {4}agent {10}Runs a Trellis agent\n/);
    const help = await cli(['-h']);
    assert.equal(help.code, 0);
    assert.equal(help.stdout, bare.stderr);
    for (const name of ['acl', 'catalog', 'config', 'connect', 'intention', 'info', 'keygen', 'kv', 'leave', 'lock', 'members', 'operator', 'reload', 'services', 'snapshot', 'version']) {
      assert.match(help.stdout, new RegExp(`^ {4}${name} `, 'm'), name);
    }
  });
  test('an unknown command is an error with the usage', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Unknown command: "frobnicate"\. Run "trellis -h" for the list of commands\.\nUsage: trellis/);
  });
  test('a group without its subcommand lists the subcommands', async () => {
    const r = await cli(['kv']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Usage: trellis kv <subcommand> \[options\] \[args\]\n\n {2}Interact with the key-value store\n\nSubcommands:\n {4}delete/);
    assert.match((await cli(['kv', 'frob'])).stderr, /^Unknown command: "kv frob"\./);
    assert.equal((await cli(['operator', 'raft', '-h'])).code, 0);
  });
  test('an unknown flag: Go\'s message then the command usage, exit 1', async () => {
    const r = await cli(['kv', 'get', '-xyz', 'k']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^flag provided but not defined: -xyz\nUsage: trellis kv get \[options\] \[KEY_OR_PREFIX\]\n/);
    assert.match(r.stderr, /^ {2}-http-addr=<address>$/m);
  });
  test('-h on a command prints its usage on stdout, exit 0', async () => {
    const r = await cli(['kv', 'put', '-h']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: trellis kv put \[options\] KEY \[DATA\]/);
    assert.match(r.stdout, /^ {2}-modify-index=<uint>$/m);
  });
  test('version, -v and -format=json', async () => {
    const v = await cli(['version']);
    assert.equal(v.stdout, 'Trellis v0.1.0\nProtocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)\n');
    assert.equal((await cli(['--version'])).stdout, v.stdout);
    assert.deepEqual(JSON.parse((await cli(['version', '-format=json'])).stdout), { Version: '0.1.0', Revision: '', Prerelease: '', RPC: { Default: 2, Min: 2, Max: 3 } });
  });
});
