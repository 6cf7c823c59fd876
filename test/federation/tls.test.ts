// ?dc= forwarding over a TLS server port with verify_server_hostname: a server of another datacenter
// must present a certificate for server.<that dc>.consul (as in Consul), signed by the shared CA.
// One whose certificate names another datacenter is never answered: "No path to datacenter".
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '1');
  const leaf = (name: string, dnsName: string) => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=DNS:${dnsName},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  leaf('dc1', 'server.dc1.consul');
  leaf('dc2', 'server.dc2.consul');
  // A server of dc3 holding dc2's name: the CA signed it, but not as a server of dc3.
  leaf('dc3', 'server.dc2.consul');
}

describe('WAN federation over TLS (verify_server_hostname)', () => {
  let certs: string;
  const agents: AgentProcess[] = [];
  const server = async (dc: string, certName: string, extra: string[] = []): Promise<AgentProcess> => {
    const cfg = path.join(certs, `${dc}.json`);
    fs.writeFileSync(cfg, JSON.stringify({
      tls: {
        defaults: { ca_file: path.join(certs, 'ca.crt'), cert_file: path.join(certs, `${certName}.crt`), key_file: path.join(certs, `${certName}.key`), verify_incoming: true, verify_outgoing: true },
        internal_rpc: { verify_server_hostname: true },
      },
    }));
    const a = await AgentProcess.start({ name: `tls-${dc}`, mode: 'server', args: ['-datacenter', dc, '-config-file', cfg, ...extra] });
    agents.push(a);
    return a;
  };

  before(() => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-fed-tls-'));
    makeCerts(certs);
  });
  after(async () => {
    for (const a of agents) await a.dispose();
    fs.rmSync(certs, { recursive: true, force: true });
  });
  afterEach((t) => printLogsIfFailed(t, ...agents));

  test('dc1 reaches dc2 (its certificate names server.dc2.consul); not dc3, whose certificate does not name server.dc3.consul', { timeout: 90_000 }, async () => {
    const dc1 = await server('dc1', 'dc1');
    const dc2 = await server('dc2', 'dc2', ['-join-wan', dc1.serfWanAddr]);
    const dc3 = await server('dc3', 'dc3', ['-join-wan', dc1.serfWanAddr]);
    await waitFor('dc1 knows dc2 and dc3', async () => (await dc1.getJson<string[]>('/v1/catalog/datacenters')).length === 3, 20_000, 200);
    assert.equal((await dc2.request('PUT', '/v1/kv/tls', { body: 'in dc2' })).text, 'true');
    const r = await dc1.request('GET', '/v1/kv/tls?dc=dc2&raw');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'in dc2');
    assert.equal((await dc3.request('PUT', '/v1/kv/tls', { body: 'in dc3' })).text, 'true');
    const bad = await dc1.request('GET', '/v1/kv/tls?dc=dc3&raw', { timeoutMs: 30_000 });
    assert.equal(bad.status, 500);
    assert.equal(bad.text, 'No path to datacenter');
  });
});
