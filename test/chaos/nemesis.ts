// The fault schedule: quiet, fault, heal, quiet, fault, … for the run's duration. The seed decides
// the order of faults (a seeded shuffle, cycled, so a short run still tries each one), the windows'
// lengths and the targets; "the leader" is whoever leads when the fault starts. Every fault and heal
// is logged with its time. One fault at a time, each healed before the next.
import type { Rng } from '../../packages/raft/src/sim/rng.ts';
import { request } from '../support/http.ts';
import type { ChaosAgent, ChaosCluster } from './cluster.ts';
import { SERVER_PORT } from './cluster.ts';
import type { Fault } from './options.ts';
import { DelayRelay } from './relay.ts';
import { LoopbackNet } from './loopback.ts';
import { Netns } from '../support/netns.ts';
import { appliedIndex, lockDelayProbe, observedClockSkewS } from './hostFaults.ts';

export interface FaultEvent {
  fault: Fault;
  /** ms since the run started. */
  start: number;
  end?: number;
  targets: string[];
  detail: string;
  /** The Raft voters when the fault began. */
  voters?: string[];
  /** For a minority partition: the side with a majority of servers. */
  majority?: string[];
  /** After the heal: ms until every server named one leader again (undefined: not within the probe). */
  leaderAfterHealMs?: number;
  /** The last disagreeing view (server→leader it named) before they agreed, for diagnosis. */
  leaderViewsAfterHeal?: string;
  /** After the heal: ms until every agent listed every member alive. */
  membersAliveAfterHealMs?: number;
  /** When the fault cut off the leader: ms until the other servers agreed on a new one. */
  failoverMs?: number;
  /** For kill: ms from the kill until an observer server listed the member as failed. */
  detectedMs?: number;
  /** For loss: members an agent declared failed while every member was alive. */
  falseFailures?: string[];
  /** Loopback mode: datagrams and TCP connections the relay's blocks stopped during the window. */
  relayBlocked?: number;
  /** disk-stall: evidence it happened (hostFaults.ts): calls the shim held, applied Raft indexes at stall and heal. */
  stall?: { calls: number; holdingAtHeal: number; target: [number | null, number | null]; others: Record<string, [number | null, number | null]> };
  /** clock-step: the offset written, and the skew the agent's HTTP Date header showed during the window. */
  clock?: { offsetS: number; observedSkewS: number | null; lockDelay?: string[]; jumpS?: number };
}

export interface NemesisOptions {
  faults: Fault[];
  durationMs: number;
  rng: Rng;
  t0: number;
  log: (line: string) => void;
  stopped: () => boolean;
  /** Window lengths (ms): faults last faultMs, quiet between them quietMs. */
  faultMs?: [number, number];
  quietMs?: [number, number];
}

const ALIVE = 1;
const FAILED = 4;

export class Nemesis {
  readonly events: FaultEvent[] = [];
  readonly #c: ChaosCluster;
  readonly #o: NemesisOptions;
  readonly #relays: DelayRelay[] = [];
  readonly #probes: Promise<void>[] = [];
  #killed: ChaosAgent[] = [];
  #paused: ChaosAgent[] = [];
  #stalled: Array<{ a: ChaosAgent; ev: FaultEvent; heldBefore: number }> = [];
  #stepped: ChaosAgent[] = [];
  /** The clock-step window's probe (skew, lock-delay): the heal waits for it (≤ 5 s) before stepping back. */
  #clockProbe: Promise<void> | undefined;
  #relayBlockedAtStart = 0;

  constructor(cluster: ChaosCluster, o: NemesisOptions) {
    this.#c = cluster;
    this.#o = o;
  }

  #now(): number {
    return Math.round(performance.now() - this.#o.t0);
  }

  async #sleep(ms: number): Promise<void> {
    const end = performance.now() + ms;
    while (!this.#o.stopped() && performance.now() < end) await new Promise((r) => setTimeout(r, Math.min(200, end - performance.now())));
  }

  /** Runs the schedule until durationMs has passed; the last fault is always healed. */
  async run(): Promise<void> {
    const o = this.#o;
    const order = o.rng.shuffle([...o.faults]);
    const [fLo, fHi] = o.faultMs ?? [5000, 9000];
    const [qLo, qHi] = o.quietMs ?? [3000, 6000];
    await this.#sleep(o.rng.range(qLo, qHi));
    for (let i = 0; !o.stopped(); i++) {
      const windowMs = o.rng.range(fLo, fHi);
      if (this.#now() + windowMs > o.durationMs) break;
      const fault = order[i % order.length]!;
      const leaderBefore = (await this.#c.leader())?.name;
      // Autopilot may have removed a server that was dead for a while (and re-added it as a
      // non-voter): with fewer voters, one more fault can take the quorum away.
      const voters = await this.#c.voters(this.#c.servers.filter((s) => s.running && !s.paused));
      const loop = this.#c.net instanceof LoopbackNet ? this.#c.net : undefined;
      this.#relayBlockedAtStart = loop?.blockedTotal() ?? 0;
      const ev = await this.#inject(fault, leaderBefore);
      if (loop && fault.startsWith('partition')) {
        ev.detail += loop.style === 'drop'
          ? '; relay: drop (connections stalled, new ones held)'
          : '; relay: reject (connections reset, new ones refused)';
      }
      ev.voters = voters;
      if (voters && voters.length < this.#c.servers.length) ev.detail += ` [only ${voters.length} voters: ${voters.join(',')}]`;
      this.events.push(ev);
      if (leaderBefore && ev.targets.length === 1 && ev.targets[0] === leaderBefore && fault !== 'partition-oneway' && fault !== 'clock-step') {
        this.#probes.push(this.#watchFailover(ev, leaderBefore));
      }
      o.log(`+${(ev.start / 1000).toFixed(1)}s FAULT ${fault}: ${ev.detail}`);
      await this.#sleep(windowMs);
      await this.heal(ev);
      if (this.#now() + qLo > o.durationMs) break;
      await this.#sleep(o.rng.range(qLo, qHi));
    }
  }

  /** Waits for the background measurements (recovery, detection) still running; they end within 30 s. */
  async settle(): Promise<void> {
    await Promise.all(this.#probes);
  }

  async #inject(fault: Fault, leader: string | undefined): Promise<FaultEvent> {
    const c = this.#c;
    const rng = this.#o.rng;
    const start = this.#now();
    const servers = c.servers.map((s) => s.name);
    const all = c.agents.map((a) => a.name);
    switch (fault) {
      case 'partition': {
        const shuffled = rng.shuffle([...servers]);
        const minority = shuffled.slice(0, Math.floor(servers.length / 2));
        const majority = shuffled.slice(minority.length);
        for (const cl of c.clients) (rng.chance(0.5) ? minority : majority).push(cl.name);
        await c.net.partition([minority, majority]);
        return { fault, start, targets: minority, majority, detail: `symmetric partition {${minority.join(',')}} | {${majority.join(',')}} (leader was ${leader ?? 'unknown'})` };
      }
      case 'partition-oneway': {
        const x = leader && rng.chance(0.5) ? leader : rng.pick(servers);
        const others = all.filter((n) => n !== x);
        if (rng.chance(0.5)) {
          await c.net.dropOneWay([x], others);
          return { fault, start, targets: [x], detail: `one-way: nobody hears ${x}${x === leader ? ' (the leader)' : ''}; ${x} still hears everyone` };
        }
        await c.net.dropOneWay(others, [x]);
        return { fault, start, targets: [x], detail: `one-way: ${x}${x === leader ? ' (the leader)' : ''} hears nobody; everyone still hears ${x}` };
      }
      case 'partition-leader': {
        const x = leader ?? rng.pick(servers);
        await c.net.isolate(x);
        return { fault, start, targets: [x], majority: all.filter((n) => n !== x), detail: `isolated ${x}${leader ? ' (the leader)' : ' (no agreed leader: a random server)'}` };
      }
      case 'partition-ring': {
        const ring = rng.shuffle([...servers]);
        await c.net.ring(ring);
        return { fault, start, targets: ring, detail: `majorities ring ${ring.join('-')}-${ring[0]} (each server hears its neighbours); clients unaffected` };
      }
      case 'partition-bridge': {
        const order = rng.shuffle([...servers]);
        await c.net.bridge(order);
        const mid = Math.floor(order.length / 2);
        return { fault, start, targets: order, detail: `bridge {${order.slice(0, mid).join(',')}} - ${order[mid]} - {${order.slice(mid + 1).join(',')}}` };
      }
      case 'loss': {
        const pct = rng.range(10, 30);
        await c.net.loss(pct);
        const ev: FaultEvent = {
          fault, start, targets: all, falseFailures: [],
          detail: c.net instanceof LoopbackNet
            ? `${pct}% packet loss between all members (relay: UDP datagrams dropped, TCP chunks delivered a retransmission timeout late)`
            : `${pct}% packet loss between all members (nft numgen)`,
        };
        this.#probes.push(this.#watchFalseFailures(ev));
        return ev;
      }
      case 'delay': {
        const delay = rng.range(50, 200);
        const jitter = Math.round(delay / 2);
        if (c.net instanceof LoopbackNet) {
          await c.net.setDelay(delay, jitter);
          return { fault, start, targets: all, detail: `${delay} ms ± ${jitter} ms on every link between members (TCP and UDP), in the loopback relay` };
        }
        await this.#startDelay(delay, jitter);
        return { fault, start, targets: servers, detail: `${delay} ms ± ${jitter} ms on server-port (Raft, RPC) TCP between servers, via a user-space relay` };
      }
      case 'kill': {
        const pool = rng.chance(0.3) && c.clients.length > 0 ? c.clients.map((a) => a.name) : servers;
        const x = pool === servers && leader && rng.chance(0.5) ? leader : rng.pick(pool);
        const a = c.byName(x);
        const killedAt = performance.now();
        await a.kill();
        // Loopback: the relay's front for it closes, so peers are refused as by a dead host's ports.
        if (c.net instanceof LoopbackNet) await c.net.down(x);
        this.#killed.push(a);
        const ev: FaultEvent = { fault, start, targets: [x], detail: `kill -9 ${x}${x === leader ? ' (the leader)' : ''}; restarted at heal` };
        this.#probes.push(this.#watchDetection(ev, a, killedAt));
        return ev;
      }
      case 'pause': {
        const x = leader && rng.chance(0.6) ? leader : rng.pick(servers);
        const a = c.byName(x);
        a.pause();
        this.#paused.push(a);
        return { fault, start, targets: [x], detail: `SIGSTOP ${x}${x === leader ? ' (the leader)' : ''}; SIGCONT at heal` };
      }
      case 'disk-stall': {
        const x = leader && rng.chance(0.6) ? leader : rng.pick(servers);
        const a = c.byName(x);
        const before = await this.#applied();
        const heldBefore = c.hostFaults.stallCounts(a).held;
        c.hostFaults.setStall(a, true);
        const ev: FaultEvent = {
          fault, start, targets: [x],
          detail: `disk stall on ${x}${x === leader ? ' (the leader)' : ''}: its writes and syncs under its data directory held (LD_PRELOAD shim) until the heal`,
          stall: { calls: 0, holdingAtHeal: 0, target: [before[x] ?? null, null], others: Object.fromEntries(servers.filter((n) => n !== x).map((n) => [n, [before[n] ?? null, null]])) },
        };
        this.#stalled.push({ a, ev, heldBefore });
        return ev;
      }
      case 'clock-step':
      case 'clock-jump': {
        const x = leader && rng.chance(0.5) ? leader : rng.pick(all);
        const a = c.byName(x);
        let ev: FaultEvent;
        if (fault === 'clock-step') {
          // Seconds to minutes, either way.
          const offsetS = (rng.chance(0.5) ? 1 : -1) * rng.pick([5, 15, 30, 60, 120, 300]);
          c.hostFaults.setClockOffset(a, offsetS);
          this.#stepped.push(a);
          ev = {
            fault, start, targets: [x], clock: { offsetS, observedSkewS: null },
            detail: `wall clock of ${x}${x === leader ? ' (the leader)' : ''} stepped ${offsetS > 0 ? '+' : ''}${offsetS} s (libfaketime; monotonic clock untouched); stepped back at heal`,
          };
        } else {
          // Forward only, and kept: both clocks jump as after a VM pause, and never come back.
          const jumpS = rng.pick([5, 10, 30, 60]);
          const offsetS = c.hostFaults.clockOffset(a) + jumpS;
          c.hostFaults.setClockOffset(a, offsetS);
          ev = {
            fault, start, targets: [x], clock: { offsetS, observedSkewS: null, jumpS },
            detail: `monotonic and wall clocks of ${x}${x === leader ? ' (the leader)' : ''} jumped +${jumpS} s (libfaketime; +${offsetS} s in all since it started); not undone (a monotonic clock never goes back)`,
          };
        }
        // libfaketime re-reads the offset within 1 s, Node's Date header within 1 s more.
        // Then lock-delay across the two clocks: a session destroyed through one agent, the lock
        // taken at once through the other, both ways; the lock-delay must hold (hostFaults.ts).
        const other = c.byName(rng.pick(servers.filter((n) => n !== x)));
        const n = this.events.length;
        this.#clockProbe = (async () => {
          await new Promise((r) => setTimeout(r, 2500));
          if (ev.end !== undefined) return;
          ev.clock!.observedSkewS = (await observedClockSkewS(a.url)) ?? null;
          const ways = [[other, a], [a, other]] as const;
          ev.clock!.lockDelay = [];
          for (const [i, [d, q]] of ways.entries()) {
            if (ev.end !== undefined) break;
            const p = await lockDelayProbe(d.url, q.url, `chaos-probe/lock-delay/${n}-${i}`);
            ev.clock!.lockDelay.push(`destroy via ${d.name}, acquire via ${q.name}: ${p.result}${p.why ? ` (${p.why})` : ''}`);
          }
        })();
        this.#probes.push(this.#clockProbe);
        return ev;
      }
    }
  }

  /** Undoes every fault in force, and measures recovery in the background. */
  async heal(ev?: FaultEvent): Promise<void> {
    const c = this.#c;
    await c.net.heal();
    if (this.#stalled.length > 0) {
      // Evidence first, while the disk is still stalled: the applied indexes, the calls held.
      const now = await this.#applied();
      for (const { a, ev: sev, heldBefore } of this.#stalled) {
        const st = sev.stall!;
        const counts = c.hostFaults.stallCounts(a);
        st.calls = counts.held - heldBefore;
        st.holdingAtHeal = counts.holding;
        st.target[1] = now[a.name] ?? null;
        for (const n of Object.keys(st.others)) st.others[n]![1] = now[n] ?? null;
        const d = (p: [number | null, number | null]): string => (p[0] === null || p[1] === null ? '?' : `+${p[1] - p[0]}`);
        sev.detail += `; ${st.calls} writes/syncs held (${st.holdingAtHeal} still held at heal); applied index during the stall: ${a.name} ${d(st.target)}, ` +
          Object.entries(st.others).map(([n, p]) => `${n} ${d(p)}`).join(', ');
        c.hostFaults.setStall(a, false);
      }
      this.#stalled = [];
    }
    if (this.#clockProbe) await Promise.race([this.#clockProbe, new Promise((r) => setTimeout(r, 5000))]);
    this.#clockProbe = undefined;
    for (const a of this.#stepped) c.hostFaults.setClockOffset(a, 0);
    if (ev?.clock) {
      ev.detail += `; its HTTP Date header showed ${ev.clock.observedSkewS === null ? 'no answer' : `${ev.clock.observedSkewS > 0 ? '+' : ''}${ev.clock.observedSkewS} s`} during the window`;
      if (ev.clock.lockDelay?.length) ev.detail += `; lock-delay (10 s): ${ev.clock.lockDelay.join('; ')}`;
    }
    this.#stepped = [];
    for (const r of this.#relays) { r.delayMs = 0; r.jitterMs = 0; }
    for (const a of this.#paused) a.resume();
    this.#paused = [];
    for (const a of this.#killed) {
      if (a.running) continue;
      if (c.net instanceof LoopbackNet) await c.net.up(a.name);
      a.start();
    }
    this.#killed = [];
    if (!ev) return;
    ev.end = this.#now();
    if (c.net instanceof LoopbackNet) {
      ev.relayBlocked = c.net.blockedTotal() - this.#relayBlockedAtStart;
      if (ev.fault.startsWith('partition')) ev.detail += `; the relay stopped ${ev.relayBlocked} datagrams and connections`;
    }
    // Evidence that the delayed connections really went through the relay.
    if (ev.fault === 'delay' && !(c.net instanceof LoopbackNet)) ev.detail += `; ${this.#relays.reduce((n, r) => n + r.chunks, 0)} chunks relayed so far`;
    this.#o.log(`+${(ev.end / 1000).toFixed(1)}s HEAL  ${ev.fault}`);
    this.#probes.push(this.#watchRecovery(ev));
  }

  async #startDelay(delay: number, jitter: number): Promise<void> {
    const c = this.#c;
    const nn = c.net;
    if (!(nn instanceof Netns)) throw new Error('the delay relay with nft redirects is for network namespaces');
    const rng = this.#o.rng.fork('relay');
    if (this.#relays.length === 0) {
      for (const s of c.servers) this.#relays.push(await DelayRelay.start(nn.hostAddress, { host: s.address, port: SERVER_PORT }, () => rng.float()));
    }
    for (const r of this.#relays) { r.delayMs = delay; r.jitterMs = jitter; }
    await Promise.all(c.servers.map((s) => nn.redirect(s.name, c.servers.flatMap((d, j) => (d === s ? [] : [{
      dest: d.address, port: SERVER_PORT, to: `${nn.hostAddress}:${this.#relays[j]!.port}`,
    }])))));
  }

  async #watchRecovery(ev: FaultEvent): Promise<void> {
    const healedAt = performance.now();
    const deadline = healedAt + 30_000;
    const c = this.#c;
    while (performance.now() < deadline && ev.leaderAfterHealMs === undefined) {
      const views = await c.leaderViews(c.servers);
      const first = views[0]![1];
      if (first !== '' && first !== '?' && views.every(([, l]) => l === first)) ev.leaderAfterHealMs = Math.round(performance.now() - healedAt);
      else {
        ev.leaderViewsAfterHeal = views.map(([s, l]) => `${s}→${l || 'none'}`).join(' ');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    while (performance.now() < deadline) {
      const alive = await c.aliveCounts();
      if (alive.every((n) => n === c.agents.length)) {
        ev.membersAliveAfterHealMs = Math.round(performance.now() - healedAt);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Until the servers other than the old leader agree on a leader that is not it. */
  async #watchFailover(ev: FaultEvent, old: string): Promise<void> {
    const others = this.#c.servers.filter((s) => s.name !== old);
    const from = performance.now();
    while (ev.end === undefined && performance.now() - from < 30_000) {
      const l = await this.#c.leader(others, 1000);
      if (l && l.name !== old) {
        ev.failoverMs = Math.round(performance.now() - from);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Polls a server that is not the killed one until it lists the member as failed. */
  async #watchDetection(ev: FaultEvent, killed: ChaosAgent, killedAt: number): Promise<void> {
    const observer = this.#c.servers.find((s) => s !== killed)!;
    while (!killed.running && performance.now() - killedAt < 30_000) {
      try {
        const r = await request(observer.url, 'GET', '/v1/agent/members', { timeoutMs: 1000 });
        const m = r.status === 200 ? r.json<Array<{ Name: string; Status: number }>>().find((x) => x.Name === killed.name) : undefined;
        if (m && m.Status === FAILED) {
          ev.detectedMs = Math.round(performance.now() - killedAt);
          return;
        }
      } catch { /* the observer may be slow; try again */ }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * During a loss window every member is alive: a member an agent lists as failed is a false
   * declaration, unless the agent already listed it failed at its first look, a few ms into the
   * window (a declaration takes ≥ 4 s of suspicion): that one is left over from an earlier fault
   * (a killed agent restarted at its heal, still failed until serf's reconnect reaches it) and is
   * reported apart. Once the agent lists it alive again, a new failure counts.
   */
  async #watchFalseFailures(ev: FaultEvent): Promise<void> {
    const seen = new Set<string>();
    const leftover = new Set<string>();
    const everLeftover = new Set<string>();
    const looked = new Set<string>();
    while (ev.end === undefined && !this.#o.stopped()) {
      await Promise.all(this.#c.agents.map(async (a) => {
        try {
          const r = await request(a.url, 'GET', '/v1/agent/members', { timeoutMs: 1000 });
          if (r.status !== 200) return;
          const first = !looked.has(a.name);
          looked.add(a.name);
          for (const m of r.json<Array<{ Name: string; Status: number }>>()) {
            const key = `${m.Name} (seen by ${a.name})`;
            if (m.Status !== FAILED) leftover.delete(key);
            else if (first) { leftover.add(key); everLeftover.add(key); }
            else if (!leftover.has(key)) seen.add(key);
          }
        } catch { /* ignore */ }
      }));
      await new Promise((r) => setTimeout(r, 500));
    }
    ev.falseFailures = [...seen];
    if (everLeftover.size > 0) ev.detail += `; already failed when the loss began (an earlier fault's, not counted): ${[...everLeftover].join(', ')}`;
  }

  /** Every server's applied Raft index (null: no answer within 1 s). */
  async #applied(): Promise<Record<string, number | null>> {
    const vals = await Promise.all(this.#c.servers.map(async (s) => [s.name, (await appliedIndex(s.url)) ?? null] as const));
    return Object.fromEntries(vals);
  }

  async close(): Promise<void> {
    await Promise.all(this.#relays.map((r) => r.close()));
  }
}
