// WAN federation through mesh gateways (connect.enable_mesh_gateway_wan_federation, Consul 1.8+):
// two TLS server agents (dc1 primary, dc2 secondary with primary_gateways) and a mesh gateway in
// each (packages/gateway, registered with its agent). Server RPC to the other datacenter is TLS to
// the local gateway with the remote server's SNI (<node>.server.<dc>.consul); the gateways route it
// without decrypting. On loopback every port is reachable, so the proof that calls cross the
// gateways is (1) the gateways count them on the server route, and (2) with both gateways stopped,
// ?dc= answers "No path to datacenter" although the other server's RPC port still answers.
// The netns proof (only gateway WAN ports between datacenters) is test/e2e/federation/wanfed.test.ts.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AgentProcess, freePort, printLogsIfFailed, waitFor } from '../support/index.ts';
import { startMeshGateway, type MeshGateway } from '../../packages/gateway/src/index.ts';

function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '1');
  for (const dc of ['dc1', 'dc2']) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dc}.key`, '-out', `${dc}.csr`, '-subj', `/CN=server.${dc}.consul`);
    fs.writeFileSync(path.join(dir, `${dc}.ext`), `subjectAltName=DNS:server.${dc}.consul,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
    ssl('x509', '-req', '-in', `${dc}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${dc}.crt`, '-days', '1', '-extfile', `${dc}.ext`);
  }
}

async function metric(addr: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`http://${addr}/metrics`, { agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** The certificate presented on a TLS connection to `port` with `sni` (undefined: closed before a handshake). */
function peerCert(port: number, sni: string, ca: Buffer): Promise<X509Certificate | undefined> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: sni, ca, checkServerIdentity: () => undefined, rejectUnauthorized: false });
    s.setTimeout(10_000, () => { s.destroy(); resolve(undefined); });
    s.once('secureConnect', () => { const c = s.getPeerX509Certificate(); s.destroy(); resolve(c); });
    s.once('error', () => resolve(undefined));
    s.once('close', () => resolve(undefined));
  });
}

describe('WAN federation through mesh gateways (loopback)', () => {
  let certs: string;
  const agents: AgentProcess[] = [];
  const gateways: MeshGateway[] = [];
  let dc1: AgentProcess;
  let dc2: AgentProcess;
  let gw1: MeshGateway;
  let gw2: MeshGateway;
  let gw1Lan: number;
  let gw1Metrics: string;

  const configFile = (dc: string, extra: Record<string, unknown>) => {
    const file = path.join(certs, `${dc}-${agents.length}.json`);
    fs.writeFileSync(file, JSON.stringify({
      primary_datacenter: 'dc1',
      connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
      tls: {
        defaults: { ca_file: path.join(certs, 'ca.crt'), cert_file: path.join(certs, `${dc}.crt`), key_file: path.join(certs, `${dc}.key`), verify_incoming: true, verify_outgoing: true },
        internal_rpc: { verify_server_hostname: true },
      },
      ...extra,
    }));
    return file;
  };
  const gateway = async (agent: AgentProcess, dc: string) => {
    const [lan, wan, m] = [await freePort(), await freePort(), await freePort()];
    const gw = await startMeshGateway({
      httpAddr: agent.httpAddr, address: `127.0.0.1:${lan}`, wanAddress: `127.0.0.1:${wan}`, register: true, metricsAddr: `127.0.0.1:${m}`,
      serviceId: `mesh-gateway-${dc}`, exposeServers: true,
    });
    gateways.push(gw);
    return { gw, lan, wan, metrics: `127.0.0.1:${m}` };
  };

  before(async () => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-wanfed-'));
    makeCerts(certs);
    dc1 = await AgentProcess.start({ name: 'wanfed-dc1', mode: 'server', args: ['-datacenter', 'dc1', '-config-file', configFile('dc1', {})] });
    agents.push(dc1);
    const g1 = await gateway(dc1, 'dc1');
    gw1 = g1.gw;
    gw1Lan = g1.lan;
    gw1Metrics = g1.metrics;
    // dc2 joins the WAN pool through dc1's gateway (primary_gateways; -retry-join-wan is refused
    // with the setting, as Consul refuses it), and WAN gossip crosses the gateways as server RPC
    // does (server/wanGossip.ts).
    dc2 = await AgentProcess.start({
      name: 'wanfed-dc2', mode: 'server',
      args: ['-datacenter', 'dc2', '-config-file', configFile('dc2', { primary_gateways: [`127.0.0.1:${g1.wan}`], primary_gateways_interval: '1s' })],
    });
    agents.push(dc2);
    gw2 = (await gateway(dc2, 'dc2')).gw;
  }, { timeout: 120_000 });

  after(async () => {
    for (const g of gateways) await g.stop();
    for (const a of agents) await a.dispose();
    fs.rmSync(certs, { recursive: true, force: true });
  });
  afterEach((t) => printLogsIfFailed(t, ...agents));

  test('the gateway routes server.<dc>.consul and <node>.server.<dc>.consul to its servers without terminating TLS', { timeout: 60_000 }, async () => {
    const ca = fs.readFileSync(path.join(certs, 'ca.crt'));
    const own = new X509Certificate(fs.readFileSync(path.join(certs, 'dc1.crt')));
    for (const sni of ['server.dc1.consul', 'wanfed-dc1.server.dc1.consul']) {
      let cert: X509Certificate | undefined;
      await waitFor(`a TLS handshake through the gateway with SNI ${sni}`, async () => (cert = await peerCert(gw1Lan, sni, ca)) !== undefined, 20_000, 250);
      // The server's own certificate: the gateway forwarded the bytes, it holds no certificate.
      assert.equal(cert!.fingerprint256, own.fingerprint256, sni);
    }
    // A server name of no server, and a malformed one: closed without a handshake.
    assert.equal(await peerCert(gw1Lan, 'nosuch.server.dc1.consul', ca), undefined);
    assert.equal(await peerCert(gw1Lan, 'a.b.server.dc1.consul', ca), undefined);
    assert.ok(await metric(gw1Metrics, 'consul_mesh_gateway_conns_total', { route: 'server', target: 'wanfed-dc1.server.dc1' }) >= 1);
    // A gateway not started with -expose-servers does not route server names (Consul's too).
    const plainPort = await freePort();
    const plain = await startMeshGateway({ httpAddr: dc1.httpAddr, address: `127.0.0.1:${plainPort}` });
    gateways.push(plain);
    assert.equal(await peerCert(plainPort, 'server.dc1.consul', ca), undefined);
    assert.ok(await metric(gw1Metrics, 'consul_mesh_gateway_refused_total', { cause: 'no_healthy_instance' }) >= 1);
  });

  test('?dc= forwarding, catalog/datacenters and config-entry replication cross the gateways', { timeout: 120_000 }, async () => {
    await waitFor('dc1 lists dc2', async () => (await dc1.getJson<string[]>('/v1/catalog/datacenters')).includes('dc2'), 30_000, 250);
    assert.deepEqual(await dc2.getJson<string[]>('/v1/catalog/datacenters'), ['dc2', 'dc1']);
    assert.equal((await dc2.request('PUT', '/v1/kv/where', { body: 'in dc2' })).text, 'true');
    assert.equal((await dc1.request('PUT', '/v1/kv/where', { body: 'in dc1' })).text, 'true');
    await waitFor('dc1 reads dc2 KV with ?dc=dc2', async () => {
      const r = await dc1.request('GET', '/v1/kv/where?dc=dc2&raw', { timeoutMs: 30_000 });
      return r.status === 200 && r.text === 'in dc2';
    }, 60_000, 500);
    await waitFor('dc2 reads dc1 KV with ?dc=dc1', async () => {
      const r = await dc2.request('GET', '/v1/kv/where?dc=dc1&raw', { timeoutMs: 30_000 });
      return r.status === 200 && r.text === 'in dc1';
    }, 60_000, 500);
    // A config entry written in the primary is replicated into dc2 (blocking reads of the primary).
    const put = await dc1.request('PUT', '/v1/config', { body: JSON.stringify({ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }) });
    assert.equal(put.text, 'true', put.text);
    await waitFor('dc2 has the replicated service-defaults', async () => {
      const r = await dc2.request('GET', '/v1/config/service-defaults/web');
      return r.status === 200 && (JSON.parse(r.text) as { Protocol?: string }).Protocol === 'http';
    }, 60_000, 500);
    // The calls went through the gateways: dc1's gateway carried connections to its server from dc2.
    assert.ok(await metric(gw1Metrics, 'consul_mesh_gateway_conns_total', { route: 'server' }) >= 2);
  });

  test('with the gateways stopped there is no path, although the servers\' RPC ports still answer', { timeout: 90_000 }, async () => {
    await gw1.stop();
    await gw2.stop();
    const r = await dc1.request('GET', '/v1/kv/where?dc=dc2&raw', { timeoutMs: 60_000 });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.text, 'No path to datacenter');
    const back = await dc2.request('GET', '/v1/kv/where?dc=dc1&raw', { timeoutMs: 60_000 });
    assert.equal(back.status, 500, back.text);
    assert.equal(back.text, 'No path to datacenter');
    // The direct path exists: dc2's server port accepts TLS from here.
    const ca = fs.readFileSync(path.join(certs, 'ca.crt'));
    assert.ok(await peerCert(dc2.ports.server, 'server.dc2.consul', ca), 'dc2\'s server port answers directly');
  });
});

