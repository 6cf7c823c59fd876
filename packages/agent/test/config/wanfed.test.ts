// WAN federation through mesh gateways: connect.enable_mesh_gateway_wan_federation and
// primary_gateways, with Consul's builder checks and Trellis's own (TLS on the server port).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRuntimeConfig, type ConfigEnv } from '../../src/config/runtime.ts';
import { ConfigError } from '../../src/config/errors.ts';

const env: ConfigEnv = { hostname: () => 'test-host' };
let dir: string;
let tlsFile: string;

function file(name: string, content: unknown): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, JSON.stringify(content));
  return p;
}

function rejects(argv: string[], field: string, message: string | RegExp) {
  assert.throws(() => buildRuntimeConfig(argv, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.field, field);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-wanfed-config-'));
  // buildRuntimeConfig checks fields, not files: the TLS files are read when the server starts.
  tlsFile = file('tls.json', { tls: { defaults: { ca_file: '/x/ca.pem', cert_file: '/x/s.pem', key_file: '/x/s.key' } } });
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('connect.enable_mesh_gateway_wan_federation', () => {
  const wanfed = () => file('wanfed.json', { connect: { enabled: true, enable_mesh_gateway_wan_federation: true } });
  const base = ['-server', '-data-dir', '/tmp/none', '-bind', '127.0.0.1'];

  test('needs TLS on the server port, naming what is missing', () => {
    rejects([...base, '-config-file', wanfed()], 'connect.enable_mesh_gateway_wan_federation',
      "'connect.enable_mesh_gateway_wan_federation = true' requires TLS on the server port (servers reach each other through the mesh gateways by TLS server name): tls.internal_rpc (or tls.defaults) is missing cert_file, key_file, ca_file (or ca_path)");
    const partial = file('partial.json', { tls: { internal_rpc: { cert_file: '/x/s.pem', key_file: '/x/s.key' } } });
    rejects([...base, '-config-file', wanfed(), '-config-file', partial], 'connect.enable_mesh_gateway_wan_federation', /is missing ca_file \(or ca_path\)$/);
  });

  test('needs server mode (Consul\'s text)', () => {
    rejects(['-data-dir', '/tmp/none', '-bind', '127.0.0.1', '-config-file', wanfed(), '-config-file', tlsFile], 'connect.enable_mesh_gateway_wan_federation',
      "'connect.enable_mesh_gateway_wan_federation = true' requires 'server = true'");
  });

  test('refuses retry_join_wan (Consul\'s text): secondaries join through primary_gateways', () => {
    rejects([...base, '-datacenter', 'dc2', '-config-file', wanfed(), '-config-file', tlsFile, '-retry-join-wan', '10.0.0.1:8302'], 'retry_join_wan',
      "'retry_join_wan' is incompatible with 'connect.enable_mesh_gateway_wan_federation = true'");
  });

  test('with TLS it builds; primary_gateways and primary_gateways_interval are read', () => {
    const pg = file('pg.json', { primary_datacenter: 'dc1', primary_gateways: ['10.0.0.1:8443', 'gw.example.com:443'], primary_gateways_interval: '5s' });
    const { config } = buildRuntimeConfig([...base, '-datacenter', 'dc2', '-config-file', wanfed(), '-config-file', tlsFile, '-config-file', pg], env);
    assert.equal(config.connect.enableMeshGatewayWanFederation, true);
    assert.deepEqual(config.primaryGateways, ['10.0.0.1:8443', 'gw.example.com:443']);
    assert.equal(config.primaryGatewaysIntervalMs, 5000);
  });
});

describe('primary_gateways', () => {
  const base = ['-server', '-data-dir', '/tmp/none', '-bind', '127.0.0.1'];
  test('only in a secondary datacenter, only on servers, only host:port', () => {
    rejects([...base, '-datacenter', 'dc1', '-config-file', file('p1.json', { primary_datacenter: 'dc1', primary_gateways: ['10.0.0.1:8443'] })],
      'primary_gateways', "'primary_gateways' should only be configured in a secondary datacenter");
    rejects(['-data-dir', '/tmp/none', '-bind', '127.0.0.1', '-datacenter', 'dc2', '-config-file', file('p2.json', { primary_datacenter: 'dc1', primary_gateways: ['10.0.0.1:8443'] })],
      'primary_gateways', "'primary_gateways' requires 'server = true'");
    rejects([...base, '-datacenter', 'dc2', '-config-file', file('p3.json', { primary_datacenter: 'dc1', primary_gateways: ['10.0.0.1'] })],
      'primary_gateways', 'primary_gateways: "10.0.0.1" is not host:port');
  });
});

describe('service meta consul-wan-federation (-expose-servers)', () => {
  test('allowed on a mesh gateway only, as Consul\'s allowedConsulMetaKeysForMeshGateway', async () => {
    const { validateMeta } = await import('../../src/http/routes/convert.ts');
    assert.equal(validateMeta({ 'consul-wan-federation': '1' }, 'Service', 'mesh-gateway'), null);
    assert.equal(validateMeta({ 'consul-wan-federation': '1' }, 'Service', ''),
      "Couldn't load metadata pair ('consul-wan-federation', '1'): Key prefix 'consul-' is reserved for internal use");
    assert.match(validateMeta({ 'consul-other': '1' }, 'Service', 'mesh-gateway') ?? '', /reserved for internal use/);
  });
});
