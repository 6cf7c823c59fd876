// TLS for the server port (Raft and server RPC), from the `tls.internal_rpc` block (which inherits
// `tls.defaults`). Consul's semantics, as far as one gRPC port allows:
//   - TLS is on when a certificate and key are configured; the port then speaks only TLS (gRPC
//     cannot sniff plaintext and TLS on one port the way Consul's RPC multiplexer does).
//   - verify_incoming: callers must present a certificate signed by the CA (mutual TLS).
//   - outgoing connections always present our certificate and verify the server's chain against the
//     CA (a TLS-only port leaves no plaintext fallback, so verify_outgoing cannot be weaker);
//   - verify_server_hostname: the server's certificate must also be valid for `server.<dc>.consul`,
//     so a client agent's certificate from the same CA cannot impersonate a server.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { GrpcTransportCredentials } from '@trellis/raft';
import type { RuntimeConfig } from '../config/runtime.ts';

export class TlsConfigError extends Error {
  readonly code = 'ERR_TLS_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

export interface RpcTls {
  server: grpc.ServerCredentials;
  client: grpc.ChannelCredentials;
  /** For the Raft transport's outgoing streams. */
  raft: GrpcTransportCredentials;
  verifyIncoming: boolean;
  verifyServerHostname: boolean;
  /** The name servers' certificates carry: server.<dc>.<domain without the trailing dot>. */
  serverName: string;
}

function readPem(file: string, field: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new TlsConfigError(`tls.internal_rpc.${field} ${JSON.stringify(file)} cannot be read: ${(err as Error).message}`);
  }
}

/** The CA bundle: ca_file, plus every *.pem / *.crt in ca_path. */
function readCa(caFile: string, caPath: string): Buffer | undefined {
  const parts: Buffer[] = [];
  if (caFile) parts.push(readPem(caFile, 'ca_file'));
  if (caPath) {
    let names: string[];
    try {
      names = fs.readdirSync(caPath).filter((n) => /\.(pem|crt)$/i.test(n)).sort();
    } catch (err) {
      throw new TlsConfigError(`tls.internal_rpc.ca_path ${JSON.stringify(caPath)} cannot be read: ${(err as Error).message}`);
    }
    for (const n of names) parts.push(readPem(path.join(caPath, n), 'ca_path'));
  }
  return parts.length > 0 ? Buffer.concat(parts.flatMap((p) => [p, Buffer.from('\n')])) : undefined;
}

/** undefined when TLS is not configured for internal RPC. */
export function rpcTlsFromConfig(config: RuntimeConfig): RpcTls | undefined {
  const t = config.tls.internalRpc;
  if (!t.certFile && !t.keyFile) {
    if (t.verifyIncoming || t.verifyOutgoing || t.verifyServerHostname) {
      throw new TlsConfigError('tls.internal_rpc: verify_incoming, verify_outgoing and verify_server_hostname need cert_file and key_file');
    }
    return undefined;
  }
  if (!t.certFile || !t.keyFile) throw new TlsConfigError('tls.internal_rpc: cert_file and key_file must be given together');
  const cert = readPem(t.certFile, 'cert_file');
  const key = readPem(t.keyFile, 'key_file');
  const ca = readCa(t.caFile, t.caPath);
  if (ca === undefined) {
    throw new TlsConfigError('tls.internal_rpc: TLS on the server port needs ca_file or ca_path (the CA that signs every server certificate)');
  }
  // Fail at start, not at the first handshake, when the key does not match the certificate.
  try {
    tls.createSecureContext({ cert, key, ca });
  } catch (err) {
    throw new TlsConfigError(`tls.internal_rpc: the certificate, key or CA cannot be used: ${(err as Error).message}`);
  }
  const domain = config.domain.replace(/\.$/, '');
  const serverName = `server.${config.datacenter}.${domain}`;
  const checkServerIdentity = t.verifyServerHostname
    ? (_host: string, peer: tls.PeerCertificate) => tls.checkServerIdentity(serverName, peer)
    : () => undefined; // the chain is still verified against the CA; only the name is not checked
  return {
    server: grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], t.verifyIncoming),
    client: grpc.credentials.createSsl(ca, key, cert, { checkServerIdentity }),
    // The Raft transport always checks a name: the dialled host, or serverName when set. Servers
    // are dialled by IP, so it is given the server name (which server certificates carry in Consul
    // deployments; see the report on making this check optional in the transport).
    raft: { ca, cert, key, serverName },
    verifyIncoming: t.verifyIncoming,
    verifyServerHostname: t.verifyServerHostname,
    serverName,
  };
}
