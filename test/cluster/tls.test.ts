// TLS on the server port (Raft and server RPC share it): three servers with certificates from one CA,
// verify_incoming + verify_outgoing + verify_server_hostname, form a cluster and forward writes; a
// server whose certificate comes from another CA is never discovered, never added.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster, sleep, waitFor } from './cluster.ts';

function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) => ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '1');
  const leaf = (name: string, caName: string, san = 'DNS:server.dc1.consul,IP:127.0.0.1') => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('rogue-ca');
  leaf('server', 'ca');
  leaf('rogue', 'rogue-ca');
  // Signed by the cluster's CA, but not for server.dc1.consul (a client agent's certificate, say).
  leaf('noname', 'ca', 'DNS:client.dc1.consul,IP:127.0.0.1');
}

describe('TLS on the server port', () => {
  let certs: string;
  let c: Cluster;
  let failed = true;
  const tlsConfig = (cert: string, caName: string = 'ca') => ({
    performance: { raft_multiplier: 1 },
    tls: {
      defaults: { ca_file: path.join(certs, `${caName}.crt`), cert_file: path.join(certs, `${cert}.crt`), key_file: path.join(certs, `${cert}.key`), verify_incoming: true, verify_outgoing: true },
      internal_rpc: { verify_server_hostname: true },
    },
  });

  before(() => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-tls-'));
    makeCerts(certs);
  });
  after(async () => {
    if (failed) c?.dumpLogs(40);
    await c?.dispose();
    fs.rmSync(certs, { recursive: true, force: true });
  });

  test('servers with certificates from the cluster CA form a cluster; a foreign CA and a non-server certificate are refused', { timeout: 60_000 }, async () => {
    c = await Cluster.create(3, { config: tlsConfig('server') });
    const leader = await c.formed();
    assert.match(c.servers[0]!.log(), /server RPC listening: .*tls=true/);
    const follower = c.servers.find((s) => s !== leader)!;
    const put = await follower.request('PUT', '/v1/kv/tls', { body: 'forwarded over TLS' });
    assert.equal(put.status, 200, put.text);
    assert.equal((await leader.request('GET', '/v1/kv/tls?raw&consistent')).text, 'forwarded over TLS');

    // The rogue trusts the cluster's CA (it can verify the servers) but presents a certificate the
    // cluster's CA did not sign: only the servers' verify_incoming stands in its way.
    const rogue = await c.add({ name: 'rogue', expect: 0, config: tlsConfig('rogue', 'ca') });
    // verify_server_hostname: a certificate from the right CA that is not a server's cannot serve
    // as one (servers dialling it refuse it, so it is never probed healthy nor added).
    const noname = await c.add({ name: 'noname', expect: 0, config: tlsConfig('noname', 'ca') });
    rogue.start();
    noname.start();
    // Both join the LAN gossip pool (gossip has its own key, -encrypt, not TLS), so the servers
    // discover them; but neither answers the leader's server RPC over TLS, so neither is added.
    const members = c.servers.slice(0, 3);
    await waitFor('the servers discover the rogue and the noname server in gossip', () =>
      /discovered server: .*name=rogue/.test(leader.log()) && /discovered server: .*name=noname/.test(leader.log()), 30_000);
    // Proves a negative: autopilot gets several rounds (one per second) to add them, and must not;
    // a fixed pause is the only way to watch for something that must not happen.
    await sleep(5000);
    await c.waitVoters(members, 5000, members);
    const conf = await leader.getJson<{ Servers: Array<{ Node: string }> }>('/v1/operator/raft/configuration');
    assert.deepEqual(conf.Servers.map((x) => x.Node).sort(), ['s1', 's2', 's3']);
    assert.equal((await noname.request('GET', '/v1/status/leader')).json(), '', 'noname never joined');
    failed = false;
  });
});
