// TLS session resumption for the proxy's outbound mTLS connections, as Envoy (upstream clusters,
// max_session_keys 1) and haproxy (server lines without no-ssl-reuse) do by default: one session per
// target, i.e. instance address and SNI, offered on the next connection there, which then skips
// the certificate signatures and chain checks of a full handshake.
//
// A session belongs to the leaf and roots it was made under: the cache is emptied when either
// changes (and a session that arrives from a connection made before the change is not kept), so
// the first connection after a rotation makes a full handshake with the new leaf, verified against
// the new roots. The server side rotates its ticket keys at the same moments (tlsMaterial.ts).
//
// Node skips checkServerIdentity on a resumed session (it relies on the first handshake's check),
// and on the client side it cannot show the server's certificate then either (getPeerCertificate()
// and getPeerX509Certificate() come back empty: OpenSSL keeps no peer chain in a resumed session).
// So each cached session carries the server's URI SANs as verified in the full handshake that made
// it (a resumed connection can only be resumed by whoever holds that session's secret, i.e. the
// server that was verified), and the proxy checks the server's SPIFFE ID on every resumed
// connection against those (checkResumedServer), as it does on a full handshake.

import type tls from 'node:tls';
import type { TlsMaterial } from './tlsMaterial.ts';

/** A session's key: where it was made and which service (SNI) it names. */
export function sessionKey(host: string, port: number, sni: string): string {
  return `${host}:${port}/${sni}`;
}

/** A session and the server identity (subjectaltname) verified in the full handshake that made it. */
export interface CachedSession { session: Buffer; serverSans: string }

export class TlsSessionCache {
  private readonly sessions = new Map<string, CachedSession>();
  private readonly material: TlsMaterial;
  private readonly max: number;
  private readonly unsubscribe: () => void;

  /** `max` bounds the targets remembered (a cache: beyond it, the oldest are forgotten). */
  constructor(material: TlsMaterial, max = 1024) {
    this.material = material;
    this.max = max;
    this.unsubscribe = material.onRotate(() => this.sessions.clear());
  }

  /** The session to offer a new connection to `key` (its `session` option), if one was made under the current leaf and roots. */
  get(key: string): CachedSession | undefined {
    return this.sessions.get(key);
  }

  /**
   * Keeps the sessions `conn` receives (TLS 1.3 tickets come after the handshake) under `key`, unless
   * the leaf or roots changed since `generation`, the snapshot `conn` was made with. `offered` is
   * the session `conn` was given: a resumed connection's server is the one verified for it. A
   * connection that fails its checks must be forgotten (forget) by the caller.
   */
  track(conn: tls.TLSSocket, key: string, generation: number, offered: CachedSession | undefined): void {
    conn.on('session', (session: Buffer) => {
      if (this.material.snapshot?.generation !== generation) return;
      const serverSans = conn.isSessionReused() ? offered?.serverSans : conn.getPeerX509Certificate()?.subjectAltName;
      if (serverSans === undefined) return; // nothing verified to carry over: not kept
      if (!this.sessions.has(key) && this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
      this.sessions.set(key, { session, serverSans });
    });
  }

  /** Forgets `key`'s session (its connection failed: the next one makes a full handshake). */
  forget(key: string): void {
    this.sessions.delete(key);
  }

  get size(): number {
    return this.sessions.size;
  }

  close(): void {
    this.unsubscribe();
    this.sessions.clear();
  }
}

/**
 * The server identity check for a connection that resumed the session `offered` (Node runs
 * checkServerIdentity only after a full handshake): `check` (the connection's checkServerIdentity,
 * e.g. checkServerSpiffe for the target) sees the server's URI SANs as verified when the session
 * was made. Returns undefined after a full handshake (Node checked it) or a match, else the Error
 * to destroy the connection with.
 */
export function checkResumedServer(conn: tls.TLSSocket, offered: CachedSession | undefined, check: (cert: tls.PeerCertificate) => Error | undefined): Error | undefined {
  if (!conn.isSessionReused()) return undefined;
  if (!offered) return Object.assign(new Error('TLS session resumed that this connection did not offer'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  return check({ subjectaltname: offered.serverSans } as tls.PeerCertificate);
}
