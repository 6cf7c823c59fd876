// The proxy's certificates: the leaf for its service and the roots it trusts, as the agent last
// served them. Each change builds the TLS settings once (ARCHITECTURE.md "TLS cost": a context per
// rotation, never per connection) and tells the listeners, which apply them to new connections
// only: connections already made keep the context they were made with.
//
// Sessions are resumed between sidecars (a new connection per request is the test apps' way, and a
// full handshake costs both sides about twice a resumed one): the public listener issues TLS 1.3
// tickets under keys made for each snapshot, so a ticket from before a rotation of the leaf or the
// roots can never be resumed after it (its holder makes a full handshake, verified against the
// new roots); upstream listeners drop their cached sessions on rotation (tlsSessions.ts).

import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { CARoots, LeafCert } from './types.ts';
import { parseServiceUri, type ServiceIdentity } from './spiffe.ts';

export interface TlsSnapshot {
  leaf: LeafCert;
  roots: CARoots;
  /** The leaf's identity (trust domain and datacenter come from here). */
  identity: ServiceIdentity;
  /** PEMs every peer chain must end at: each root and its intermediates (cross-signed ones too). */
  ca: string[];
  /** For tls.createServer / server.setSecureContext (built again per rotation by Node), with this snapshot's ticket keys. */
  serverOptions: tls.SecureContextOptions & { ticketKeys: Buffer };
  /** For tls.connect: one context per rotation, shared by every upstream connection. */
  clientContext: tls.SecureContext;
  /** Bumped on each rotation (a session cached under an older one is not reused). */
  generation: number;
}

/**
 * Key exchange groups, Envoy's defaults for both sides (ServerContextConfigImpl and
 * ClientContextConfigImpl DEFAULT_CURVES "X25519:P-256": what Consul's sidecars negotiate). Node 24's
 * OpenSSL 3.5 would otherwise offer the X25519MLKEM768 hybrid first, whose ML-KEM key generation,
 * encapsulation and decapsulation cost a resumed handshake about a quarter more CPU (client and
 * server together, measured in process: docs/BENCHMARKS.md).
 */
export const ECDH_CURVES = 'X25519:P-256';

export function trustedPems(roots: CARoots): string[] {
  return (roots.Roots ?? []).flatMap((r) => [r.RootCert, ...(r.IntermediateCerts ?? [])]).filter((p) => typeof p === 'string' && p.length > 0);
}

export class TlsMaterial {
  private leaf: LeafCert | undefined;
  private roots: CARoots | undefined;
  private current: TlsSnapshot | undefined;
  private generation = 0;
  private readonly listeners = new Set<(s: TlsSnapshot) => void>();
  private readyResolve!: (s: TlsSnapshot) => void;
  /** Resolves with the first complete snapshot (leaf and roots both known). */
  readonly ready: Promise<TlsSnapshot> = new Promise((r) => { this.readyResolve = r; });

  get snapshot(): TlsSnapshot | undefined {
    return this.current;
  }

  /** Registers `fn` for every later rotation. */
  onRotate(fn: (s: TlsSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  setLeaf(leaf: LeafCert): void {
    this.leaf = leaf;
    this.rebuild();
  }

  setRoots(roots: CARoots): void {
    this.roots = roots;
    this.rebuild();
  }

  /** Throws (leaving the previous snapshot in use) if the PEMs do not make a usable context. */
  private rebuild(): void {
    if (!this.leaf || !this.roots) return;
    const identity = parseServiceUri(this.leaf.ServiceURI);
    if (!identity) throw new Error(`leaf certificate for ${this.leaf.Service}: ServiceURI ${JSON.stringify(this.leaf.ServiceURI)} is not a service SPIFFE ID`);
    const ca = trustedPems(this.roots);
    if (ca.length === 0) throw new Error('CA roots: the agent returned no root certificates');
    const base = { key: this.leaf.PrivateKeyPEM, cert: this.leaf.CertPEM, ca, minVersion: 'TLSv1.2' as const, ecdhCurve: ECDH_CURVES };
    const clientContext = tls.createSecureContext(base);
    // Fresh ticket keys (48 bytes: name, HMAC and AES keys) with every leaf or root change: tickets
    // issued under the previous snapshot no longer decrypt, so they are never resumed.
    const serverOptions = { ...base, ticketKeys: randomBytes(48) };
    const first = this.current === undefined;
    this.current = { leaf: this.leaf, roots: this.roots, identity, ca, serverOptions, clientContext, generation: ++this.generation };
    if (first) this.readyResolve(this.current);
    else for (const fn of this.listeners) fn(this.current);
  }
}
