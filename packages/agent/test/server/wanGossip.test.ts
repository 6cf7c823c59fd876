// WAN gossip over TLS (server/wanGossip.ts): the ClientHello ALPN reader the server RPC port uses
// to divert gossip connections, and two real WAN pools of different datacenters whose members
// advertise an address nobody can reach (TEST-NET-1), so they only know each other through the
// router: packets and push-pulls as TLS with ALPN consul/wan-gossip/packet|stream, a join through
// it, and a stopped member detected as failed. (Through real mesh gateways in namespaces:
// test/e2e/federation/wanfed.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { RpcClient } from '../../src/rpc/client.ts';
import { RpcServer, type RpcHandlers } from '../../src/rpc/server.ts';
import { GossipPool } from '../../src/gossip/libp2p/pool.ts';
import { serverTags } from '../../src/gossip/tags.ts';
import {
  ALPN_WAN_GOSSIP_PACKET, ALPN_WAN_GOSSIP_STREAM, WanGossipAcceptor, WanGossipTransport, helloAlpn, serverSni, splitWanName,
  type ServerTlsMaterial,
} from '../../src/server/wanGossip.ts';
import { waitFor } from '../../../../test/support/index.ts';

const log = pino({ level: 'silent' });

/** The first bytes a TLS client sends (its ClientHello), offering `alpn`. */
function clientHello(alpn: string[] | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d: Buffer) => { resolve(d); s.destroy(); srv.close(); });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'n1.server.dc2.consul', ...(alpn ? { ALPNProtocols: alpn } : {}) });
      c.on('error', () => { /* the peer hangs up: expected */ });
    });
    srv.on('error', reject);
  });
}

describe('helloAlpn', () => {
  test('reads the offered protocols from a real ClientHello; asks for more while it is cut short', async () => {
    const hello = await clientHello([ALPN_WAN_GOSSIP_STREAM, 'h2']);
    assert.deepEqual(helloAlpn(hello), [ALPN_WAN_GOSSIP_STREAM, 'h2']);
    assert.equal(helloAlpn(hello.subarray(0, 3)), 'more');
    assert.equal(helloAlpn(hello.subarray(0, hello.length - 1)), 'more');
    assert.deepEqual(helloAlpn(await clientHello(undefined)), []);
  });

  test('not a ClientHello: other (gRPC gets the connection and refuses it as it would have)', () => {
    assert.equal(helloAlpn(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'other');
    assert.equal(helloAlpn(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])), 'other', 'a handshake record that is not a client_hello');
  });

  test('names: <node>.<dc> members, server SNI', () => {
    assert.deepEqual(splitWanName('s1.dc2'), { node: 's1', dc: 'dc2' });
    assert.equal(splitWanName('nodc'), undefined);
    assert.equal(serverSni('S1', 'dc2', 'consul.'), 's1.server.dc2.consul');
    assert.equal(serverSni('*', 'dc1', 'consul'), 'server.dc1.consul');
  });
});

describe('WAN pools of two datacenters through the TLS router', () => {
  let dir: string;
  const pools: GossipPool[] = [];
  const transports: WanGossipTransport[] = [];
  const listeners: net.Server[] = [];
  const acceptors = new Map<string, WanGossipAcceptor>();
  const addr = new Map<string, string>();

  function material(dc: string): ServerTlsMaterial {
    return { ca: fs.readFileSync(path.join(dir, 'ca.crt')), cert: fs.readFileSync(path.join(dir, `${dc}.crt`)), key: fs.readFileSync(path.join(dir, `${dc}.key`)), verifyServerHostname: true };
  }

  async function member(dc: string): Promise<GossipPool> {
    const transport = new WanGossipTransport({
      datacenter: dc, domain: 'consul', tls: material(dc), logger: log,
      // No gateway here: the "gateway" of a datacenter is its server's gossip listener itself.
      gateways: (target) => (addr.has(target) ? [addr.get(target)!] : []),
    });
    transports.push(transport);
    const pool = await GossipPool.create({
      nodeName: `s-${dc}.${dc}`, datacenter: dc, bindAddr: '127.0.0.1', port: 0, advertiseAddr: '192.0.2.1', pool: 'wan',
      tags: serverTags({ datacenter: dc, nodeId: `id-${dc}`, serverPort: 8300, build: 'test', bootstrapExpect: 0, bootstrap: true }),
      config: { probeIntervalMs: 200, probeTimeoutMs: 100, gossipIntervalMs: 50, suspicionMult: 2, pushPullIntervalMs: 1000 },
      router: transport, logger: log,
    });
    await pool.start();
    pools.push(pool);
    const acceptor = new WanGossipAcceptor({ tls: material(dc), domain: 'consul', pool, logger: log });
    acceptors.set(dc, acceptor);
    const srv = net.createServer((s) => acceptor.handle(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    listeners.push(srv);
    addr.set(dc, `127.0.0.1:${(srv.address() as net.AddressInfo).port}`);
    return pool;
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-wangossip-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '1');
    for (const [name, san] of [['dc1', 'DNS:server.dc1.consul'], ['dc2', 'DNS:server.dc2.consul'], ['client', 'DNS:client.dc1.consul']] as const) {
      ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
    }
  });

  after(async () => {
    for (const t of transports) t.stop();
    for (const p of pools) await p.stop().catch(() => undefined);
    for (const l of listeners) l.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a join through the router, both alive over TLS packets, a stopped member failed', { timeout: 60_000 }, async () => {
    const p1 = await member('dc1');
    const p2 = await member('dc2');
    // dc2 joins "any server of dc1" (server.dc1.consul): the way a secondary uses primary_gateways.
    await p2.joinRouted({ name: '*.dc1', addr: '', port: 0, peerId: '' });
    const state = (p: GossipPool, name: string) => p.memberViews().find((m) => m.name === name)?.state;
    await waitFor('both alive in both views', () => state(p1, 's-dc2.dc2') === 'alive' && state(p2, 's-dc1.dc1') === 'alive', 10_000, 50);
    // Probes keep them alive for several rounds although the advertised address (192.0.2.1) is unreachable.
    const probesBefore = p1.stats().probes;
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(p1.stats().probes > probesBefore + 3, 'dc1 probed dc2 meanwhile');
    assert.equal(state(p1, 's-dc2.dc2'), 'alive');
    assert.equal(state(p2, 's-dc1.dc1'), 'alive');
    assert.ok(acceptors.get('dc1')!.stats.packets > 0 && acceptors.get('dc2')!.stats.packets > 0, 'packets arrived over TLS both ways');
    assert.ok(acceptors.get('dc1')!.stats.pushPulls >= 1, 'the join was a push-pull over TLS');
    await p2.stop();
    await waitFor('dc1 sees dc2 failed', () => state(p1, 's-dc2.dc2') === 'dead', 20_000, 50);
  });

  test('a client certificate that is not a server\'s is refused (verify_server_hostname)', { timeout: 20_000 }, async () => {
    const refusedBefore = acceptors.get('dc1')!.stats.refused;
    const s = tls.connect({
      host: '127.0.0.1', port: Number(addr.get('dc1')!.split(':')[1]), servername: 'server.dc1.consul', ALPNProtocols: [ALPN_WAN_GOSSIP_PACKET],
      ca: fs.readFileSync(path.join(dir, 'ca.crt')), cert: fs.readFileSync(path.join(dir, 'client.crt')), key: fs.readFileSync(path.join(dir, 'client.key')),
      checkServerIdentity: () => undefined,
    });
    s.on('error', () => { /* closed by the acceptor */ });
    await new Promise<void>((r) => s.once('close', () => r()));
    assert.equal(acceptors.get('dc1')!.stats.refused, refusedBefore + 1);
  });

  test('the server RPC port diverts connections offering a WAN gossip protocol; gRPC over TLS still works beside them', { timeout: 20_000 }, async () => {
    const m = material('dc1');
    const none = () => { throw new Error('not in this test'); };
    const handlers: RpcHandlers = {
      status: () => ({ server: { id: 'srv', name: 'srv' }, term: 3, lastContactMs: -1 }),
      apply: none, readIndex: none, renewSession: none, http: none, nodeState: none, signIntermediate: none,
      addPeer: none, removePeer: none, transferLeader: none, autopilotHealth: none, applyFrame: none, restore: none,
    };
    const rpc = new RpcServer({
      listen: '127.0.0.1:0', logger: log, handlers,
      credentials: grpc.ServerCredentials.createSsl(m.ca as Buffer, [{ private_key: m.key as Buffer, cert_chain: m.cert as Buffer }], true),
    });
    const port = await rpc.bind();
    const diverted: net.Socket[] = [];
    rpc.divert([ALPN_WAN_GOSSIP_PACKET, ALPN_WAN_GOSSIP_STREAM], (socket) => { diverted.push(socket); acceptors.get('dc1')!.handle(socket); });
    const client = new RpcClient({ logger: log, credentials: grpc.credentials.createSsl(m.ca as Buffer, m.key as Buffer, m.cert as Buffer, { checkServerIdentity: () => undefined }) });
    try {
      const res = await client.call(`127.0.0.1:${port}`, 'Status.Status', {}, { deadline: Date.now() + 5000, connectTimeoutMs: 2000 });
      assert.equal(res.term, 3, 'gRPC answered through the peeking listener');
      assert.equal(diverted.length, 0, 'the gRPC connection was not diverted');
      const packetsBefore = acceptors.get('dc1')!.stats.packets;
      // A gossip packet connection, as a server of dc2 dials it (the acceptor's TLS, not gRPC's, answers).
      const s = tls.connect({ host: '127.0.0.1', port, servername: 's-dc1.server.dc1.consul', ALPNProtocols: [ALPN_WAN_GOSSIP_PACKET], ca: material('dc2').ca, cert: material('dc2').cert, key: material('dc2').key, checkServerIdentity: () => undefined });
      await new Promise<void>((resolve, reject) => { s.once('secureConnect', () => resolve()); s.once('error', reject); });
      assert.equal(s.alpnProtocol, ALPN_WAN_GOSSIP_PACKET);
      const packet = Buffer.from('not a gossip message');
      const framed = Buffer.alloc(4 + packet.length);
      framed.writeUInt32BE(packet.length, 0);
      packet.copy(framed, 4);
      s.write(framed);
      await waitFor('the packet reached the acceptor', () => acceptors.get('dc1')!.stats.packets === packetsBefore + 1, 5000, 20);
      assert.equal(diverted.length, 1);
      s.destroy();
    } finally {
      client.close();
      await rpc.stop(100);
    }
  });
});
