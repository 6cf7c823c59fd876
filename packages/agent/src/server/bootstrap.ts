// -bootstrap-expect N: exactly one Raft configuration is created, however the servers start.
//
// Consul (agent/consul/server_serf.go maybeBootstrap): once N servers of the datacenter are known,
// each asks the others whether they already have Raft state; if none has, each bootstraps with the
// same configuration of all of them. Identical configurations written at index 1..N, term 1 are
// safe (Raft's log matching holds), but only if every founder writes the SAME set. With more than N
// servers expecting N, or a view that is still growing, two servers could pick different sets and
// write different entries at the same index and term: a split brain the log cannot detect.
//
// Trellis adds a two-phase agreement on the set, carried in every Status answer (BootstrapVote):
//   1. Propose: the N smallest IDs among the alive servers of this datacenter with the same expect
//      (self included). When every member of that set proposes the same set, lock it: persist it
//      (so a restart cannot change it), and never propose anything else again.
//      A server that sees a peer locked on a set that contains itself adopts (locks) that set.
//   2. Bootstrap once every member of the locked set reports that same set locked.
// Safety does not depend on views converging: a lock is permanent and a bootstrap needs every
// member locked on the same set, so two different sets that share a member can never both be
// bootstrapped (with at most 2N-1 servers expecting N, any two N-sets share one).
//
// Never bootstrap next to an existing cluster: a server of the datacenter that already has Raft
// state (and is not part of our locked set) makes this server join it instead (start Raft empty and
// wait for its leader to add us). A peer with a different expect value blocks bootstrap and is
// logged, as in Consul; so does a peer started with -bootstrap.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import type { DiscoveredServer, ServerDiscovery } from './discovery.ts';
import type { StatusResponseMsg } from '../rpc/proto.ts';

export interface BootstrapVote {
  candidates: string[];
  locked: boolean;
}

/** A peer's answer to Status, as far as bootstrap cares; undefined when it did not answer. */
export interface PeerBootstrapState {
  hasState: boolean;
  vote: BootstrapVote;
}

export interface BootstrapInput {
  self: { id: string; dc: string; expect: number };
  /** Other servers from discovery (any datacenter, any status). */
  servers: DiscoveredServer[];
  /** Fresh Status answers of this round, by server ID. */
  answers: ReadonlyMap<string, PeerBootstrapState>;
  vote: BootstrapVote;
}

export type BootstrapDecision =
  | { kind: 'wait'; reason: string; vote: BootstrapVote }
  | { kind: 'lock'; vote: BootstrapVote; reason: string }
  | { kind: 'bootstrap'; members: string[] }
  | { kind: 'join'; reason: string }
  | { kind: 'blocked'; reason: string; vote: BootstrapVote };

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The pure decision of one round. */
export function decideBootstrap(input: BootstrapInput): BootstrapDecision {
  const { self, answers, vote } = input;
  const N = self.expect;
  const peers = input.servers.filter((s) => s.dc === self.dc && s.id !== self.id && s.status === 'alive');

  if (vote.locked) {
    const missing = vote.candidates.filter((id) => {
      if (id === self.id) return false;
      const a = answers.get(id);
      return !a || !a.vote.locked || !sameSet(a.vote.candidates, vote.candidates);
    });
    if (missing.length === 0) return { kind: 'bootstrap', members: [...vote.candidates] };
    return { kind: 'wait', reason: `locked on [${vote.candidates.join(', ')}]; waiting for ${missing.join(', ')} to lock the same set`, vote };
  }

  for (const p of peers) {
    const a = answers.get(p.id);
    if (a?.vote.locked && a.vote.candidates.includes(self.id)) {
      return { kind: 'lock', vote: { candidates: [...a.vote.candidates], locked: true }, reason: `adopting the set ${p.name || p.id} locked` };
    }
  }
  const withState = peers.find((p) => answers.get(p.id)?.hasState);
  if (withState) return { kind: 'join', reason: `server ${withState.name || withState.id} (${withState.raftAddr}) already has Raft state` };

  const bootstrapMode = peers.find((p) => p.bootstrap);
  if (bootstrapMode) {
    return { kind: 'blocked', vote, reason: `server ${bootstrapMode.name || bootstrapMode.id} runs in bootstrap mode (-bootstrap); -bootstrap-expect is disabled next to it` };
  }
  const conflicting = peers.filter((p) => p.expect !== 0 && p.expect !== N);
  if (conflicting.length > 0) {
    const list = conflicting.map((p) => `${p.name || p.id} expects ${p.expect}`).join(', ');
    return { kind: 'blocked', vote, reason: `conflicting -bootstrap-expect values: this server expects ${N}, ${list}; all servers must expect the same number` };
  }

  const pool = [self.id, ...peers.filter((p) => p.expect === N).map((p) => p.id)].sort();
  if (pool.length < N) {
    return { kind: 'wait', reason: `waiting for ${N} servers with -bootstrap-expect ${N} in datacenter ${self.dc}; ${pool.length} known`, vote: { candidates: [], locked: false } };
  }
  const candidates = pool.slice(0, N);
  const next: BootstrapVote = { candidates, locked: false };
  if (!candidates.includes(self.id)) {
    return { kind: 'wait', reason: `the founding set [${candidates.join(', ')}] does not include this server; it will be added by their leader`, vote: next };
  }
  const disagree = candidates.filter((id) => id !== self.id && !sameSet(answers.get(id)?.vote.candidates ?? [], candidates));
  if (disagree.length === 0) return { kind: 'lock', vote: { candidates, locked: true }, reason: 'every founding server proposes the same set' };
  return { kind: 'wait', reason: `proposing [${candidates.join(', ')}]; waiting for ${disagree.join(', ')} to agree`, vote: next };
}

export interface BootstrapCoordinatorOptions {
  self: { id: string; dc: string; expect: number; raftAddr: string };
  discovery: ServerDiscovery;
  /** Status of a peer (by its address); rejects when it does not answer. */
  status(address: string, timeoutMs: number): Promise<StatusResponseMsg>;
  /** Where the lock is persisted (inside the Raft directory, so wiping Raft state wipes it too). */
  lockFile: string | undefined;
  logger: Logger;
  intervalMs?: number;
}

/** `members`: the founding configuration, ID → Raft address, this server included. */
export type BootstrapOutcome = { kind: 'bootstrap'; members: Record<string, string> } | { kind: 'join' };

export class BootstrapCoordinator {
  readonly #o: BootstrapCoordinatorOptions;
  readonly #log: Logger;
  #vote: BootstrapVote = { candidates: [], locked: false };
  #lastReason = '';

  constructor(o: BootstrapCoordinatorOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.server.bootstrap' });
  }

  /** What Status answers carry. */
  vote(): BootstrapVote {
    return { candidates: [...this.#vote.candidates], locked: this.#vote.locked };
  }

  async loadLock(): Promise<void> {
    if (!this.#o.lockFile) return;
    let text: string;
    try {
      text = await fs.readFile(this.#o.lockFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const doc = JSON.parse(text) as { candidates?: unknown };
    if (!Array.isArray(doc.candidates) || !doc.candidates.every((c) => typeof c === 'string')) {
      throw new Error(`${this.#o.lockFile} is not a bootstrap lock written by Trellis; delete it only if no server of this datacenter ever bootstrapped`);
    }
    this.#vote = { candidates: doc.candidates as string[], locked: true };
    this.#log.info({ candidates: this.#vote.candidates }, 'bootstrap set locked by an earlier run');
  }

  /** Runs rounds until this server bootstraps or finds a cluster to join. */
  async run(signal: AbortSignal): Promise<BootstrapOutcome> {
    const interval = this.#o.intervalMs ?? 500;
    for (;;) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('bootstrap aborted');
      const outcome = await this.round();
      if (outcome) return outcome;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  }

  /** One round: ask the peers, decide, act. Exposed for tests. */
  async round(): Promise<BootstrapOutcome | undefined> {
    const { self } = this.#o;
    const servers = this.#o.discovery.servers();
    const peers = servers.filter((s) => s.dc === self.dc && s.status === 'alive' && s.id !== self.id);
    const answers = new Map<string, PeerBootstrapState>();
    await Promise.all(peers.map(async (p) => {
      try {
        const r = await this.#o.status(p.raftAddr, 1000);
        if (r.server?.id !== p.id) return;
        answers.set(p.id, { hasState: r.hasState ?? false, vote: { candidates: r.bootstrap?.candidates ?? [], locked: r.bootstrap?.locked ?? false } });
      } catch {
        // Unreachable this round: it counts as not agreeing.
      }
    }));
    const d = decideBootstrap({ self, servers, answers, vote: this.#vote });
    switch (d.kind) {
      case 'bootstrap': {
        const addr = new Map(servers.map((s) => [s.id, s.raftAddr]));
        addr.set(self.id, self.raftAddr);
        const missing = d.members.filter((id) => !addr.has(id));
        if (missing.length > 0) {
          this.#note('wait', `locked set members ${missing.join(', ')} are not in discovery (no address known)`);
          return undefined;
        }
        const members = Object.fromEntries(d.members.map((id) => [id, addr.get(id)!]));
        this.#log.info({ members }, 'bootstrapping the cluster with the agreed founding set');
        return { kind: 'bootstrap', members };
      }
      case 'join':
        this.#log.info({ reason: d.reason }, 'not bootstrapping: joining an existing cluster');
        return { kind: 'join' };
      case 'lock':
        await this.#persist(d.vote);
        this.#vote = d.vote;
        this.#log.info({ candidates: d.vote.candidates, reason: d.reason }, 'bootstrap set locked');
        return this.round();
      case 'blocked':
        this.#vote = d.vote;
        this.#note('error', d.reason);
        return undefined;
      case 'wait':
        this.#vote = d.vote;
        this.#note('info', d.reason);
        return undefined;
    }
  }

  async #persist(vote: BootstrapVote): Promise<void> {
    if (!this.#o.lockFile) return;
    await fs.mkdir(path.dirname(this.#o.lockFile), { recursive: true });
    const tmp = `${this.#o.lockFile}.tmp`;
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ candidates: vote.candidates, lockedAt: new Date().toISOString() }) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.#o.lockFile);
  }

  /** Logs a waiting reason once per change (rounds run twice a second). */
  #note(level: 'info' | 'error' | 'wait', reason: string): void {
    if (reason === this.#lastReason) return;
    this.#lastReason = reason;
    if (level === 'error') this.#log.error({ reason }, `cannot bootstrap: ${reason}`);
    else this.#log.info({ reason }, 'bootstrap: waiting');
  }
}
