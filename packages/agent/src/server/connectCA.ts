// The built-in CA on a server (Consul's agent/consul/leader_connect_ca.go CAManager with the consul
// provider, and the ConnectCA RPC endpoint's Sign / ConfigurationSet):
// - initialize(): on first leadership, when no CA exists, make the cluster id (a UUID), a root key
//   and a self-signed root for spiffe://<cluster-id>.consul, and write them through Raft (CAS 0,
//   so two leaders racing cannot both do it).
// - setConfig(): a new configuration; a new key type or size, or a bring-your-own PrivateKey/
//   RootCert, means a new root: cross-signed by the old root's key (so peers that only know the old
//   root accept leaves of the new one while the bundles update), the old root kept inactive until
//   the leaves it signed have expired. Written with CAS on the configuration's ModifyIndex.
// - sign(): a CSR from an agent, checked (trust domain, datacenter, signature) and signed with the
//   active root's key, rate-limited by CSRMaxPerSecond / CSRMaxConcurrent.
//
// Root keys live in the replicated state (state/connectCA.ts): never logged, never answered.
import crypto from 'node:crypto';
import { CAConfigError, defaultStoredConfig, parseProviderConfig, storedConfig, type CAProviderConfig } from '../ca/config.ts';
import {
  CertificateError, certFacts, checkCsr, createRoot, crossSign, generateKeyPair, keyMatchesCert, parseCert, signIntermediateCsr, signLeaf, type SigningCA,
} from '../ca/certs.ts';
import { trustDomainFor } from '../connect/spiffe.ts';
import type { Logger } from '../logger.ts';
import type { CAConfiguration, CARoot, Command, CommandResult, StateStore } from '../state/index.ts';
import type { IssuedCert } from '../ca/types.ts';

/** Consul's ErrRateLimited. */
export const RATE_LIMITED = 'Rate limit reached, try again later';

export class CAError extends Error {
  readonly code: string;
  constructor(code: 'ERR_BAD_REQUEST' | 'ERR_RATE_LIMITED' | 'ERR_CA_NOT_READY', message: string) {
    super(message);
    this.name = 'CAError';
    this.code = code;
  }
}

export interface ServerCAOptions {
  store: StateStore;
  apply: (cmd: Command) => Promise<CommandResult>;
  datacenter: string;
  logger: Logger;
  now?: () => number;
  /**
   * A secondary datacenter (primary_datacenter is another one): no root of its own. Its leader
   * installs the primary's roots and an intermediate CA the primary signed (server/secondaryCA.ts);
   * leaves are signed with the intermediate and chain through it.
   */
  secondary?: boolean;
}

interface Signer {
  rootId: string;
  /** The root row's ModifyIndex: a new cross-signed intermediate changes it. */
  rowIndex: number;
  ca: SigningCA;
  cert: ReturnType<typeof parseCert>;
  intermediates: string[];
  /** The provider state's certificate the signer was made from (a new intermediate replaces it). */
  stateCert: string;
}

/** A token bucket of `rate` per second with a burst of one second's worth (Consul's rate.Limiter). */
class TokenBucket {
  private rate: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  constructor(rate: number, now: () => number) {
    this.rate = rate;
    this.now = now;
    this.tokens = Math.max(1, rate);
    this.last = now();
  }
  setRate(rate: number): void {
    this.rate = rate;
  }
  take(): boolean {
    if (this.rate <= 0) return true;
    const t = this.now();
    this.tokens = Math.min(Math.max(1, this.rate), this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function rootRow(certPem: string, cfg: CAProviderConfig, trustDomain: string, intermediates: string[] | null, serial: number): Omit<CARoot, 'CreateIndex' | 'ModifyIndex'> {
  const f = certFacts(certPem);
  return {
    ID: f.id,
    Name: 'Consul CA Primary Cert',
    SerialNumber: serial,
    SigningKeyID: f.signingKeyId,
    ExternalTrustDomain: trustDomain,
    NotBefore: iso(f.notBefore),
    NotAfter: iso(f.notAfter),
    RootCert: certPem.endsWith('\n') ? certPem : `${certPem}\n`,
    IntermediateCerts: intermediates,
    Active: true,
    RotatedOutAt: '0001-01-01T00:00:00Z',
    PrivateKeyType: cfg.privateKeyType,
    PrivateKeyBits: cfg.privateKeyBits,
  };
}

export class ServerCA {
  private readonly o: ServerCAOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private signer: Signer | undefined;
  private readonly bucket: TokenBucket;
  private inflight = 0;
  /** The stored configuration decoded once per change, not per CSR. */
  private parsed: { index: number; cfg: CAProviderConfig } | undefined;

  constructor(o: ServerCAOptions) {
    this.o = o;
    this.log = o.logger.child({ component: 'agent.connect.ca' });
    this.now = o.now ?? Date.now;
    this.bucket = new TokenBucket(50, this.now);
  }

  /** Creates the CA if none exists (first leader). Safe to call on every leadership. */
  async initialize(): Promise<void> {
    if (this.o.secondary) return;
    if (this.o.store.caConfig().value) return;
    const clusterId = crypto.randomUUID();
    const config = defaultStoredConfig();
    const cfg = parseProviderConfig(config);
    const td = trustDomainFor(clusterId);
    const key = generateKeyPair(cfg.privateKeyBits);
    const serial = this.rootSerial();
    const certPem = createRoot({ privateKeyPem: key.privateKeyPem, trustDomain: td, serialNumber: serial, ttlMs: cfg.rootCertTtlMs, now: this.now() });
    const root = rootRow(certPem, cfg, td, null, serial);
    const r = await this.o.apply({
      type: 'connectCASet', Cas: 0,
      Config: { ClusterID: clusterId, Provider: 'consul', Config: config, ForceWithoutCrossSigning: false },
      Roots: [root],
      ProviderState: [{ ID: root.ID, PrivateKey: key.privateKeyPem, RootCert: root.RootCert }],
    });
    if (!r.ok) throw new Error(`could not initialize the CA: ${r.error.message}`);
    if (r.value === false) return; // another leader did it first
    this.log.info({ provider: 'consul', root_id: root.ID, trust_domain: td }, 'initialized primary datacenter CA with provider');
  }

  /** Root serial numbers: random, below 2^48 so that JSON numbers stay exact. */
  private rootSerial(): number {
    return crypto.randomInt(1, 2 ** 47);
  }

  /**
   * PUT /v1/connect/ca/configuration. Throws CAConfigError (400) on a bad configuration, and a
   * plain Error when the CA does not exist yet or a concurrent change won.
   */
  async setConfig(input: { Provider?: unknown; Config?: unknown; ForceWithoutCrossSigning?: unknown }): Promise<void> {
    const provider = input.Provider === undefined || input.Provider === '' ? 'consul' : input.Provider;
    if (provider !== 'consul') throw new CAConfigError(`unknown CA provider ${JSON.stringify(provider)}`);
    const rawConfig = input.Config ?? {};
    if (typeof rawConfig !== 'object' || rawConfig === null || Array.isArray(rawConfig)) throw new CAConfigError('Config must be an object');
    const given = rawConfig as Record<string, unknown>;
    const cfg = parseProviderConfig(given);
    const force = input.ForceWithoutCrossSigning === true;
    const { value: current } = this.o.store.caConfig();
    if (!current) throw new CAError('ERR_CA_NOT_READY', 'internal error: CA provider is nil');
    const roots = this.o.store.caRoots().value;
    const active = roots.find((r) => r.Active);
    if (!active) throw new CAError('ERR_CA_NOT_READY', 'internal error: no active root');
    const activeState = this.o.store.caProviderState(active.ID);
    if (!activeState) throw new CAError('ERR_CA_NOT_READY', 'internal error: the active root has no key');
    const td = trustDomainFor(current.ClusterID);
    const newConfig: Omit<CAConfiguration, 'CreateIndex' | 'ModifyIndex'> = {
      ClusterID: current.ClusterID, Provider: 'consul', Config: storedConfig(given), ForceWithoutCrossSigning: force,
    };

    const rotate = cfg.privateKey !== ''
      ? !keyMatchesCert(cfg.privateKey, active.RootCert) || cfg.rootCert.trim() !== active.RootCert.trim()
      : cfg.privateKeyType !== active.PrivateKeyType || cfg.privateKeyBits !== active.PrivateKeyBits;
    if (!rotate) {
      await this.write(newConfig, roots, undefined, current.ModifyIndex);
      this.log.info({}, 'CA provider config updated');
      return;
    }

    let keyPem: string;
    let certPem: string;
    const serial = this.rootSerial();
    if (cfg.privateKey !== '') {
      try {
        if (!keyMatchesCert(cfg.privateKey, cfg.rootCert)) throw new CAConfigError('the PrivateKey does not match the RootCert');
      } catch (err) {
        if (err instanceof CAConfigError) throw err;
        throw new CAConfigError(`error parsing PrivateKey or RootCert: ${(err as Error).message}`);
      }
      if (!certFacts(cfg.rootCert).isCA) throw new CAConfigError('RootCert is not a CA certificate');
      keyPem = cfg.privateKey;
      certPem = cfg.rootCert;
    } else {
      keyPem = generateKeyPair(cfg.privateKeyBits).privateKeyPem;
      certPem = createRoot({ privateKeyPem: keyPem, trustDomain: td, serialNumber: serial, ttlMs: cfg.rootCertTtlMs, now: this.now() });
    }
    // Cross-signed for as long as a leaf of the old root can live, at least Consul's 7 days.
    const crossTtl = Math.max(7 * 24 * 3_600_000, cfg.leafCertTtlMs);
    const intermediates = force ? null : [crossSign(certPem, active.RootCert, activeState.PrivateKey, crossTtl, this.now())];
    const newRoot = rootRow(certPem, cfg, td, intermediates, serial);
    if (newRoot.ID === active.ID) throw new CAConfigError('the new root is the active root');
    const nowIso = iso(new Date(this.now()));
    // Old roots stay (inactive) until every leaf they signed has expired.
    const keep = roots.filter((r) => r.Active || r.RotatedOutAt === '0001-01-01T00:00:00Z' || Date.parse(r.RotatedOutAt) + cfg.leafCertTtlMs > this.now());
    const next = [...keep.map((r) => (r.Active ? { ...r, Active: false, RotatedOutAt: nowIso } : r)), newRoot];
    await this.write(newConfig, next, [{ ID: newRoot.ID, PrivateKey: keyPem, RootCert: newRoot.RootCert }], current.ModifyIndex);
    this.log.info({ old_root: active.ID, new_root: newRoot.ID, cross_signed: !force }, 'CA rotated to new root');
  }

  /**
   * Drops inactive roots whose leaves have all expired: rotated out more than LeafCertTTL ago (a leaf
   * they signed lives at most that long). The leader runs it periodically (Consul's pruneCARoots).
   * Returns how many were dropped.
   */
  async pruneRoots(): Promise<number> {
    // A secondary's roots are the primary's, pruned there.
    if (this.o.secondary) return 0;
    const { value: config } = this.o.store.caConfig();
    if (!config) return 0;
    const cfg = parseProviderConfig(config.Config);
    const roots = this.o.store.caRoots().value;
    const keep = roots.filter((r) => r.Active || r.RotatedOutAt === '0001-01-01T00:00:00Z' || Date.parse(r.RotatedOutAt) + cfg.leafCertTtlMs > this.now());
    if (keep.length === roots.length) return 0;
    const { CreateIndex: _c, ModifyIndex: _m, ...rest } = config;
    await this.write(rest, keep, undefined, config.ModifyIndex);
    this.log.info({ pruned: roots.length - keep.length }, 'pruned old CA roots');
    return roots.length - keep.length;
  }

  private async write(config: Omit<CAConfiguration, 'CreateIndex' | 'ModifyIndex'>, roots: readonly Omit<CARoot, 'CreateIndex' | 'ModifyIndex'>[], state: { ID: string; PrivateKey: string; RootCert: string }[] | undefined, cas: number): Promise<void> {
    const r = await this.o.apply({
      type: 'connectCASet', Config: config, Cas: cas,
      Roots: roots.map(({ ID, Name, SerialNumber, SigningKeyID, ExternalTrustDomain, NotBefore, NotAfter, RootCert, IntermediateCerts, Active, RotatedOutAt, PrivateKeyType, PrivateKeyBits }) => ({
        ID, Name, SerialNumber, SigningKeyID, ExternalTrustDomain, NotBefore, NotAfter, RootCert, IntermediateCerts, Active, RotatedOutAt, PrivateKeyType, PrivateKeyBits,
      })),
      ...(state ? { ProviderState: state } : {}),
    });
    if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code });
    if (r.value === false) throw new Error('CA configuration changed concurrently; try again');
  }

  /** The active root's signer, parsed once per root. */
  private activeSigner(): Signer {
    const { value: config } = this.o.store.caConfig();
    const active = config ? this.o.store.caRoots().value.find((r) => r.Active) : undefined;
    if (!config || !active) throw new CAError('ERR_CA_NOT_READY', 'internal error: CA provider is nil');
    if (this.signer?.rootId === active.ID && this.signer.rowIndex === active.ModifyIndex
      && this.signer.stateCert === this.o.store.caProviderState(active.ID)?.RootCert) return this.signer;
    const state = this.o.store.caProviderState(active.ID);
    if (!state) throw new CAError('ERR_CA_NOT_READY', 'internal error: the active root has no key');
    // In a secondary datacenter the key is the intermediate's and state.RootCert the intermediate
    // the primary signed: leaves are issued by it and carry it as their chain.
    const intermediate = state.RootCert.trim() !== active.RootCert.trim();
    this.signer = {
      rootId: active.ID,
      rowIndex: active.ModifyIndex,
      ca: { certPem: state.RootCert, key: crypto.createPrivateKey(state.PrivateKey), trustDomain: trustDomainFor(config.ClusterID), datacenter: this.o.datacenter },
      cert: parseCert(state.RootCert),
      intermediates: intermediate ? [state.RootCert] : active.IntermediateCerts ?? [],
      stateCert: state.RootCert,
    };
    return this.signer;
  }

  /**
   * The primary's side of a secondary's CA initialization (Consul's ConnectCA.SignIntermediate): the
   * secondary's CSR signed by the active root as an intermediate CA, IntermediateCertTTL long.
   * Throws CAError (ERR_BAD_REQUEST for a CSR that does not verify or names another trust domain).
   */
  signIntermediate(csrPem: string): string {
    if (this.o.secondary) throw new CAError('ERR_BAD_REQUEST', 'only the primary datacenter signs intermediate CAs');
    const { value: config } = this.o.store.caConfig();
    if (!config) throw new CAError('ERR_CA_NOT_READY', 'internal error: CA provider is nil');
    const signer = this.activeSigner();
    try {
      const pem = signIntermediateCsr(csrPem, { certPem: signer.ca.certPem, key: signer.ca.key, trustDomain: signer.ca.trustDomain },
        parseProviderConfig(config.Config).intermediateCertTtlMs, this.now());
      this.log.info({ root_id: signer.rootId }, 'signed an intermediate CA for a secondary datacenter');
      return pem;
    } catch (err) {
      if (err instanceof CertificateError) throw new CAError('ERR_BAD_REQUEST', err.message);
      throw err;
    }
  }

  /**
   * A secondary's leader installs the primary's roots (and, when it has a new one, its intermediate
   * key and certificate for the active root). CAS on the configuration, so two leaders cannot
   * interleave. Returns false when a concurrent change won.
   */
  async installFromPrimary(i: { clusterId: string; roots: CARoot[]; intermediate?: { rootId: string; keyPem: string; certPem: string } }): Promise<boolean> {
    const { value: current } = this.o.store.caConfig();
    const config: Omit<CAConfiguration, 'CreateIndex' | 'ModifyIndex'> = {
      ClusterID: i.clusterId, Provider: 'consul', Config: current?.Config ?? defaultStoredConfig(), ForceWithoutCrossSigning: false,
    };
    try {
      await this.write(config, i.roots, i.intermediate ? [{ ID: i.intermediate.rootId, PrivateKey: i.intermediate.keyPem, RootCert: i.intermediate.certPem }] : undefined, current?.ModifyIndex ?? 0);
      return true;
    } catch (err) {
      if ((err as Error).message.startsWith('CA configuration changed concurrently')) return false;
      throw err;
    }
  }

  /** Signs an agent's CSR (Consul's ConnectCA.Sign). */
  sign(csrPem: string): IssuedCert {
    const { value: config } = this.o.store.caConfig();
    if (!config) throw new CAError('ERR_CA_NOT_READY', 'internal error: CA provider is nil');
    if (this.parsed?.index !== config.ModifyIndex) this.parsed = { index: config.ModifyIndex, cfg: parseProviderConfig(config.Config) };
    const cfg = this.parsed.cfg;
    // Consul: CSRMaxConcurrent applies only when CSRMaxPerSecond is 0.
    if (cfg.csrMaxPerSecond > 0) {
      this.bucket.setRate(cfg.csrMaxPerSecond);
      if (!this.bucket.take()) throw new CAError('ERR_RATE_LIMITED', RATE_LIMITED);
    } else if (cfg.csrMaxConcurrent > 0 && this.inflight >= cfg.csrMaxConcurrent) {
      throw new CAError('ERR_RATE_LIMITED', RATE_LIMITED);
    }
    this.inflight++;
    try {
      const signer = this.activeSigner();
      let parsed;
      try {
        parsed = checkCsr(csrPem, signer.ca);
      } catch (err) {
        if (err instanceof CertificateError) throw new CAError('ERR_BAD_REQUEST', err.message);
        throw err;
      }
      const leaf = signLeaf(parsed, signer.ca, signer.cert, cfg.leafCertTtlMs, this.now());
      // The chain a peer that trusts older roots needs (Consul appends the active root's intermediates).
      const certPem = [leaf.certPem, ...signer.intermediates].map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
      const index = this.o.store.caRoots().index;
      const out: IssuedCert = {
        SerialNumber: leaf.serialNumber,
        CertPEM: certPem,
        PrivateKeyPEM: '',
        ValidAfter: iso(leaf.validAfter),
        ValidBefore: iso(leaf.validBefore),
        CreateIndex: index,
        ModifyIndex: index,
      };
      if (parsed.id.kind === 'service') {
        out.Service = parsed.id.service;
        out.ServiceURI = parsed.uri;
      } else if (parsed.id.kind === 'agent') {
        out.Agent = parsed.id.node;
        out.AgentURI = parsed.uri;
      }
      return out;
    } finally {
      this.inflight--;
    }
  }
}
