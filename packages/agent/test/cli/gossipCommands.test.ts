// `trellis join`, `trellis force-leave` and `trellis event` against a recording HTTP server on
// 127.0.0.1 that answers as the agent's API does (200, or 500/400 with the error text): the exact
// requests sent and the text, stream and exit code a user gets.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cli, type RunOptions } from './harness.ts';

interface Seen { method: string; path: string; query: string; body: string }
interface Answer { status: number; body: string }

let server: http.Server;
let addr: string;
const seen: Seen[] = [];
/** Answers by exact path (without the query); anything else answers 200 with an empty body. */
const answers = new Map<string, Answer>();

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({ method: req.method ?? '', path: url.pathname, query: url.search, body: Buffer.concat(chunks).toString('utf8') });
      const a = answers.get(url.pathname) ?? { status: 200, body: '' };
      res.writeHead(a.status, { 'Content-Type': a.status === 200 ? 'application/json' : 'text/plain' });
      res.end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen.length = 0;
  answers.clear();
});

const run = (args: string[], opts: RunOptions = {}) => cli(args, { ...opts, env: { CONSUL_HTTP_ADDR: addr, ...(opts.env ?? {}) } });
const requests = () => seen.map((r) => `${r.method} ${r.path}${r.query}`);

/** A free port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('join', () => {
  test('PUTs each address in order and counts the joins', async () => {
    const r = await run(['join', '10.0.0.1:8301', '[::1]:8301', 'node-c']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'Successfully joined cluster by contacting 3 nodes.\n', '']);
    assert.deepEqual(requests(), [
      'PUT /v1/agent/join/10.0.0.1:8301',
      'PUT /v1/agent/join/%5B::1%5D:8301',
      'PUT /v1/agent/join/node-c',
    ]);
  });
  test('-wan sends wan=1', async () => {
    const r = await run(['join', '-wan', '10.0.0.1']);
    assert.equal(r.code, 0);
    assert.deepEqual(requests(), ['PUT /v1/agent/join/10.0.0.1?wan=1']);
  });
  test('a failed address is reported and the rest still joined: exit 0 (Consul)', async () => {
    answers.set('/v1/agent/join/10.0.0.9', { status: 500, body: '1 error occurred:\n\t* Failed to join 10.0.0.9:8301: connection refused' });
    const r = await run(['join', '10.0.0.9', '10.0.0.1']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "Error joining address '10.0.0.9': Unexpected response code: 500 (1 error occurred:\n\t* Failed to join 10.0.0.9:8301: connection refused)\n");
    assert.equal(r.stdout, 'Successfully joined cluster by contacting 1 nodes.\n');
    assert.equal(seen.length, 2);
  });
  test('no address joined: every error, then "Failed to join any nodes.", exit 1', async () => {
    answers.set('/v1/agent/join/a', { status: 500, body: 'no route to a' });
    answers.set('/v1/agent/join/b', { status: 500, body: 'no route to b' });
    const r = await run(['join', 'a', 'b']);
    assert.deepEqual([r.code, r.stdout], [1, '']);
    assert.equal(r.stderr, [
      "Error joining address 'a': Unexpected response code: 500 (no route to a)",
      "Error joining address 'b': Unexpected response code: 500 (no route to b)",
      'Failed to join any nodes.',
      '',
    ].join('\n'));
  });
  test('no address: Consul\'s message, a blank line and the usage on stderr, exit 1, nothing sent', async () => {
    const r = await run(['join']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^At least one address to join must be specified\.\n\nUsage: trellis join \[options\] address \.\.\.\n/);
    assert.match(r.stderr, /^ {2}-wan$/m);
    assert.equal(seen.length, 0);
  });
  test('an unreachable agent is named in each address\'s error', async () => {
    const port = await closedPort();
    const r = await cli(['join', '-http-addr', `127.0.0.1:${port}`, '10.0.0.1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^Error joining address '10\\.0\\.0\\.1': connection refused to 127\\.0\\.0\\.1:${port} — is the agent running\\?`));
    assert.match(r.stderr, /\nFailed to join any nodes\.\n$/);
  });
});

describe('force-leave', () => {
  test('PUTs the node, prints nothing, exit 0', async () => {
    const r = await run(['force-leave', 'node-b']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
    assert.deepEqual(requests(), ['PUT /v1/agent/force-leave/node-b']);
  });
  test('-prune and -wan become prune=1 and wan=1; the name is path-escaped', async () => {
    const r = await run(['force-leave', '-prune', '-wan', 'odd name/x']);
    assert.equal(r.code, 0);
    assert.deepEqual(requests(), ['PUT /v1/agent/force-leave/odd%20name%2Fx?prune=1&wan=1']);
  });
  test('the agent\'s error: "Error force leaving: ...", exit 1', async () => {
    answers.set('/v1/agent/force-leave/ghost', { status: 500, body: "No node found with name 'ghost'" });
    const r = await run(['force-leave', 'ghost']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', "Error force leaving: Unexpected response code: 500 (No node found with name 'ghost')\n"]);
  });
  test('not exactly one name: message, blank line and usage, exit 1, nothing sent', async () => {
    for (const args of [[], ['a', 'b']]) {
      const r = await run(['force-leave', ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^A single node name must be specified to force leave\.\n\nUsage: trellis force-leave \[options\] name\n/);
      assert.match(r.stderr, /^ {2}-prune$/m);
    }
    assert.equal(seen.length, 0);
  });
});

describe('event', () => {
  const fired = (id: string) => JSON.stringify({ ID: id, Name: 'deploy', Payload: null, NodeFilter: '', ServiceFilter: '', TagFilter: '', Version: 1, LTime: 3 });

  test('checks the agent, fires with the payload as the body, prints the ID', async () => {
    answers.set('/v1/event/fire/deploy', { status: 200, body: fired('8a2c7f4e-1111-2222-3333-444455556666') });
    const r = await run(['event', '-name', 'deploy', 'v1.2.3 ✓']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'Event ID: 8a2c7f4e-1111-2222-3333-444455556666\n', '']);
    assert.deepEqual(requests(), ['GET /v1/agent/self', 'PUT /v1/event/fire/deploy']);
    assert.equal(seen[1]!.body, 'v1.2.3 ✓');
  });
  test('the filters are sent as node, service and tag; no payload sends no body', async () => {
    answers.set('/v1/event/fire/restart%20web', { status: 200, body: fired('id-2') });
    const r = await run(['event', '-name=restart web', '-node=^web-', '-service=web|api', '-tag=v[0-9]+']);
    assert.equal(r.stdout, 'Event ID: id-2\n');
    assert.equal(seen[1]!.path, '/v1/event/fire/restart%20web');
    const q = new URLSearchParams(seen[1]!.query);
    assert.deepEqual([q.get('node'), q.get('service'), q.get('tag')], ['^web-', 'web|api', 'v[0-9]+']);
    assert.equal(seen[1]!.body, '');
  });
  test('unset filters are not sent at all', async () => {
    answers.set('/v1/event/fire/deploy', { status: 200, body: fired('id-3') });
    await run(['event', '-name', 'deploy']);
    assert.deepEqual(requests(), ['GET /v1/agent/self', 'PUT /v1/event/fire/deploy']);
  });
  test('no -name: "Event name must be specified", the usage, exit 1, nothing sent', async () => {
    for (const args of [['payload'], ['-name=', 'payload']]) {
      const r = await run(['event', ...args]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^Event name must be specified\n\nUsage: trellis event \[options\] \[payload\]\n/);
      assert.match(r.stderr, /^ {2}-tag=<regexp>$/m);
    }
    assert.equal(seen.length, 0);
  });
  test('-tag without -service is refused before anything is sent', async () => {
    const r = await run(['event', '-name=x', '-tag=v1']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'Cannot provide tag filter without service filter.\n']);
    assert.equal(seen.length, 0);
  });
  test('an invalid filter regexp is named, before anything is sent', async () => {
    for (const [flag, kind] of [['-node', 'node'], ['-service', 'service'], ['-tag', 'tag']] as const) {
      const args = ['event', '-name=x', `${flag}=(`];
      if (kind === 'tag') args.push('-service=web');
      const r = await run(args);
      assert.equal(r.code, 1, kind);
      assert.match(r.stderr, new RegExp(`^Failed to compile ${kind} filter regexp: Invalid regular expression: /\\(/`), kind);
    }
    assert.equal(seen.length, 0);
  });
  test('more than one payload argument: usage error, exit 1', async () => {
    const r = await run(['event', '-name=x', 'a', 'b']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Too many command line arguments\.\n\nUsage: trellis event /);
    assert.equal(seen.length, 0);
  });
  test('the agent refusing the event: "Error firing event: ...", exit 1', async () => {
    answers.set('/v1/event/fire/big', { status: 500, body: 'user event exceeds configured limit of 512 bytes before encoding (603 bytes)' });
    const r = await run(['event', '-name=big', 'x'.repeat(600)]);
    assert.deepEqual([r.code, r.stdout], [1, '']);
    assert.equal(r.stderr, 'Error firing event: Unexpected response code: 500 (user event exceeds configured limit of 512 bytes before encoding (603 bytes))\n');
  });
  test('an agent that cannot answer who it is: "Error querying agent", and no event is fired', async () => {
    answers.set('/v1/agent/self', { status: 403, body: 'Permission denied' });
    const r = await run(['event', '-name=deploy']);
    assert.deepEqual([r.code, r.stderr], [1, 'Error querying agent: Unexpected response code: 403 (Permission denied)\n']);
    assert.deepEqual(requests(), ['GET /v1/agent/self']);
  });
  test('an answer without an event ID is an error, not "Event ID: "', async () => {
    answers.set('/v1/event/fire/deploy', { status: 200, body: '{}' });
    const r = await run(['event', '-name=deploy']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'Error firing event: the agent answered without an event ID\n']);
  });
});

describe('listed in trellis -h', () => {
  test('with their synopses', async () => {
    const r = await cli(['-h']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^ {4}event {10}Fire a new event$/m);
    assert.match(r.stdout, /^ {4}force-leave {4}Forces a member of the cluster to enter the "left" state$/m);
    assert.match(r.stdout, /^ {4}join {11}Tell Trellis agent to join cluster$/m);
  });
});
