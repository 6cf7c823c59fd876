// Leaf certificates on the agent that owns the services (Consul's agent/leafcert): the agent makes
// each key pair itself and sends only a CSR to a server, so private keys never leave it. Leaves are
// cached per service name and renewed in the background at a random point between 60% and 90% of
// their lifetime (connect/policy.ts renewAt), and at once when the active root changes (a blocking
// watch of the roots). Blocking reads of a leaf wait for its index to move past the caller's.
import { X509Certificate } from 'node:crypto';
import { renewAt } from '../connect/policy.ts';
import { formatSpiffeId, serviceId } from '../connect/spiffe.ts';
import { createCsr, generateKeyPair } from './certs.ts';
import type { CARootsResponse, IssuedCert } from './types.ts';
import { sleep } from '../sleep.ts';

/** How this agent reaches the servers' CA (forwarded HTTP on a client, the local CA on a server). */
export interface CAServerApi {
  /** Blocking read of the roots: answers once their index is past `minIndex` (or the wait ends). */
  roots(minIndex: number, signal: AbortSignal): Promise<{ index: number; value: CARootsResponse }>;
  /** Signs a CSR; rejects with `.code === 'ERR_RATE_LIMITED'` when the server is rate limiting. */
  sign(csrPem: string, signal: AbortSignal): Promise<IssuedCert>;
}

export interface LeafCertsOptions {
  api: CAServerApi;
  datacenter: string;
  /** RSA key size of leaf keys. */
  keyBits?: number;
  random?: () => number;
  now?: () => number;
  onError?: (err: unknown, what: string) => void;
}

interface Entry {
  service: string;
  leaf?: IssuedCert;
  /** The active root when this leaf was signed. */
  rootId: string;
  issuing?: Promise<void>;
  timer?: NodeJS.Timeout;
  waiters: Set<() => void>;
}

/** Longest setTimeout delay Node accepts; longer renewals re-arm in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

function issuedBy(leafPem: string, rootPem: string): boolean {
  try {
    return new X509Certificate(leafPem).checkIssued(new X509Certificate(rootPem));
  } catch {
    return false;
  }
}

export class LeafCerts {
  private readonly o: LeafCertsOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly ac = new AbortController();
  private roots: { index: number; value: CARootsResponse } | undefined;
  private rootsReady: Promise<void> | undefined;
  /** Index handed to leaves: increases with every issue, so a blocking read sees each renewal. */
  private counter = 0;

  constructor(o: LeafCertsOptions) {
    this.o = o;
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  close(): void {
    this.ac.abort();
    for (const e of this.entries.values()) {
      clearTimeout(e.timer);
      for (const w of e.waiters) w();
    }
  }

  /** The active root's ID as last seen (tests, metrics). */
  activeRootId(): string {
    return this.roots?.value.ActiveRootID ?? '';
  }

  /**
   * The service's leaf (with its private key). With `minIndex`, waits up to `waitMs` for a leaf
   * whose index is past it (a renewal), as Consul's blocking leaf endpoint does.
   */
  async get(service: string, minIndex: number, waitMs: number, signal: AbortSignal): Promise<IssuedCert> {
    await this.ensureRoots(signal);
    let e = this.entries.get(service);
    if (!e) {
      e = { service, rootId: '', waiters: new Set() };
      this.entries.set(service, e);
    }
    if (!e.leaf) await this.issue(e, signal, true);
    if (minIndex > 0 && e.leaf!.ModifyIndex <= minIndex) {
      const entry = e;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          entry.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, waitMs);
        signal.addEventListener('abort', done, { once: true });
        entry.waiters.add(done);
      });
    }
    return e.leaf!;
  }

  private ensureRoots(signal: AbortSignal): Promise<void> {
    if (this.roots) return Promise.resolve();
    this.rootsReady ??= (async () => {
      this.roots = await this.o.api.roots(0, AbortSignal.any([signal, this.ac.signal]));
      void this.watchRoots();
    })().finally(() => {
      this.rootsReady = undefined;
    });
    return this.rootsReady;
  }

  /** Follows the roots; a new active root renews every cached leaf at once. */
  private async watchRoots(): Promise<void> {
    let failures = 0;
    while (!this.ac.signal.aborted) {
      try {
        const next = await this.o.api.roots(this.roots?.index ?? 0, this.ac.signal);
        failures = 0;
        const changed = next.value.ActiveRootID !== this.roots?.value.ActiveRootID;
        this.roots = next;
        if (changed) {
          for (const e of this.entries.values()) if (e.leaf && e.rootId !== next.value.ActiveRootID) void this.renew(e);
        }
      } catch (err) {
        if (this.ac.signal.aborted) return;
        failures++;
        this.o.onError?.(err, 'watching the CA roots');
        await sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(failures, 6)), this.ac.signal);
      }
    }
  }

  private async renew(e: Entry): Promise<void> {
    try {
      await this.issue(e, this.ac.signal, false);
    } catch (err) {
      if (this.ac.signal.aborted) return;
      this.o.onError?.(err, `renewing the leaf certificate of ${e.service}`);
      clearTimeout(e.timer);
      e.timer = setTimeout(() => void this.renew(e), 5_000 + Math.floor((this.o.random ?? Math.random)() * 5_000));
      e.timer.unref();
    }
  }

  /** Makes a key and CSR, has it signed (retrying while rate limited), stores and announces it. */
  private issue(e: Entry, signal: AbortSignal, first: boolean): Promise<void> {
    e.issuing ??= (async () => {
      const roots = this.roots!.value;
      const key = generateKeyPair(this.o.keyBits ?? 2048);
      const csr = createCsr(serviceId(roots.TrustDomain, this.o.datacenter, e.service), key.privateKeyPem);
      let cert: IssuedCert | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          cert = await this.o.api.sign(csr, AbortSignal.any([signal, this.ac.signal]));
          break;
        } catch (err) {
          const limited = (err as { code?: unknown }).code === 'ERR_RATE_LIMITED';
          // A caller waiting for its first leaf gets the rate-limit error after a few tries.
          if (!limited || signal.aborted || (first && attempt >= 5)) throw err;
          const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
          await sleep(backoff / 2 + Math.floor((this.o.random ?? Math.random)() * backoff / 2), signal);
        }
      }
      this.counter = Math.max(this.counter + 1, cert.ModifyIndex + 1);
      e.leaf = {
        ...cert,
        PrivateKeyPEM: key.privateKeyPem,
        Service: e.service,
        ServiceURI: cert.ServiceURI ?? formatSpiffeId(serviceId(roots.TrustDomain, this.o.datacenter, e.service)),
        CreateIndex: this.counter,
        ModifyIndex: this.counter,
      };
      // Signed by the active root as this agent knows it? A server that has not applied a rotation
      // yet signs with the old one: such a leaf is kept (it is valid) but renewed again soon.
      const active = this.roots!.value.Roots.find((r) => r.ID === this.roots!.value.ActiveRootID);
      const byActive = active !== undefined && issuedBy(cert.CertPEM, active.RootCert);
      e.rootId = byActive ? this.roots!.value.ActiveRootID : '';
      if (byActive) this.schedule(e);
      else {
        clearTimeout(e.timer);
        e.timer = setTimeout(() => void this.renew(e), 1_000);
        e.timer.unref();
      }
      for (const w of [...e.waiters]) w();
    })().finally(() => {
      e.issuing = undefined;
    });
    return e.issuing;
  }

  private schedule(e: Entry): void {
    clearTimeout(e.timer);
    const at = renewAt(Date.parse(e.leaf!.ValidAfter), Date.parse(e.leaf!.ValidBefore), this.o.random ?? Math.random);
    const arm = (): void => {
      const delay = at - this.now();
      if (delay > MAX_TIMER_MS) {
        e.timer = setTimeout(arm, MAX_TIMER_MS);
      } else {
        e.timer = setTimeout(() => void this.renew(e), Math.max(0, delay));
      }
      e.timer.unref();
    };
    arm();
  }
}
