// primary_datacenter with real processes on loopback: config entries and intentions are written in
// the primary (a write received by a secondary, or by a client agent of a secondary, is forwarded
// there) and replicated into the secondary's own Raft log by its leader. The secondary's CA is an
// intermediate signed by the primary's root: one trust domain, leaves of either verify against it. Killing the primary: the
// secondary keeps serving what it replicated, writes there fail, and replication resumes when the
// primary is back.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

interface Entry { Kind: string; Name: string; Protocol?: string; ModifyIndex: number }
interface Roots { ActiveRootID: string; TrustDomain: string; Roots: Array<{ ID: string; Active: boolean; RootCert: string }> }

const pemBlocks = (pem: string): string[] => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];

/** Does a TLS client that trusts only `caPem` accept a server presenting `certPem` (with its chain)? */
async function tlsVerifies(certPem: string, keyPem: string, caPem: string): Promise<boolean> {
  const server = tls.createServer({ cert: certPem, key: keyPem }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<boolean>((resolve) => {
      // SPIFFE leaves have no DNS name: the chain is what is checked here, not the host name.
      const c = tls.connect({ host: '127.0.0.1', port, ca: caPem, checkServerIdentity: () => undefined }, () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
  } finally {
    server.close();
  }
}

describe('primary_datacenter: config entries and intentions replicate to the secondaries', () => {
  let primary: AgentProcess;
  let secondary: AgentProcess;
  let client2: AgentProcess;
  let third: AgentProcess;
  const all = (): AgentProcess[] => [primary, secondary, client2, third].filter((a) => a !== undefined);
  const entry = async (agent: AgentProcess, kind: string, name: string): Promise<Entry | undefined> => {
    const r = await agent.request('GET', `/v1/config/${kind}/${name}`);
    return r.status === 200 ? r.json<Entry>() : undefined;
  };

  before(async () => {
    // The secondary first, so the primary's -join-wan names it: a restarted primary joins again at once.
    secondary = await AgentProcess.start({ name: 'rep-s2', mode: 'server', args: ['-datacenter', 'dc2', '-primary-datacenter', 'dc1'] });
    primary = await AgentProcess.start({ name: 'rep-s1', mode: 'server', args: ['-datacenter', 'dc1', '-primary-datacenter', 'dc1', '-join-wan', secondary.serfWanAddr] });
    // A second secondary, joined through dc2: replication reaches every datacenter.
    third = await AgentProcess.start({ name: 'rep-s3', mode: 'server', args: ['-datacenter', 'dc3', '-primary-datacenter', 'dc1', '-retry-join-wan', secondary.serfWanAddr, '-retry-interval-wan', '1s'] });
    client2 = await AgentProcess.start({
      name: 'rep-c2', mode: 'client', readyTimeoutMs: 60_000,
      args: ['-datacenter', 'dc2', '-primary-datacenter', 'dc1', '-retry-join', secondary.serfAddr, '-retry-interval', '1s'],
    });
  });
  after(async () => {
    for (const a of all()) await a.dispose();
  });
  afterEach((t) => printLogsIfFailed(t, ...all()));

  test('an entry written in the primary is readable in every secondary within seconds', { timeout: 30_000 }, async () => {
    const w = await primary.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'web', Protocol: 'http' } });
    assert.equal(w.text, 'true');
    const started = Date.now();
    const got = await waitFor('dc2 has service-defaults/web', () => entry(secondary, 'service-defaults', 'web'), 15_000, 100);
    assert.equal(got.Protocol, 'http');
    assert.ok(Date.now() - started < 10_000, `replicated in ${Date.now() - started} ms`);
    assert.equal((await waitFor('dc3 has service-defaults/web', () => entry(third, 'service-defaults', 'web'), 15_000, 100)).Protocol, 'http');
    // Through the secondary's client agent too, and in the secondary's own Raft log (its own index).
    assert.equal((await entry(client2, 'service-defaults', 'web'))?.Protocol, 'http');
    // Entries that need others (a router needs the http protocol) replicate in a valid order.
    assert.equal((await primary.request('PUT', '/v1/config', { body: { Kind: 'service-resolver', Name: 'web', ConnectTimeout: '3s' } })).text, 'true');
    assert.equal((await primary.request('PUT', '/v1/config', {
      body: { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'web' } }] },
    })).text, 'true');
    await waitFor('dc2 has the router', () => entry(secondary, 'service-router', 'web'), 15_000, 100);
  });

  test('a write to the secondary (server or client agent) lands in the primary and comes back', { timeout: 30_000 }, async () => {
    const w = await client2.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'api', Protocol: 'grpc' } });
    assert.equal(w.status, 200, w.text);
    assert.equal(w.text, 'true');
    // Answered by the primary: it is there at once.
    assert.equal((await entry(primary, 'service-defaults', 'api'))?.Protocol, 'grpc');
    await waitFor('dc2 has service-defaults/api', () => entry(secondary, 'service-defaults', 'api'), 15_000, 100);

    // Intentions are service-intentions entries: written through the secondary, stored in the primary.
    const i = await secondary.request('PUT', '/v1/connect/intentions/exact?source=web&destination=api', { body: { Action: 'deny' } });
    assert.equal(i.status, 200, i.text);
    const inPrimary = await primary.getJson<{ Action: string }>('/v1/connect/intentions/exact?source=web&destination=api');
    assert.equal(inPrimary.Action, 'deny');
    const inSecondary = await waitFor('dc2 has the intention', async () => {
      const r = await client2.request('GET', '/v1/connect/intentions/exact?source=web&destination=api');
      return r.status === 200 ? r.json<{ Action: string }>() : undefined;
    }, 15_000, 100);
    assert.equal(inSecondary.Action, 'deny');
    const check = await client2.getJson<{ Allowed: boolean }>('/v1/connect/intentions/check?source=web&destination=api');
    assert.equal(check.Allowed, false);

    // A delete in the secondary is a delete in the primary, then here.
    assert.equal((await secondary.request('DELETE', '/v1/config/service-defaults/api')).status, 200);
    assert.equal(await entry(primary, 'service-defaults', 'api'), undefined);
    await waitFor('dc2 lost service-defaults/api', async () => (await entry(secondary, 'service-defaults', 'api')) === undefined, 15_000, 100);
  });

  test('an invalid entry sent to the secondary is refused by the primary with its 400, nothing changes', { timeout: 30_000 }, async () => {
    const before = (await primary.getJson<Entry[]>('/v1/config/service-defaults')).length;
    const r = await secondary.request('PUT', '/v1/config', { body: { Kind: 'no-such-kind', Name: 'bad' } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /no-such-kind/);
    const noName = await client2.request('PUT', '/v1/config', { body: { Kind: 'service-defaults' } });
    assert.equal(noName.status, 400, noName.text);
    const nonsense = await secondary.request('PUT', '/v1/config', { body: '{not json' });
    assert.equal(nonsense.status, 400);
    assert.equal((await primary.getJson<Entry[]>('/v1/config/service-defaults')).length, before);
  });

  test('secondary CA: the primary\'s roots in every dc; a leaf from dc2 chains through dc2\'s intermediate to the primary root', { timeout: 60_000 }, async () => {
    const primaryRoots = await waitFor('dc1 has a CA', async () => {
      const r = await primary.getJson<Roots>('/v1/connect/ca/roots');
      return r.ActiveRootID ? r : undefined;
    }, 20_000, 200);
    const secondaryRoots = await waitFor('dc2 shows the primary\'s roots', async () => {
      const r = await client2.getJson<Roots>('/v1/connect/ca/roots');
      return r.ActiveRootID === primaryRoots.ActiveRootID ? r : undefined;
    }, 30_000, 200);
    assert.equal(secondaryRoots.TrustDomain, primaryRoots.TrustDomain, 'one trust domain');
    await waitFor('dc3 shows the primary\'s roots', async () => (await third.getJson<Roots>('/v1/connect/ca/roots')).ActiveRootID === primaryRoots.ActiveRootID, 30_000, 200);
    assert.deepEqual(secondaryRoots.Roots.map((r) => r.RootCert), primaryRoots.Roots.map((r) => r.RootCert));
    const root = primaryRoots.Roots.find((r) => r.Active)!.RootCert;

    assert.equal((await client2.request('PUT', '/v1/agent/service/register', { body: { Name: 'web', ID: 'web-dc2', Port: 8080 } })).status, 200);
    const leaf = await client2.getJson<{ CertPEM: string; PrivateKeyPEM: string; ServiceURI: string }>('/v1/agent/connect/ca/leaf/web');
    assert.equal(leaf.ServiceURI, `spiffe://${primaryRoots.TrustDomain}/ns/default/dc/dc2/svc/web`);
    const chain = pemBlocks(leaf.CertPEM);
    assert.equal(chain.length, 2, 'leaf + dc2 intermediate');
    const [leafCert, inter] = chain.map((p) => new X509Certificate(p));
    const rootCert = new X509Certificate(root);
    assert.ok(leafCert!.checkIssued(inter!) && leafCert!.verify(inter!.publicKey), 'the leaf is signed by the intermediate');
    assert.ok(inter!.checkIssued(rootCert) && inter!.verify(rootCert.publicKey), 'the intermediate is signed by the primary root');
    assert.ok(inter!.ca, 'the intermediate is a CA');
    assert.ok(!leafCert!.checkIssued(rootCert), 'the leaf is not signed by the root itself');
    // A real TLS handshake: a client trusting only the primary root accepts dc2's leaf with its chain.
    assert.equal(await tlsVerifies(leaf.CertPEM, leaf.PrivateKeyPEM, root), true);
    assert.equal(await tlsVerifies(pemBlocks(leaf.CertPEM)[0]!, leaf.PrivateKeyPEM, root), false, 'without the intermediate it does not verify');
    // Leaves of dc1 verify against the same root.
    assert.equal((await primary.request('PUT', '/v1/agent/service/register', { body: { Name: 'api', ID: 'api-dc1', Port: 9090 } })).status, 200);
    const leaf1 = await primary.getJson<{ CertPEM: string; PrivateKeyPEM: string }>('/v1/agent/connect/ca/leaf/api');
    assert.equal(await tlsVerifies(leaf1.CertPEM, leaf1.PrivateKeyPEM, root), true);
  });

  test('secondary CA: a rotation in the primary (asked through dc2) reaches dc2\'s roots and leaves', { timeout: 90_000 }, async () => {
    const before = await primary.getJson<Roots>('/v1/connect/ca/roots');
    const cfg = await primary.getJson<{ Config: Record<string, unknown> }>('/v1/connect/ca/configuration');
    // A new key size means a new root; sent to dc2, made in dc1.
    const bits = cfg.Config.PrivateKeyBits === 4096 ? 2048 : 4096;
    const r = await secondary.request('PUT', '/v1/connect/ca/configuration', { body: { Provider: 'consul', Config: { ...cfg.Config, PrivateKeyBits: bits } }, timeoutMs: 30_000 });
    assert.equal(r.status, 200, r.text);
    const after = await primary.getJson<Roots>('/v1/connect/ca/roots');
    assert.notEqual(after.ActiveRootID, before.ActiveRootID, 'the primary rotated');
    await waitFor('dc2 has the new active root', async () => (await secondary.getJson<Roots>('/v1/connect/ca/roots')).ActiveRootID === after.ActiveRootID, 30_000, 200);
    const newRoot = new X509Certificate(after.Roots.find((x) => x.Active)!.RootCert);
    const leaf = await waitFor('dc2\'s leaf chains to the new root', async () => {
      const l = await client2.getJson<{ CertPEM: string }>('/v1/agent/connect/ca/leaf/web');
      const chain = pemBlocks(l.CertPEM).map((p) => new X509Certificate(p));
      return chain.length === 2 && chain[1]!.checkIssued(newRoot) && chain[1]!.verify(newRoot.publicKey) ? l : undefined;
    }, 30_000, 250);
    assert.ok(leaf.CertPEM.length > 0);
  });

  test('with the primary down the secondary serves what it replicated; replication resumes after a restart', { timeout: 120_000 }, async () => {
    await waitFor('dc2 has service-defaults/web', () => entry(secondary, 'service-defaults', 'web'), 15_000, 100);
    await primary.kill();
    // Reads keep serving the replicated state.
    assert.equal((await entry(secondary, 'service-defaults', 'web'))?.Protocol, 'http');
    assert.equal((await entry(client2, 'service-router', 'web'))?.Kind, 'service-router');
    // A write cannot reach the primary: it fails and nothing changes here.
    const w = await secondary.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'during', Protocol: 'tcp' }, timeoutMs: 30_000 });
    assert.equal(w.status, 500, w.text);
    assert.equal(await entry(secondary, 'service-defaults', 'during'), undefined);

    await primary.restart();
    assert.equal((await primary.request('PUT', '/v1/config', { body: { Kind: 'service-defaults', Name: 'after', Protocol: 'http2' } })).text, 'true');
    const got = await waitFor('dc2 has service-defaults/after', () => entry(secondary, 'service-defaults', 'after'), 60_000, 250);
    assert.equal(got.Protocol, 'http2');
    assert.equal((await entry(secondary, 'service-defaults', 'web'))?.Protocol, 'http', 'earlier entries are still there');
    await waitFor('dc3 has service-defaults/after', () => entry(third, 'service-defaults', 'after'), 60_000, 250);
  });
});
