// Through real `trellis connect proxy` processes against a real dev agent (no ACLs, no
// default_intention_policy: the default is allow, as in Consul):
// - a service-resolver with LoadBalancer ring_hash / maglev and a header HashPolicy sends every
//   request of one user to one instance, and different users to both instances;
// - an L7 intention whose permissions do not match a request lets the default policy decide (allow
//   here), even with a wildcard deny intention below it (Consul's rbac.go), instead of a 403.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { startTestApp, type TestApp, type TestAppAnswer } from '../fixtures/testApp.ts';
import { AgentProcess, freePort, launcher, printLogsIfFailed, trellisEnv, waitFor } from '../support/index.ts';

let agent: AgentProcess;
const apps: TestApp[] = [];
let web: TestApp;
let upstreamUri: string;
const proxies: Array<{ child: ChildProcess; out: () => string }> = [];

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: TestAppAnswer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, headers }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(s) as TestAppAnswer }));
    }).on('error', reject);
  });
}

/** The name of the app that answered web's upstream call (or its status when it failed). */
async function via(path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await get(web.url + path, headers);
  const call = r.body.upstream_calls?.[upstreamUri];
  return call?.code === 200 ? call.name : `status ${call?.code}`;
}

async function putConfig(entry: Record<string, unknown>) {
  const r = await agent.request('PUT', '/v1/config', { body: JSON.stringify(entry) });
  assert.equal(r.status, 200, r.text);
}

before(async () => {
  agent = await AgentProcess.start({ name: 'l7-hash-ixn' });
  await putConfig({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } });
  const upstreamPort = await freePort();
  upstreamUri = `http://127.0.0.1:${upstreamPort}`;
  const register = async (name: string, id: string, app: TestApp, upstreams: unknown[] = []) => {
    const body = { Name: name, ID: id, Port: app.port, Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: upstreams } } } };
    const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
    assert.equal(r.status, 200, r.text);
  };
  const a = await startTestApp({ name: 'payments a' });
  const b = await startTestApp({ name: 'payments b' });
  web = await startTestApp({ name: 'web', upstreams: [upstreamUri] });
  apps.push(a, b, web);
  await register('payments', 'payments-a', a);
  await register('payments', 'payments-b', b);
  await register('web', 'web-1', web, [{ DestinationName: 'payments', LocalBindPort: upstreamPort }]);
  for (const id of ['payments-a', 'payments-b', 'web-1']) {
    const child = spawn(launcher, ['connect', 'proxy', '-sidecar-for', id, '-http-addr', agent.httpAddr, '-log-level', 'info'], { env: trellisEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (x: Buffer) => { out += x.toString(); });
    child.stderr!.on('data', (x: Buffer) => { out += x.toString(); });
    proxies.push({ child, out: () => out });
  }
  await waitFor('both payments instances reachable through web', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await via('/'));
    return seen.has('payments a') && seen.has('payments b');
  }, 60_000, 250);
});

afterEach((t) => {
  printLogsIfFailed(t, agent);
  if ((t as { passed?: boolean }).passed === false) for (const p of proxies) process.stdout.write(`# proxy output:\n${p.out().slice(-4000)}\n`);
});

after(async () => {
  for (const p of proxies) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const x of apps) await x.close();
  await agent?.dispose();
});

for (const policy of ['ring_hash', 'maglev']) {
  test(`${policy} with a header HashPolicy: one user → one instance every time; users reach both instances`, async () => {
    await putConfig({ Kind: 'service-resolver', Name: 'payments', LoadBalancer: { Policy: policy, HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }],
      ...(policy === 'ring_hash' ? { RingHashConfig: { MinimumRingSize: 256 } } : {}) } });
    // Applied: the proxy logs the new chain; then round robin would alternate for one user, a hash does not.
    await waitFor(`${policy} applied`, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await via('/', { 'x-user': 'probe' }));
      return seen.size === 1;
    }, 10_000, 100);
    const byUser = new Map<string, string>();
    for (let u = 0; u < 16; u++) {
      const user = `user-${u}`;
      const answers = new Set<string>();
      for (let i = 0; i < 5; i++) answers.add(await via('/', { 'x-user': user }));
      assert.equal(answers.size, 1, `${user} reached ${[...answers].join(', ')}`);
      byUser.set(user, [...answers][0]!);
    }
    const instances = new Set(byUser.values());
    assert.deepEqual([...instances].sort(), ['payments a', 'payments b'], `16 users reached ${[...instances].join(', ')}`);
  });
}

test('an L7 intention with no matching permission falls to the default policy (allow), not to the wildcard deny below it', async () => {
  await putConfig({ Kind: 'service-intentions', Name: 'payments', Sources: [
    { Name: 'web', Permissions: [{ Action: 'deny', HTTP: { PathPrefix: '/admin' } }] },
    { Name: '*', Action: 'deny' },
  ] });
  await waitFor('the deny permission applied', async () => (await via('/admin/users')) === 'status 403', 10_000, 100);
  // No permission matches /pay: Consul's RBAC gives the default (allow); the * deny does not cover web.
  assert.match(await via('/pay'), /^payments [ab]$/);
  assert.match(await via('/'), /^payments [ab]$/);
  assert.equal(await via('/admin'), 'status 403');
  const paymentsOut = proxies.slice(0, 2).map((p) => p.out()).join('');
  assert.match(paymentsOut, /path=\/admin\/users reason="intention web permission 0: deny"/);
  assert.doesNotMatch(paymentsOut, /request denied[^\n]*path=\/pay/);
});
