// The Connect CA of a secondary datacenter (Consul's secondary CA initialization in
// leader_connect_ca.go): one trust domain for every datacenter. A secondary has no root of its own;
// its leader keeps
//   - the roots: the primary's, as GET /v1/connect/ca/roots answers them there (so every datacenter
//     shows the same roots and trust domain, and a leaf from any of them verifies against them);
//   - an intermediate CA for the primary's active root: a key made here (it never leaves this
//     datacenter's Raft log), a CSR for spiffe://<trust domain> sent to a server of the primary over
//     the server RPC (Forward.SignIntermediate), the certificate it answers. Leaves signed here chain
//     leaf → intermediate → primary root (server/connectCA.ts activeSigner).
//
//   loop (leader only): blocking read of the primary's roots; when the active root changed (a
//   rotation in the primary), the intermediate is not issued by it, or half of its lifetime is gone:
//   a new intermediate; when the roots differ: install them. Failures (primary unreachable, its CA
//   not initialized yet) retry with backoff; the installed CA keeps signing meanwhile.
import { X509Certificate } from 'node:crypto';
import { createCaCsr, generateKeyPair } from '../ca/certs.ts';
import { parseProviderConfig } from '../ca/config.ts';
import type { CARootsResponse } from '../ca/types.ts';
import type { ForwardedResponse } from '../http/forward.ts';
import type { Logger } from '../logger.ts';
import { FollowPrimary } from './followPrimary.ts';
import type { CARoot, StateStore } from '../state/index.ts';
import type { ServerCA } from './connectCA.ts';

const WAIT = '5m';

export interface SecondaryCAOptions {
  primary: string;
  ca: ServerCA;
  store: StateStore;
  /** An HTTP GET answered by a server of the primary datacenter. */
  fetchPrimary(url: string, signal: AbortSignal): Promise<ForwardedResponse>;
  /** The CSR signed by a server of the primary (Forward.SignIntermediate); resolves with the PEM. */
  signIntermediate(csrPem: string, signal: AbortSignal): Promise<string>;
  logger: Logger;
  now?: () => number;
}

/** Is `certPem` issued (and signed) by `issuerPem`? */
export function issuedBy(certPem: string, issuerPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const issuer = new X509Certificate(issuerPem);
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Root sets equal for what a secondary shows: IDs, which is active, rotation times, certificates. */
function rootsKey(roots: readonly CARoot[]): string {
  return JSON.stringify([...roots].sort((a, b) => a.ID.localeCompare(b.ID))
    .map((r) => [r.ID, r.Active, r.RotatedOutAt, r.RootCert.trim(), r.IntermediateCerts ?? []]));
}

export class SecondaryCA {
  readonly #o: SecondaryCAOptions;
  readonly #log: Logger;
  readonly #loop: FollowPrimary;

  constructor(o: SecondaryCAOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.connect.ca' });
    this.#loop = new FollowPrimary({
      what: 'secondary CA sync',
      log: this.#log,
      round: (index, signal) => this.#round(index, signal),
      restartFromZero: true,
      failureMessage: 'secondary CA: could not sync with the primary datacenter; retrying',
      failureFields: { primary: o.primary },
    });
  }

  start(): void {
    this.#loop.start();
  }

  stop(): void {
    this.#loop.stop();
  }

  async #round(index: number, signal: AbortSignal): Promise<number> {
    const res = await this.#o.fetchPrimary(`/v1/connect/ca/roots?index=${index}&wait=${WAIT}`, signal);
    if (res.status !== 200) throw new Error(`the primary datacenter answered ${res.status}: ${res.body.toString('utf8').slice(0, 200).trim()}`);
    const next = Number(res.headers['x-consul-index'] ?? NaN);
    const roots = JSON.parse(res.body.toString('utf8')) as CARootsResponse;
    const active = roots.Roots?.find((r) => r.ID === roots.ActiveRootID);
    if (!active || !roots.TrustDomain) throw new Error('the primary datacenter has no CA root yet');
    await this.#ensure(roots, active as CARoot, signal);
    return Number.isFinite(next) && next >= index ? Math.max(1, next) : 0;
  }

  /** Installs the primary's roots and, when needed, a new intermediate for its active root. */
  async #ensure(remote: CARootsResponse, active: CARoot, signal: AbortSignal): Promise<void> {
    const store = this.#o.store;
    const clusterId = remote.TrustDomain.replace(/\.consul$/, '');
    const state = store.caProviderState(active.ID);
    const config = store.caConfig().value;
    const needIntermediate = !state || !issuedBy(state.RootCert, active.RootCert) || this.#halfLifeGone(state.RootCert);
    const sameRoots = config?.ClusterID === clusterId && rootsKey(store.caRoots().value) === rootsKey(remote.Roots as CARoot[]);
    if (!needIntermediate && sameRoots) return;
    let intermediate: { rootId: string; keyPem: string; certPem: string } | undefined;
    if (needIntermediate) {
      const bits = config ? parseProviderConfig(config.Config).privateKeyBits : 2048;
      const key = generateKeyPair(bits);
      const certPem = await this.#o.signIntermediate(createCaCsr(remote.TrustDomain, key.privateKeyPem), signal);
      if (!issuedBy(certPem, active.RootCert)) throw new Error('the primary answered an intermediate that its active root did not issue');
      intermediate = { rootId: active.ID, keyPem: key.privateKeyPem, certPem };
    }
    if (signal.aborted) return;
    if (!(await this.#o.ca.installFromPrimary({ clusterId, roots: remote.Roots as CARoot[], ...(intermediate ? { intermediate } : {}) }))) {
      throw new Error('the CA configuration changed concurrently');
    }
    this.#log.info({ primary: this.#o.primary, active_root: active.ID, trust_domain: remote.TrustDomain, new_intermediate: intermediate !== undefined },
      'secondary CA: installed the primary datacenter\'s roots');
  }

  #halfLifeGone(certPem: string): boolean {
    try {
      const c = new X509Certificate(certPem);
      const from = Date.parse(c.validFrom);
      const to = Date.parse(c.validTo);
      return (this.#o.now ?? Date.now)() > from + (to - from) / 2;
    } catch {
      return true;
    }
  }
}
