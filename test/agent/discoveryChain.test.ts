// The discovery chain end to end (issue 14, part 2) with real processes: a server and a client
// agent that forwards /v1/discovery-chain to it. Entries written with `trellis config write` (HCL
// and JSON files, as SCENARIOS.md A2–A4 write them); the chain read through the client agent names
// the nodes, targets, SNI (with the CA's trust domain) and weights those entries mean; a blocking
// read wakes when an entry changes.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, waitFor, startServerAndClient } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-chain-'));
let server: AgentProcess | undefined;
let client: AgentProcess | undefined;
after(async () => {
  await client?.dispose();
  await server?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, server, client));

type Chain = Record<string, any>;

test('entries written with the CLI compile into the chain the HTTP API answers, through a client agent', { timeout: 180_000 }, async () => {
  ({ server, client } = await startServerAndClient('chain'));
  const c = client;
  const td = await waitFor('the CA trust domain', async () => {
    const r = await c.request('GET', '/v1/connect/ca/roots');
    return r.status === 200 ? (r.json<{ TrustDomain: string }>().TrustDomain || undefined) : undefined;
  }, 30_000, 200);
  const writeEntry = async (file: string, text: string): Promise<void> => {
    const p = path.join(tmp, file);
    fs.writeFileSync(p, text);
    const r = await runTrellis(['config', 'write', '-http-addr', c.httpAddr, p], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
  };
  const chain = async (query = ''): Promise<{ chain: Chain; index: number }> => {
    const r = await c.request('GET', `/v1/discovery-chain/payments${query}`);
    assert.equal(r.status, 200, r.text);
    return { chain: r.json<{ Chain: Chain }>().Chain, index: r.index };
  };

  // No entries: the default chain.
  let got = (await chain()).chain;
  assert.equal(got.Default, true);
  assert.equal(got.StartNode, 'resolver:payments.default.default.dc1');
  assert.equal(got.Targets['payments.default.default.dc1'].SNI, `payments.default.dc1.internal.${td}`);

  // A2: http protocol, a router by path prefix and header to currency.
  await writeEntry('defaults-payments.hcl', 'Kind = "service-defaults"\nName = "payments"\nProtocol = "http"\n');
  await writeEntry('defaults-currency.hcl', 'Kind = "service-defaults"\nName = "currency"\nProtocol = "http"\n');
  await writeEntry('router-a2.hcl', `Kind = "service-router"
Name = "payments"
Routes = [
  {
    Match { HTTP { PathPrefix = "/currency", Header = [{ Name = "group", Exact = "dev" }] } }
    Destination { Service = "currency" }
  }
]
`);
  got = (await chain()).chain;
  assert.equal(got.Protocol, 'http');
  assert.equal(got.StartNode, 'router:payments.default.default');
  assert.deepEqual(got.Nodes[got.StartNode].Routes.map((r: any) => r.NextNode), ['resolver:currency.default.default.dc1', 'resolver:payments.default.default.dc1']);
  assert.deepEqual(got.Nodes[got.StartNode].Routes[0].Definition.Match.HTTP, { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }] });

  // A3 + A4: subsets with a default, the router to subset v2, a 90/10 splitter (JSON file).
  await writeEntry('resolver.json', JSON.stringify({
    Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', ConnectTimeout: '2s',
    Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } },
  }));
  await writeEntry('splitter.json', JSON.stringify({ Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] }));
  await writeEntry('router-a3.json', JSON.stringify({
    Kind: 'service-router', Name: 'payments',
    Routes: [{ Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } }],
  }));
  const before = await chain();
  got = before.chain;
  assert.deepEqual(got.Nodes[got.StartNode].Routes.map((r: any) => r.NextNode), ['resolver:v2.payments.default.default.dc1', 'splitter:payments.default.default']);
  assert.deepEqual(got.Nodes['splitter:payments.default.default'].Splits.map((s: any) => [s.Weight, s.NextNode]), [
    [90, 'resolver:v1.payments.default.default.dc1'], [10, 'resolver:v2.payments.default.default.dc1'],
  ]);
  assert.deepEqual(Object.keys(got.Targets).sort(), ['v1.payments.default.default.dc1', 'v2.payments.default.default.dc1']);
  assert.equal(got.Targets['v2.payments.default.default.dc1'].SNI, `v2.payments.default.dc1.internal.${td}`);
  assert.deepEqual(got.Targets['v1.payments.default.default.dc1'].Subset, { Filter: 'Service.Meta.version == 1' });
  assert.equal(got.Nodes['resolver:v1.payments.default.default.dc1'].Resolver.ConnectTimeout, '2s');

  // A blocking read wakes when the weights change.
  const pending = c.request('GET', `/v1/discovery-chain/payments?index=${before.index}&wait=20s`);
  await writeEntry('splitter2.json', JSON.stringify({ Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 50, ServiceSubset: 'v1' }, { Weight: 50, ServiceSubset: 'v2' }] }));
  const woke = await pending;
  assert.equal(woke.status, 200);
  assert.ok(woke.index > before.index);
  assert.deepEqual(woke.json<{ Chain: Chain }>().Chain.Nodes['splitter:payments.default.default'].Splits.map((s: any) => s.Weight), [50, 50]);

  // POST with an override through the client agent.
  const post = await c.request('POST', '/v1/discovery-chain/payments', { body: JSON.stringify({ OverrideConnectTimeout: '9s' }) });
  assert.equal(post.status, 200, post.text);
  assert.equal(post.json<{ Chain: Chain }>().Chain.Nodes['resolver:v1.payments.default.default.dc1'].Resolver.ConnectTimeout, '9s');
});
