// Intentions end to end (issue 13, part 3) with real processes: a server and a client agent.
// Intentions written through `trellis intention create` (legacy API) and `PUT /v1/config`
// (service-intentions entries) are one set: `intention check`/`match` answer from both, in Consul's
// precedence order. POST /v1/agent/connect/authorize on the client agent answers from its cache:
// allowed → a deny is written → denied within 2 s → the deny is deleted → allowed again; and with
// the server gone, the warm client still answers. Bad input is a 400 with Consul's text and stores
// nothing.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, waitFor, startServerAndClient } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-intentions-'));
let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
after(async () => {
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

const TD = '11111111-2222-3333-4444-555555555555.consul';
const uri = (svc: string): string => `spiffe://${TD}/ns/default/dc/dc1/svc/${svc}`;

test('intentions through the CLI and config entries; authorize on a client agent follows changes', { timeout: 180_000 }, async (t) => {
  ({ server, client } = await startServerAndClient('ixn'));
  const viaClient = ['-http-addr', client.httpAddr];
  const trellis = (...args: string[]) => runTrellis(args, { timeoutMs: 30_000 });
  const authorize = async (src: string, target: string): Promise<{ Authorized: boolean; Reason: string }> => {
    const r = await client!.request('POST', '/v1/agent/connect/authorize', { body: { Target: target, ClientCertURI: uri(src), ClientCertSerial: '0a' } });
    assert.equal(r.status, 200, r.text);
    return r.json();
  };

  // Nothing yet: the default (no ACLs) allows; the first call fills the client's cache.
  assert.deepEqual(await authorize('web', 'payments'), { Authorized: true, Reason: 'Default behavior configured by ACLs' });

  // One intention through the CLI (legacy create), one set through a config entry.
  let r = await trellis('intention', 'create', ...viaClient, '-allow', 'web', 'payments');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Created: web => payments (allow)\n');
  const put = await client.request('PUT', '/v1/config', { body: { Kind: 'service-intentions', Name: '*', Sources: [{ Name: '*', Action: 'deny' }] } });
  assert.equal(put.status, 200, put.text);

  r = await trellis('intention', 'check', ...viaClient, 'web', 'payments');
  assert.deepEqual([r.code, r.stdout], [0, 'Allowed\n']);
  r = await trellis('intention', 'check', ...viaClient, 'api', 'payments');
  assert.deepEqual([r.code, r.stdout], [1, 'Denied\n']);
  r = await trellis('intention', 'match', ...viaClient, 'payments');
  assert.deepEqual([r.code, r.stdout], [0, 'web => payments (allow)\n* => * (deny)\n']);
  const list = (await server.request('GET', '/v1/connect/intentions')).json<Array<Record<string, unknown>>>();
  assert.deepEqual(list.map((i) => [i.SourceName, i.DestinationName, i.Precedence, typeof i.ID]), [['web', 'payments', 9, 'string'], ['*', '*', 5, 'undefined']]);

  // The client's cache follows: api → payments is denied by * → *, web → payments still allowed.
  await waitFor('the client agent to see the * → * deny', async () => (await authorize('api', 'payments')).Authorized === false, 2000, 20);
  // A legacy-created intention carries its ID in the reason, as Consul's Intention.String() does.
  const id = list[0]!.ID as string;
  assert.deepEqual(await authorize('web', 'payments'), { Authorized: true, Reason: `Matched L4 intention: default/web => default/payments (ID: ${id}, Precedence: 9, Action: ALLOW)` });

  // Deny web → payments (replace through the exact API): denied within 2 s of the write's answer.
  const deny = await client.request('PUT', '/v1/connect/intentions/exact?source=web&destination=payments', { body: { Action: 'deny' } });
  assert.equal(deny.status, 200, deny.text);
  const writtenAt = performance.now();
  const denied = await waitFor('web → payments to be denied on the client agent', async () => {
    const a = await authorize('web', 'payments');
    return a.Authorized === false ? a : undefined;
  }, 2000, 20);
  t.diagnostic(`deny seen by the client agent's authorize ${Math.round(performance.now() - writtenAt)} ms after the write answered`);
  assert.equal(denied.Reason, 'Matched L4 intention: default/web => default/payments (Precedence: 9, Action: DENY)');

  // Delete it, and the * → * deny: allowed again.
  r = await trellis('intention', 'delete', ...viaClient, 'web', 'payments');
  assert.deepEqual([r.code, r.stdout], [0, 'Intention deleted.\n']);
  r = await trellis('config', 'delete', ...viaClient, '-kind', 'service-intentions', '-name', '*');
  assert.equal(r.code, 0, r.stderr);
  await waitFor('web → payments to be allowed again', async () => (await authorize('web', 'payments')).Authorized === true, 2000, 20);
  r = await trellis('intention', 'list', ...viaClient);
  assert.deepEqual([r.code, r.stderr], [2, 'There are no intentions.\n']);

  // Bad input: 400 with Consul's text, nothing stored.
  const before = (await server.request('GET', '/v1/connect/intentions')).index;
  const both = await client.request('PUT', '/v1/connect/intentions/exact?source=web&destination=payments', {
    body: { Action: 'allow', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] },
  });
  assert.deepEqual([both.status, both.text], [400, 'Sources[0].Action must be omitted if Permissions are specified']);
  const dup = await client.request('PUT', '/v1/config', { body: { Kind: 'service-intentions', Name: 'payments', Sources: [{ Name: 'web', Action: 'allow' }, { Name: 'web', Action: 'deny' }] } });
  assert.deepEqual([dup.status, dup.text], [400, 'Sources[1] defines "web" more than once']);
  const partial = await client.request('PUT', '/v1/connect/intentions/exact?source=we*&destination=payments', { body: { Action: 'allow' } });
  assert.deepEqual([partial.status, partial.text], [400, "Sources[0].Name: wildcard character '*' cannot be used with partial values"]);
  r = await trellis('intention', 'create', ...viaClient, 'w*', 'payments');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `Error creating intention "w* => payments (allow)": Unexpected response code: 400 (1 error occurred:\n\t* SourceName: wildcard character '*' cannot be used with partial values)\n`);
  const afterBad = await server.request('GET', '/v1/connect/intentions');
  assert.deepEqual(afterBad.json(), []);
  assert.equal(afterBad.index, before, 'no write happened');
  const badAuth = await client.request('POST', '/v1/agent/connect/authorize', { body: { Target: 'payments', ClientCertURI: 'https://example.com/' } });
  assert.deepEqual([badAuth.status, badAuth.text], [400, 'ClientCertURI not a valid Connect identifier']);

  // A warm client agent answers without a server: stop the server, authorize still answers.
  await client.request('PUT', '/v1/config', { body: { Kind: 'service-intentions', Name: 'payments', Sources: [{ Name: 'web', Action: 'deny' }] } });
  await waitFor('the deny to reach the client agent', async () => (await authorize('web', 'payments')).Authorized === false, 2000, 20);
  await server.stop();
  assert.equal((await authorize('web', 'payments')).Authorized, false);
  assert.equal((await authorize('api', 'payments')).Authorized, true);
});
