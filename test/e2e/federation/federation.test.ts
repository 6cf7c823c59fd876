// SCENARIOS.md A5–A7 end to end across three datacenters (onprem primary, cloud, space): real
// server agents, `trellis connect gateway` mesh gateways, the cast's test apps and their
// `trellis connect proxy` sidecars as processes (fedCast.ts). Each datacenter runs in its own
// network namespace where services bind the same address and ports as in the others; only the
// gateways' WAN ports and the servers' RPC/WAN gossip ports cross (topology.ts). Without
// namespaces (not root) it falls back to loopback with distinct ports and says so at the top of
// its output. Each assertion is the one SCENARIOS.md writes; shares use its binomial bound.
//
// The scenarios run in order on one shared cast; a test that fails leaves what it set up, so a
// later one may fail for the same cause: read the first failure first.

import { after, afterEach, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { waitFor } from '../../support/index.ts';
import { binomialBound } from '../scenarios/cast.ts';
import { CAST, FedCast, describeCall, failedHop } from './fedCast.ts';
import type { Dc } from './topology.ts';

const V1 = 'payments v1 (onprem)';
const V2_ONPREM = 'payments v2 (onprem) -> currency (onprem)';
const V2_CLOUD = 'payments v2 (onprem) -> currency (cloud)';
const GROUP_TEST = { group: 'test' };

let cast: FedCast;

/** The A3/A4 end state the story carries into A5: payments subsets v1/v2, group: test → v2. */
const PAYMENTS_SUBSETS = { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } };

// Two servers, two gateways, six apps and their sidecars: minutes on a loaded 2-core machine.
before(async () => {
  cast = await FedCast.create();
  try {
    await setUp();
  } catch (err) {
    process.stdout.write(`${cast.report()}\n`);
    throw err;
  }
}, { timeout: 300_000 });

async function setUp() {
  // onprem and cloud start together: cloud retries its WAN join until onprem's pool is up.
  await Promise.all([cast.startServer('onprem'), cast.startServer('cloud')]);
  await cast.writeGlobals();
  await cast.putConfig({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: PAYMENTS_SUBSETS });
  await cast.putConfig({ Kind: 'service-router', Name: 'payments', Routes: [
    { Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } },
  ] });
  await Promise.all([cast.startGateway('onprem'), cast.startGateway('cloud')]);
  for (const m of [CAST.paymentsV1, CAST.currencyV1, CAST.paymentsV2, CAST.web, CAST.currencyCloud, CAST.api]) await cast.add(m);
  for (const m of [CAST.paymentsV1, CAST.currencyV1, CAST.paymentsV2, CAST.web, CAST.currencyCloud, CAST.api]) await cast.waitPassing(m);
}

afterEach((t) => {
  if ((t as { passed?: boolean }).passed === false && cast) process.stdout.write(`${cast.report()}\n`);
});

after(async () => { await cast?.stop(); }, { timeout: 60_000 });

/** n requests on `front` all answered by `who`. */
async function all(n: number, who: string, front: 'web' | 'api', path: string, headers: Record<string, string> = {}) {
  const seen = await cast.tally(n, front, path, headers);
  assert.deepEqual([...seen], [[who, n]], `${n} × GET ${path} on ${front} ${JSON.stringify(headers)}`);
}

/** Waits until 10 requests in a row are answered by `who` (a change reached the proxies). */
async function until(who: string, front: 'web' | 'api', path: string, headers: Record<string, string> = {}, timeoutMs = 20_000) {
  let last = '';
  try {
    await waitFor(`GET ${path} on ${front} ${JSON.stringify(headers)} → ${who}`, async () => {
      for (let i = 0; i < 10; i++) if ((last = await cast.via(front, path, headers)) !== who) return false;
      return true;
    }, timeoutMs, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message} (last answer: ${last})`);
  }
}

async function membersWan(): Promise<string[][]> {
  const r = await cast.cli('onprem', ['members', '-wan']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
}

async function waitMembersWan(names: string[]) {
  await waitFor(`members -wan lists ${names.join(', ')} alive`, async () => {
    const rows = await membersWan();
    return JSON.stringify(rows.filter((c) => c[2] === 'alive').map((c) => c[0]).sort()) === JSON.stringify([...names].sort());
  }, 60_000, 500);
  const rows = await membersWan();
  assert.deepEqual(rows.map((c) => [c[0], c[2], c[3], c[6]]).sort(), names.map((n) => [n, 'alive', 'server', n.split('.')[1]]).sort());
}

/**
 * The share of `who` in 1,000 answers within SCENARIOS.md's 3-sigma bound; a sample outside is
 * followed by one fresh sample that must fall inside (as the A0–A4 suite does): a fair split
 * fails both about once in 140,000 runs.
 */
async function assertShare(p: number, who: string, others: string[], front: 'web' | 'api', path: string, headers: Record<string, string>) {
  const [lo, hi] = binomialBound(p, 1000);
  const share = async () => {
    // Eight at a time: the share does not depend on the order, and 1,000 requests through two
    // gateways one by one took two minutes on a loaded 2-core machine.
    const seen = await cast.tally(1000, front, path, headers, 8);
    const known = [who, ...others].reduce((n, k) => n + (seen.get(k) ?? 0), 0);
    assert.equal(known, 1000, `answers other than ${[who, ...others].join(' / ')}: ${JSON.stringify([...seen])}`);
    return (seen.get(who) ?? 0) / 1000;
  };
  const first = await share();
  if (first >= lo && first <= hi) return;
  process.stdout.write(`# ${who} share ${first} outside ${lo.toFixed(3)}–${hi.toFixed(3)}; one fresh sample of 1,000\n`);
  const second = await share();
  assert.ok(second >= lo && second <= hi, `${who} share ${first}, then ${second}, outside ${lo.toFixed(3)}–${hi.toFixed(3)}`);
}

const pems = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

/**
 * Walks from the first certificate of `leafPem` to one of `roots` through the others (a leaf's
 * CertPEM carries its intermediates after it, as Consul's does) and `intermediates`.
 */
function chainsTo(leafPem: string, intermediates: string[], roots: string[]): boolean {
  const rootCerts = roots.map((p) => new X509Certificate(p));
  const [first, ...rest] = pems(leafPem);
  const pool = [...rest, ...intermediates.flatMap(pems)].map((p) => new X509Certificate(p));
  let cert = new X509Certificate(first!);
  for (let depth = 0; depth < 5; depth++) {
    if (rootCerts.some((r) => cert.checkIssued(r) && cert.verify(r.publicKey))) return true;
    const next = pool.find((c) => cert.checkIssued(c) && cert.verify(c.publicKey));
    if (!next) return false;
    cert = next;
  }
  return false;
}

interface Roots { TrustDomain: string; ActiveRootID: string; Roots: Array<{ ID: string; RootCert: string; IntermediateCerts?: string[] | null }> }

describe('A5 Move currency v2 to the second datacenter (mesh gateways)', () => {
  test('cloud joins onprem over the WAN: members -wan lists both datacenters\' servers alive', { timeout: 90_000 }, async () => {
    await waitMembersWan(['onprem-server.onprem', 'cloud-server.cloud']);
  });

  test('config entries (and intentions) written in onprem are readable in cloud: replication from the primary', { timeout: 60_000 }, async () => {
    await cast.waitReplicated(['cloud'], 'proxy-defaults', 'global');
    await cast.waitReplicated(['cloud'], 'service-resolver', 'payments');
    await cast.waitReplicated(['cloud'], 'service-router', 'payments');
    await cast.waitReplicated(['cloud'], 'service-intentions', 'currency');
    const pd = await cast.getJson<{ Config: unknown; MeshGateway: unknown }>('cloud', '/v1/config/proxy-defaults/global');
    assert.deepEqual([pd.Config, pd.MeshGateway], [{ protocol: 'http' }, { Mode: 'local' }]);
    const check = async (src: string, dst: string) => (await cast.getJson<{ Allowed: boolean }>('cloud', `/v1/connect/intentions/check?source=${src}&destination=${dst}`)).Allowed;
    assert.equal(await check('payments', 'currency'), true, 'payments → currency allowed in cloud');
    assert.equal(await check('web', 'api'), false, 'web → api refused in cloud (default deny)');
  });

  test('one trust domain: cloud\'s CA signs under onprem\'s root, so a leaf from cloud is valid in onprem', { timeout: 60_000 }, async () => {
    const [onprem, cloud] = [await cast.getJson<Roots>('onprem', '/v1/agent/connect/ca/roots'), await cast.getJson<Roots>('cloud', '/v1/agent/connect/ca/roots')];
    assert.equal(cloud.TrustDomain, onprem.TrustDomain, 'the secondary\'s trust domain is the primary\'s (secondary CA: an intermediate signed by the primary\'s root)');
    const leaf = await cast.getJson<{ CertPEM: string }>('cloud', '/v1/agent/connect/ca/leaf/currency');
    const intermediates = cloud.Roots.flatMap((r) => r.IntermediateCerts ?? []);
    assert.ok(chainsTo(leaf.CertPEM, intermediates, onprem.Roots.map((r) => r.RootCert)), 'cloud\'s currency leaf does not chain to a root onprem trusts');
  });

  test('each datacenter registers a mesh-gateway service with a LAN and a WAN address', async () => {
    const seen: Record<string, { lan: string; wan: string }> = {};
    for (const dc of ['onprem', 'cloud'] as Dc[]) {
      const s = cast.site(dc);
      const [svc] = await cast.getJson<Array<{ ServiceKind: string; ServiceTaggedAddresses: Record<string, { Address: string; Port: number }> }>>(dc, '/v1/catalog/service/mesh-gateway');
      assert.equal(svc?.ServiceKind, 'mesh-gateway');
      const lan = svc!.ServiceTaggedAddresses['lan']!;
      const wan = svc!.ServiceTaggedAddresses['wan']!;
      assert.deepEqual([lan.Address, lan.Port], [s.lanHost, s.ports.gwLan]);
      assert.deepEqual([wan.Address, wan.Port], [s.wanHost, s.ports.gwWan]);
      seen[dc] = { lan: `${lan.Address}:${lan.Port}`, wan: `${wan.Address}:${wan.Port}` };
    }
    assert.notEqual(seen['onprem']!.wan, seen['cloud']!.wan);
    if (cast.topo.mode === 'netns') assert.equal(seen['onprem']!.lan, seen['cloud']!.lan, 'namespaces: both gateways\' LAN addresses are the same 127.0.0.1:port');
  });

  test('the services of onprem and cloud use the same addresses and ports; only gateways (and servers) are reachable across', { timeout: 60_000 }, async (t: TestContext) => {
    if (cast.topo.mode !== 'netns') {
      t.skip(`loopback fallback (${cast.topo.fallbackReason}): addresses do not overlap on this run`);
      return;
    }
    type Entry = { ServiceID: string; ServiceAddress: string; ServicePort: number };
    const sidecar = async (dc: Dc) => (await cast.getJson<Entry[]>(dc, '/v1/catalog/service/currency-sidecar-proxy'))[0]!;
    const [a, b] = [await sidecar('onprem'), await sidecar('cloud')];
    assert.deepEqual([a.ServiceAddress, a.ServicePort], [b.ServiceAddress, b.ServicePort], 'currency\'s sidecar: same address and port in onprem and cloud');
    const cloud = cast.site('cloud');
    assert.equal(await cast.topo.reachableFrom('onprem', cloud.wanHost, cloud.ports.gwWan), true, 'onprem reaches cloud\'s gateway WAN port');
    // With WAN federation through mesh gateways (TRELLIS_FED_WANFED=1) server RPC crosses only the gateways.
    assert.equal(await cast.topo.reachableFrom('onprem', cloud.wanHost, cloud.ports.server), !cast.topo.wanfed, 'cloud\'s server RPC port from onprem');
    assert.equal(await cast.topo.reachableFrom('onprem', cloud.wanHost, cloud.ports.front), false, 'onprem must not reach cloud\'s api directly');
    assert.equal(await cast.topo.reachableFrom('onprem', cloud.wanHost, cloud.ports.http), false, 'onprem must not reach cloud\'s agent HTTP API');
    assert.equal(await cast.topo.reachableFrom('cloud', cast.site('onprem').wanHost, cast.site('onprem').ports.front), false, 'cloud must not reach web directly');
  });

  test('before a redirect: payments v2\'s currency call stays in onprem', { timeout: 60_000 }, async () => {
    await until(V2_ONPREM, 'web', '/', GROUP_TEST, 30_000);
    await all(20, V2_ONPREM, 'web', '/', GROUP_TEST);
    await all(10, V1, 'web', '/');
  });

  test('resolver redirect currency → cloud with the onprem gateway down: the call fails (web answers 500)', { timeout: 60_000 }, async () => {
    await cast.stopGateway('onprem');
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency', Redirect: { Datacenter: 'cloud' } });
    await waitFor('onprem\'s currency chain targets cloud', async () => {
      const c = await cast.getJson<{ Chain: { Targets: Record<string, { Datacenter: string }> } }>('onprem', '/v1/discovery-chain/currency');
      return Object.values(c.Chain.Targets).every((x) => x.Datacenter === 'cloud');
    }, 15_000, 200);
    let last = '';
    await waitFor('the currency call fails', async () => {
      for (let i = 0; i < 5; i++) {
        const r = await cast.get('web', '/', GROUP_TEST);
        last = describeCall(Object.values(r.body.upstream_calls ?? {})[0]);
        if (!failedHop(r, 2)) return false;
      }
      return true;
    }, 20_000, 200).catch((err: Error) => { throw new Error(`${err.message}; last answer: payments → ${last}`); });
    for (let i = 0; i < 20; i++) {
      const r = await cast.get('web', '/', GROUP_TEST);
      assert.ok(failedHop(r, 2), `request ${i}: ${r.status} ${describeCall(Object.values(r.body.upstream_calls ?? {})[0])}`);
    }
  });

  test('with the onprem gateway up: 100/100 web → payments v2 → currency (cloud); both gateways count the connection', { timeout: 90_000 }, async () => {
    const before = { onprem: 0, cloud: await cast.gatewayMetric('cloud', 'consul_mesh_gateway_conns_total', { target: 'currency.default.cloud', route: 'local' }) };
    await cast.startGateway('onprem'); // a new process: its counters start at 0
    await until(V2_CLOUD, 'web', '/', GROUP_TEST, 30_000);
    await all(100, V2_CLOUD, 'web', '/', GROUP_TEST);
    assert.ok(await cast.gatewayMetric('onprem', 'consul_mesh_gateway_conns_total', { target: 'cloud', route: 'remote' }) > before.onprem, 'the onprem gateway forwarded to cloud');
    assert.ok(await cast.gatewayMetric('cloud', 'consul_mesh_gateway_conns_total', { target: 'currency.default.cloud', route: 'local' }) > before.cloud, 'the cloud gateway forwarded to currency');
  });

  test('mTLS end to end through the gateway: the caller sees currency (cloud)\'s SPIFFE ID; a gateway holds no key for it', { timeout: 30_000 }, async () => {
    const roots = await cast.getJson<Roots>('onprem', '/v1/agent/connect/ca/roots');
    const leaf = await cast.getJson<{ CertPEM: string; PrivateKeyPEM: string }>('onprem', '/v1/agent/connect/ca/leaf/payments');
    const s = cast.site('cloud');
    const sni = `currency.default.cloud.internal.${roots.TrustDomain}`;
    // The test dials cloud's gateway WAN address as onprem's gateway does, as payments.
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const c = tls.connect({ host: s.wanHost, port: s.ports.gwWan, servername: sni, key: leaf.PrivateKeyPEM, cert: leaf.CertPEM,
        ca: roots.Roots.flatMap((r) => [r.RootCert, ...(r.IntermediateCerts ?? [])]), checkServerIdentity: () => undefined });
      c.once('secureConnect', () => resolve(c));
      c.once('error', reject);
      c.setTimeout(10_000, () => c.destroy(new Error('no TLS handshake within 10 s')));
    });
    try {
      // Only currency's sidecar holds the key for this certificate: a gateway that terminated TLS could not present it.
      assert.equal(socket.getPeerCertificate().subjectaltname, `URI:spiffe://${roots.TrustDomain}/ns/default/dc/cloud/svc/currency`);
      assert.ok(socket.authorized, `not valid under onprem's roots: ${String(socket.authorizationError)}`);
      const text = await new Promise<string>((resolve, reject) => {
        let buf = '';
        socket.on('data', (c: Buffer) => { buf += c.toString(); });
        socket.once('end', () => resolve(buf));
        socket.once('error', reject);
        socket.write('GET / HTTP/1.1\r\nHost: currency\r\nConnection: close\r\n\r\n');
      });
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.match(text, /"name":"currency \(cloud\)"/);
    } finally {
      socket.destroy();
    }
  });

  test('deleting the resolver rolls back to currency (onprem)', { timeout: 60_000 }, async () => {
    await cast.deleteConfig('service-resolver', 'currency');
    await until(V2_ONPREM, 'web', '/', GROUP_TEST, 30_000);
    await all(20, V2_ONPREM, 'web', '/', GROUP_TEST);
  });
});

describe('A6 A new service across two clusters, failover and a cross-datacenter split', () => {
  test('space joins: three datacenters in members -wan', { timeout: 120_000 }, async () => {
    await cast.startServer('space');
    await waitMembersWan(['onprem-server.onprem', 'cloud-server.cloud', 'space-server.space']);
    await cast.startGateway('space');
    await cast.add(CAST.backend);
    await cast.waitPassing(CAST.backend);
  });

  test('api (cloud) → backend (space): fails without a resolver redirect; 200 with redirect backend → space', { timeout: 90_000 }, async () => {
    await cast.waitReplicated(['cloud', 'space'], 'service-intentions', 'backend');
    for (let i = 0; i < 10; i++) {
      const r = await cast.get('api', '/');
      assert.ok(failedHop(r, 1), `without the redirect, request ${i}: ${r.status} ${describeCall(Object.values(r.body.upstream_calls ?? {})[0])}`);
    }
    await cast.putConfig({ Kind: 'service-resolver', Name: 'backend', Redirect: { Datacenter: 'space' } });
    await cast.waitReplicated(['cloud'], 'service-resolver', 'backend');
    await until('backend (space)', 'api', '/', {}, 30_000);
    const r = await cast.get('api', '/');
    assert.equal(r.status, 200);
    await all(20, 'backend (space)', 'api', '/');
  });

  test('failover currency → [onprem, cloud]: onprem healthy → onprem; stopped → within 30 s 50/50 → cloud; restarted → onprem', { timeout: 150_000 }, async () => {
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency', ConnectTimeout: '3s', Failover: { '*': { Datacenters: ['onprem', 'cloud'] } } });
    await until(V2_ONPREM, 'web', '/', GROUP_TEST, 20_000);
    await all(20, V2_ONPREM, 'web', '/', GROUP_TEST);
    await cast.halt(CAST.currencyV1);
    const at = Date.now();
    await waitFor('currency (cloud) answers', async () => (await cast.via('web', '/', GROUP_TEST)) === V2_CLOUD, 30_000, 200);
    process.stdout.write(`# currency failed over to cloud ${Date.now() - at} ms after onprem's currency stopped\n`);
    await all(50, V2_CLOUD, 'web', '/', GROUP_TEST);
    await cast.add(CAST.currencyV1);
    await cast.waitPassing(CAST.currencyV1);
    await until(V2_ONPREM, 'web', '/', GROUP_TEST, 30_000);
    await all(20, V2_ONPREM, 'web', '/', GROUP_TEST);
  });

  test('subsets by Node.Datacenter (onprem / cloud) with a 50/50 splitter: the cloud share of 1,000 within the bound', { timeout: 240_000 }, async () => {
    // The cloud subset lives in cloud's catalog: a resolver (currency-cloud) redirects to it there,
    // and the splitter names the onprem subset and that resolver, 50/50 (Consul's way to split
    // across datacenters: a split names a service or subset, a resolver its datacenter).
    const byDc = { onprem: { Filter: 'Node.Datacenter == "onprem"' }, cloud: { Filter: 'Node.Datacenter == "cloud"' } };
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency', DefaultSubset: 'onprem', Subsets: byDc });
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency-cloud', Redirect: { Service: 'currency', ServiceSubset: 'cloud', Datacenter: 'cloud' } });
    await cast.putConfig({ Kind: 'service-splitter', Name: 'currency', Splits: [{ Weight: 50, ServiceSubset: 'onprem' }, { Weight: 50, Service: 'currency-cloud' }] });
    await waitFor('both datacenters answer', async () => {
      const seen = await cast.tally(20, 'web', '/', GROUP_TEST);
      return seen.has(V2_ONPREM) && seen.has(V2_CLOUD);
    }, 30_000, 200);
    await assertShare(0.5, V2_CLOUD, [V2_ONPREM], 'web', '/', GROUP_TEST);
    await cast.deleteConfig('service-splitter', 'currency');
    await cast.deleteConfig('service-resolver', 'currency-cloud');
    await cast.deleteConfig('service-resolver', 'currency');
    await until(V2_ONPREM, 'web', '/', GROUP_TEST, 30_000);
  });
});

describe('A7 Connect everything', () => {
  const THREE_DCS = 'backend (space) -> payments v2 (onprem) -> currency (onprem)';
  const THREE_DCS_V1 = 'backend (space) -> payments v1 (onprem)';

  test('backend gains upstream payments (resolver keeps its subsets, redirects to onprem): api → backend → payments → currency, 200', { timeout: 120_000 }, async () => {
    await cast.halt(CAST.backend);
    await cast.add(CAST.backend, 'payments');
    await cast.waitPassing(CAST.backend);
    await cast.putConfig({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: PAYMENTS_SUBSETS, Redirect: { Datacenter: 'onprem' } });
    await cast.waitReplicated(['cloud', 'space'], 'service-resolver', 'payments');
    await until(THREE_DCS, 'api', '/', GROUP_TEST, 30_000);
    const r = await cast.get('api', '/', GROUP_TEST);
    assert.equal(r.status, 200);
    await all(20, THREE_DCS, 'api', '/', GROUP_TEST);
    await all(20, THREE_DCS_V1, 'api', '/');
  });

  test('onprem behaviour is unchanged; group: test sent to api still ends at payments v2', { timeout: 60_000 }, async () => {
    await all(20, V1, 'web', '/');
    await all(20, V2_ONPREM, 'web', '/', GROUP_TEST);
    await all(20, THREE_DCS, 'api', '/', GROUP_TEST);
  });

  /** Which hops of api's chain (api→backend, backend→payments) fail with `dc`'s gateway stopped. */
  const crosses: Record<Dc, { apiBackend: boolean; backendPayments: boolean }> = {
    onprem: { apiBackend: false, backendPayments: true },
    cloud: { apiBackend: true, backendPayments: false },
    space: { apiBackend: true, backendPayments: true },
  };

  for (const dc of ['onprem', 'cloud', 'space'] as Dc[]) {
    test(`stopping ${dc}'s gateway breaks exactly the hops crossing it; local paths keep working; starting it heals them`, { timeout: 120_000 }, async () => {
      const pids = [...cast.servers.values(), ...[...cast.running.values()].flatMap((r) => [r.app, r.proxy])].map((p) => p.pid);
      await cast.stopGateway(dc);
      const want = crosses[dc];
      const hops = async () => {
        const r = await cast.get('api', '/', GROUP_TEST);
        const backend = Object.values(r.body.upstream_calls ?? {})[0];
        const payments = Object.values(backend?.upstream_calls ?? {})[0];
        const apiBackend = backend?.name !== 'backend (space)';
        const backendPayments = !apiBackend && (payments === undefined || payments.code === -1 || payments.code >= 500);
        return { broken: { apiBackend, backendPayments }, text: `${r.status} ${describeCall(backend)}` };
      };
      // An api→backend hop that fails hides the next one: only what can be seen is compared.
      const matches = (b: { apiBackend: boolean; backendPayments: boolean }) => b.apiBackend === want.apiBackend && (want.apiBackend || b.backendPayments === want.backendPayments);
      let last = '';
      await waitFor(`the hops crossing ${dc} fail`, async () => {
        for (let i = 0; i < 5; i++) { const h = await hops(); last = h.text; if (!matches(h.broken)) return false; }
        return true;
      }, 30_000, 200).catch((err: Error) => { throw new Error(`${err.message}; last: api → ${last}`); });
      for (let i = 0; i < 10; i++) { const h = await hops(); assert.ok(matches(h.broken), `request ${i} with ${dc}'s gateway down: api → ${h.text}`); }
      // The local path of onprem (web → payments → currency) never crosses a gateway.
      await all(10, V2_ONPREM, 'web', '/', GROUP_TEST);
      await all(10, V1, 'web', '/');
      await cast.startGateway(dc);
      await until(THREE_DCS, 'api', '/', GROUP_TEST, 60_000);
      await all(20, THREE_DCS, 'api', '/', GROUP_TEST);
      const after = [...cast.servers.values(), ...[...cast.running.values()].flatMap((r) => [r.app, r.proxy])].map((p) => p.pid);
      assert.deepEqual(after, pids, 'nothing but the gateway was restarted');
    });
  }
});


describe('WAN partition between onprem and cloud (issue 15, how it is checked)', () => {
  test('local traffic unaffected, onprem → cloud calls fail fast, other paths keep working; healed: recovery without restarts, config written meanwhile arrives', { timeout: 180_000 }, async (t: TestContext) => {
    if (!cast.topo.net) {
      t.skip(`loopback fallback (${cast.topo.fallbackReason}): no packet filter to partition with on this run`);
      return;
    }
    // Fail fast the way a Consul user asks for it: ConnectTimeout ends new connections through the
    // cut link, RequestTimeout the requests on connections pooled before the cut (their packets are
    // dropped, nothing resets them; without it only the route's default timeout would end them,
    // which in Envoy is 15 s, beyond the test apps' 10 s upstream timeout).
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency', ConnectTimeout: '2s', RequestTimeout: '3s', Redirect: { Datacenter: 'cloud' } });
    await until(V2_CLOUD, 'web', '/', GROUP_TEST, 30_000);
    const pids = [...cast.servers.values(), ...cast.gateways.values(), ...[...cast.running.values()].flatMap((r) => [r.app, r.proxy])].map((p) => p.pid);
    // Every packet between onprem's and cloud's namespaces dropped; space still reaches both.
    await cast.topo.net.partition([['onprem'], ['cloud']]);
    try {
      // Local traffic of onprem is unaffected.
      await all(10, V1, 'web', '/');
      // onprem → cloud fails, and fast: well before the apps' own 10 s upstream timeout.
      for (let i = 0; i < 3; i++) {
        const at = Date.now();
        const r = await cast.get('web', '/', GROUP_TEST);
        const ms = Date.now() - at;
        const chain = describeCall(Object.values(r.body.upstream_calls ?? {})[0]);
        // The call as a whole fails (web answers 500, currency (cloud) never answers). Where the
        // failure shows depends on timers: web's sidecar has given up on payments v2 (503) at the
        // moment payments v2's sidecar gave up on currency in one run; said, not hidden.
        assert.ok(r.status === 500 && !chain.includes('currency (cloud)'), `during the partition, request ${i}: ${r.status} ${chain}`);
        if (!failedHop(r, 2)) process.stdout.write(`# partition: the failure showed at web's own hop, not at currency's: ${chain}\n`);
        assert.ok(ms < 8000, `a cross-datacenter call failed after ${ms} ms, not fast (the gateway's connect timeout is 5 s)`);
      }
      // cloud → space → onprem never crosses the cut link (payments v1 makes no currency call).
      await all(5, 'backend (space) -> payments v1 (onprem)', 'api', '/');
      // A config entry written in the primary now cannot reach cloud yet.
      await cast.putConfig({ Kind: 'service-defaults', Name: 'written-during-partition', Protocol: 'http' });
      assert.equal((await cast.http('cloud', 'GET', '/v1/config/service-defaults/written-during-partition')).status, 404);
    } finally {
      await cast.topo.net.heal();
    }
    await cast.waitReplicated(['cloud'], 'service-defaults', 'written-during-partition', 60_000);
    await until(V2_CLOUD, 'web', '/', GROUP_TEST, 60_000);
    await all(20, V2_CLOUD, 'web', '/', GROUP_TEST);
    const after = [...cast.servers.values(), ...cast.gateways.values(), ...[...cast.running.values()].flatMap((r) => [r.app, r.proxy])].map((p) => p.pid);
    assert.deepEqual(after, pids, 'nothing was restarted');
    await cast.deleteConfig('service-resolver', 'currency');
    await cast.deleteConfig('service-defaults', 'written-during-partition');
  });
});
