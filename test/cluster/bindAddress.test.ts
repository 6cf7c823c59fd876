// Three servers and a client agent, each bound to its own loopback address (127.0.0.2-5: Linux routes
// all of 127/8 to lo), as Consul agents on separate hosts would be:
//   - every connection one agent opens to another (Raft and server RPC on the server port, gossip on
//     the serf port) leaves from the dialling agent's -bind address, as Consul's do; the kernel alone
//     would pick 127.0.0.1 for all of them (the route's preferred source);
//   - a 512 KiB value written through a follower (so it crosses the forwarding RPC, then the Raft
//     transport) reaches every server byte for byte.
// The remote ends are read from /proc/net/tcp: what the accepting side sees is what a firewall sees.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { AgentProcess } from '../support/index.ts';
import { Cluster, FAST_RAFT, waitFor } from './cluster.ts';

const SERVER_BINDS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const CLIENT_BIND = '127.0.0.5';

/** Established TCP connections whose local end is `port`: the remote IPs (IPv4, from /proc/net/tcp). */
function remoteIpsOnPort(port: number): string[] {
  const ips: string[] = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '01') continue; // 01 = ESTABLISHED
    const [, localPortHex] = f[1]!.split(':');
    if (parseInt(localPortHex!, 16) !== port) continue;
    const [remHex] = f[2]!.split(':');
    // Little-endian hex of the IPv4 address.
    const b = Buffer.from(remHex!, 'hex');
    ips.push(`${b[3]}.${b[2]}.${b[1]}.${b[0]}`);
  }
  return ips;
}

function binary(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 151 + 7) & 0xff;
  return out;
}

describe('agents bound to their own addresses', () => {
  let cluster: Cluster | undefined;
  let client: AgentProcess | undefined;
  let failed = false;
  after(async () => {
    if (failed) {
      cluster?.dumpLogs(40);
      if (client) process.stderr.write(`\n==== client ====\n${client.logTail(40)}\n`);
    }
    await client?.dispose({ keepDir: failed });
    await cluster?.dispose({ keep: failed });
  });

  test('Raft, RPC and gossip connections leave from -bind; a 512 KiB value replicates to every server', { timeout: 120_000 }, async () => {
    try {
      cluster = await Cluster.create(3, { config: FAST_RAFT, bindAddrs: SERVER_BINDS });
      const leader = await cluster.formed();
      const servers = cluster.servers;
      assert.deepEqual(servers.map((s) => s.rpcAddr.split(':')[0]), SERVER_BINDS);

      client = await AgentProcess.start({
        name: 'bound-client', mode: 'client',
        args: ['-bind', CLIENT_BIND, '-retry-join', servers[0]!.serfAddr, '-retry-interval', '1s'],
      });
      // A write through the client crosses its RPC connection to a server.
      const viaClient = await client.request('PUT', '/v1/kv/from-client', { body: 'c' });
      assert.equal(viaClient.text, 'true', viaClient.text);

      const follower = servers.find((s) => s !== leader)!;
      const value = binary(512 * 1024);
      const put = await follower.request('PUT', '/v1/kv/big', { body: value, timeoutMs: 30_000 });
      assert.equal(put.status, 200, put.text.slice(0, 200));
      for (const s of servers) {
        await waitFor(`${s.name} has the 512 KiB value`, async () => {
          const r = await s.request('GET', '/v1/kv/big?raw&stale');
          return r.status === 200 && r.body.equals(value);
        }, 20_000);
      }

      // The leader's server port has the followers' Raft streams (their answers) and the forwarded
      // write; each follower's has the leader's Raft stream; some server has the client's RPC. None
      // of them, and no gossip connection, came from 127.0.0.1.
      const followers = servers.filter((s) => s !== leader);
      await waitFor('the agent-to-agent connections at their accepting ends', () =>
        followers.every((f) => remoteIpsOnPort(leader.ports.server).includes(f.bindAddr)) &&
        followers.every((f) => remoteIpsOnPort(f.ports.server).includes(leader.bindAddr)) &&
        servers.some((s) => remoteIpsOnPort(s.ports.server).includes(CLIENT_BIND)), 20_000).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(Object.fromEntries(servers.map((s) => [s.name, remoteIpsOnPort(s.ports.server)])))}`);
      });
      const allBinds = new Set([...SERVER_BINDS, CLIENT_BIND]);
      const seen: Record<string, string[]> = {};
      for (const s of servers) {
        seen[`${s.name} server port`] = remoteIpsOnPort(s.ports.server);
        seen[`${s.name} serf port`] = remoteIpsOnPort(s.ports.serfLan);
      }
      seen['client serf port'] = remoteIpsOnPort(client.ports.serfLan);
      const gossipSources = Object.entries(seen).filter(([k]) => k.endsWith('serf port')).flatMap(([, v]) => v);
      assert.ok(gossipSources.length >= 3, `gossip connections seen: ${JSON.stringify(seen)}`);
      for (const [where, ips] of Object.entries(seen)) {
        for (const ip of ips) assert.ok(allBinds.has(ip), `${where}: a connection from ${ip}, not from an agent's -bind address (${JSON.stringify(seen)})`);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  test('bad names through the client agent (forwarded or served locally) get the same 400s as on a server', { timeout: 60_000 }, async () => {
    try {
      assert.ok(client && cluster, 'the cluster test ran first');
      const viaClient: AgentProcess = client;
      const badUtf8 = Buffer.concat([Buffer.from('{"Name": "s'), Buffer.from([0xff]), Buffer.from('"}')]);
      const cases: Array<[string, string, string | Buffer, RegExp]> = [
        // The client adds its node name to a session body before forwarding it: not by re-encoding
        // broken UTF-8 into U+FFFD.
        ['PUT', '/v1/session/create', badUtf8, /^Request decode failed: invalid UTF-8 in Name at offset 12/],
        ['PUT', '/v1/session/create', '{"Name": "s\\u0000"}', /^Invalid session name/],
        ['PUT', '/v1/agent/check/register', '{"Name": "c\\u0000", "TTL": "10s"}', /^Invalid check name/],
        ['PUT', '/v1/txn', '[{"KV": {"Verb": "set", "Key": "a\\u0000", "Value": "eA=="}}]', /^Invalid KV key/],
      ];
      for (const [method, path, body, want] of cases) {
        const r = await viaClient.request(method, path, { body });
        assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
        assert.match(r.text, want);
      }
      const sessions = await cluster.servers[0]!.getJson<unknown[]>('/v1/session/list');
      assert.equal(sessions.length, 0, 'no session was created');
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
