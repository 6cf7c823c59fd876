// "Never pretend to protect": a security setting that Trellis parses but does not enforce must not
// let an agent start as if it were protected. Each rule below names a Consul key, says when its
// value asks for protection, and why Trellis cannot give it yet. Values that ask for nothing
// (acl.enabled = false, an empty CIDR list) are accepted.
//
// Enforced today, so not listed here: ACLs (acl.enabled), and TLS on the server port (tls.internal_rpc, inheriting
// tls.defaults, and the pre-1.12 verify_incoming/verify_outgoing/verify_server_hostname/
// verify_incoming_rpc keys) in rpc/tls.ts, which also refuses verify_* without certificates;
// gossip encryption (encrypt): a libp2p pre-shared key that every connection must hold in both
// directions, so encrypt_verify_incoming/outgoing = true hold whenever a key is set.

import { ConfigError } from './errors.ts';
import type { RawConfig } from './schema.ts';

export interface NamedSource {
  readonly name: string;
  readonly raw: RawConfig;
}

interface Rule {
  /** Dotted key path in the decoded config. */
  readonly path: string;
  /** True when the value asks for a protection Trellis does not give. */
  readonly asks: (value: unknown) => boolean;
  readonly why: string;
}

const isTrue = (v: unknown): boolean => v === true;
const nonEmpty = (v: unknown): boolean => Array.isArray(v) && v.length > 0;
const ACL_WHY = 'the legacy (pre-1.4) ACL system is not supported: Trellis would not enforce it. Use acl { enabled = true } (tokens, policies and roles) with primary_datacenter instead';
const AUTO_ENCRYPT_WHY = 'auto_encrypt is not supported yet: Trellis cannot hand out or fetch agent TLS certificates. Give each agent its certificate with tls.defaults.cert_file and key_file';

const RULES: readonly Rule[] = [
  // Consul < 1.4's way of turning ACLs on (it also sets primary_datacenter). acl.enabled is enforced
  // (acl/, http/aclEnforce.ts) and so not listed.
  { path: 'acl_datacenter', asks: (v) => typeof v === 'string' && v !== '', why: `turns legacy ACLs on, and ${ACL_WHY}` },
  { path: 'auto_encrypt.tls', asks: isTrue, why: AUTO_ENCRYPT_WHY },
  { path: 'auto_encrypt.allow_tls', asks: isTrue, why: AUTO_ENCRYPT_WHY },
  { path: 'tls.grpc.use_auto_cert', asks: isTrue, why: AUTO_ENCRYPT_WHY },
  { path: 'auto_config.enabled', asks: isTrue, why: 'auto_config is not supported yet: Trellis cannot check an intro token or hand out agent configuration' },
  { path: 'auto_config.authorization.enabled', asks: isTrue, why: 'auto_config authorization is not supported yet: Trellis cannot check JWT intro tokens' },
  { path: 'serf_lan_allowed_cidrs', asks: nonEmpty, why: 'Trellis does not filter gossip by source network yet: agents outside these networks would be heard. Use encrypt (a gossip key) to keep others out' },
  { path: 'serf_wan_allowed_cidrs', asks: nonEmpty, why: 'Trellis does not filter WAN gossip by source network yet' },
  { path: 'http_config.allow_write_http_from', asks: nonEmpty, why: 'Trellis does not restrict HTTP writes by client address yet: every client that reaches the HTTP port could write' },
  { path: 'limits.request_limits.mode', asks: (v) => v === 'enforcing', why: 'Trellis does not rate-limit requests yet' },
  // The server port's TLS is Node's, with TLS 1.2 as its floor and Node's cipher list.
  ...['defaults', 'internal_rpc'].flatMap((block): Rule[] => [
    { path: `tls.${block}.tls_min_version`, asks: (v) => v === 'TLSv1_3' || v === 'tls13', why: 'Trellis does not enforce a TLS 1.3 minimum yet (the server port accepts TLS 1.2 and 1.3)' },
    { path: `tls.${block}.tls_cipher_suites`, asks: (v) => typeof v === 'string' && v.trim() !== '', why: 'Trellis does not restrict TLS cipher suites yet (Node\'s default TLS 1.2 and 1.3 suites are accepted)' },
  ]),
];

function valueAt(raw: RawConfig, path: string): unknown {
  let o: unknown = raw;
  for (const p of path.split('.')) {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
    o = (o as RawConfig)[p];
  }
  return o;
}

/**
 * Throws ERR_CONFIG_UNSUPPORTED for the first setting of the merged config that asks for a
 * protection Trellis does not enforce, naming the key, its value and the source that set it.
 * Adds warnings for settings that ask for less protection than Trellis always gives.
 */
export function refuseUnenforcedProtection(merged: RawConfig, sources: readonly NamedSource[], warnings: string[]): void {
  for (const rule of RULES) {
    const value = valueAt(merged, rule.path);
    if (value === undefined || !rule.asks(value)) continue;
    const from = [...sources].reverse().find((s) => valueAt(s.raw, rule.path) !== undefined);
    const where = from && from.name !== 'command line flags' ? `config: ${from.name}: ` : '';
    throw new ConfigError('ERR_CONFIG_UNSUPPORTED', `${where}${rule.path} = ${JSON.stringify(value)}: ${rule.why}`, { field: rule.path, ...(from ? { file: from.name } : {}) });
  }
  // No HTTPS listener exists yet, so nothing is served unprotected because of these; say that the
  // settings do nothing rather than let a reader believe the API is behind TLS.
  const httpsPort = valueAt(merged, 'ports.https');
  const httpsTls = valueAt(merged, 'tls.https');
  if ((typeof httpsPort === 'number' && httpsPort > 0) || (typeof httpsTls === 'object' && httpsTls !== null && Object.keys(httpsTls).length > 0)) {
    warnings.push('Trellis does not serve HTTPS yet: ports.https and tls.https have no effect (the HTTP API is served on ports.http only, without TLS)');
  }
  if (typeof merged['encrypt'] === 'string' && merged['encrypt'] !== '') {
    for (const key of ['encrypt_verify_incoming', 'encrypt_verify_outgoing']) {
      if (merged[key] === false) {
        warnings.push(`${key} = false has no effect: Trellis always requires the gossip key on every connection, in both directions`);
      }
    }
  }
}
