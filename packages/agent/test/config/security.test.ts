// "Never pretend to protect": security settings Trellis parses but does not enforce refuse to start,
// naming the key; values that ask for no protection are accepted.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRuntimeConfig, type ConfigEnv } from '../../src/config/runtime.ts';
import { ConfigError } from '../../src/config/errors.ts';

const env: ConfigEnv = { hostname: () => 'test-host' };
let dir: string;
before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-security-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(content: string, ext = 'hcl'): string {
  const p = path.join(dir, `c${n++}.${ext}`);
  fs.writeFileSync(p, content);
  return p;
}

function refused(argv: string[], field: string, message: RegExp): void {
  assert.throws(() => buildRuntimeConfig(argv, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.code, 'ERR_CONFIG_UNSUPPORTED');
    assert.equal(err.field, field);
    assert.match(err.message, message);
    return true;
  });
}

describe('settings that ask for protection Trellis does not give are refused by name', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['ACLs the pre-1.4 way', 'acl_datacenter = "dc1"\n', 'acl_datacenter', /"dc1": turns legacy ACLs on, and the legacy \(pre-1\.4\) ACL system is not supported/],
    ['auto_encrypt on a client', 'auto_encrypt {\n  tls = true\n}\n', 'auto_encrypt.tls', /true: auto_encrypt is not supported yet/],
    ['auto_encrypt on a server', 'auto_encrypt {\n  allow_tls = true\n}\n', 'auto_encrypt.allow_tls', /auto_encrypt is not supported yet/],
    ['gRPC certificates from auto_encrypt', 'tls {\n  grpc {\n    use_auto_cert = true\n  }\n}\n', 'tls.grpc.use_auto_cert', /auto_encrypt is not supported yet/],
    ['auto_config', 'auto_config {\n  enabled = true\n  intro_token = "x"\n}\n', 'auto_config.enabled', /true: auto_config is not supported yet/],
    ['auto_config authorization', 'auto_config {\n  authorization {\n    enabled = true\n  }\n}\n', 'auto_config.authorization.enabled', /auto_config authorization is not supported yet/],
    ['gossip source networks', 'serf_lan_allowed_cidrs = ["10.0.0.0/8"]\n', 'serf_lan_allowed_cidrs', /\["10\.0\.0\.0\/8"\]: Trellis does not filter gossip/],
    ['HTTP write sources', 'http_config {\n  allow_write_http_from = ["127.0.0.0/8"]\n}\n', 'http_config.allow_write_http_from', /does not restrict HTTP writes/],
    ['request rate limits', 'limits {\n  request_limits {\n    mode = "enforcing"\n  }\n}\n', 'limits.request_limits.mode', /does not rate-limit requests yet/],
    ['TLS 1.3 minimum (pre-1.12 key)', 'tls_min_version = "TLSv1_3"\n', 'tls.defaults.tls_min_version', /TLS 1\.3 minimum/],
    ['cipher suites', 'tls {\n  internal_rpc {\n    tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"\n  }\n}\n', 'tls.internal_rpc.tls_cipher_suites', /does not restrict TLS cipher suites/],
  ];
  for (const [name, content, field, message] of cases) {
    test(name, () => {
      const f = file(content, content.startsWith('{') ? 'json' : 'hcl');
      // The message starts with the file, then the key and its value, then why.
      const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      refused(['-dev', '-config-file', f], field, new RegExp(`^config: ${escape(f)}: ${escape(field)} = .*${message.source}`));
    });
  }
  test('an -hcl fragment is named as its source', () => {
    refused(['-dev', '-hcl', 'acl_datacenter = "dc1"'], 'acl_datacenter', /^config: flags-0\.hcl: acl_datacenter = "dc1"/);
  });
});

describe('values that ask for no protection are accepted', () => {
  const accepted: Array<[string, string]> = [
    ['acl.enabled = true (enforced: acl/, http/aclEnforce.ts), with the older token names', 'acl {\n  enabled = true\n  default_policy = "deny"\n  tokens {\n    master = "m"\n    agent_master = "r"\n  }\n}\n'],
    ['acl.enabled = false with a default policy and tokens', 'acl {\n  enabled = false\n  default_policy = "deny"\n  tokens {\n    agent = "x"\n  }\n}\n'],
    ['auto_encrypt off', 'auto_encrypt {\n  tls = false\n  allow_tls = false\n}\n'],
    ['auto_config off', 'auto_config {\n  enabled = false\n}\n'],
    ['empty CIDR lists', 'serf_lan_allowed_cidrs = []\nhttp_config {\n  allow_write_http_from = []\n}\n'],
    ['request limits permissive', 'limits {\n  request_limits {\n    mode = "permissive"\n  }\n}\n'],
    ['TLS 1.2 minimum (what the server port enforces)', 'tls {\n  defaults {\n    tls_min_version = "TLSv1_2"\n  }\n}\n'],
  ];
  for (const [name, content] of accepted) {
    test(name, () => {
      assert.doesNotThrow(() => buildRuntimeConfig(['-dev', '-config-file', file(content)], env));
    });
  }
  test('a later file turning ACLs off wins over an earlier one turning them on', () => {
    const a = file('acl { enabled = true }\n');
    const b = file('acl { enabled = false }\n');
    assert.equal(buildRuntimeConfig(['-dev', '-config-file', a, '-config-file', b], env).config.acl.enabled, false);
  });
  test('encrypt_verify_* = false with a gossip key: accepted, with a warning that Trellis verifies anyway', () => {
    const f = file('encrypt = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="\nencrypt_verify_incoming = false\n');
    const { warnings } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.ok(warnings.some((w) => w.startsWith('encrypt_verify_incoming = false has no effect')), warnings.join('\n'));
  });
  test('HTTPS settings: accepted with a warning that Trellis serves no HTTPS yet', () => {
    const f = file('ports {\n  https = 8501\n}\nverify_incoming_https = true\n');
    const { warnings } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.ok(warnings.some((w) => w.startsWith('Trellis does not serve HTTPS yet')), warnings.join('\n'));
  });
  test('TLS verify settings on the server port stay as they were (enforced by rpc/tls.ts)', () => {
    const f = file('verify_incoming = true\nverify_outgoing = true\nverify_server_hostname = true\nverify_incoming_rpc = true\n');
    const { config } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.equal(config.tls.internalRpc.verifyIncoming, true);
    assert.equal(config.tls.internalRpc.verifyOutgoing, true);
    assert.equal(config.tls.internalRpc.verifyServerHostname, true);
  });
});
