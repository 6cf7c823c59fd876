// The proxy's certificates: the leaf for its service and the roots it trusts, as the agent last
// served them. Each change builds the TLS settings once (ARCHITECTURE.md "TLS cost": a context per
// rotation, never per connection) and tells the listeners, which apply them to new connections
// only: connections already made keep the context they were made with.

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
  /** For tls.createServer / server.setSecureContext (built again per rotation by Node). */
  serverOptions: tls.SecureContextOptions;
  /** For tls.connect: one context per rotation, shared by every upstream connection. */
  clientContext: tls.SecureContext;
  /** Bumped on each rotation (a session cached under an older one is not reused). */
  generation: number;
}

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
    const base = { key: this.leaf.PrivateKeyPEM, cert: this.leaf.CertPEM, ca, minVersion: 'TLSv1.2' as const };
    const clientContext = tls.createSecureContext(base);
    const first = this.current === undefined;
    this.current = { leaf: this.leaf, roots: this.roots, identity, ca, serverOptions: base, clientContext, generation: ++this.generation };
    if (first) this.readyResolve(this.current);
    else for (const fn of this.listeners) fn(this.current);
  }
}
