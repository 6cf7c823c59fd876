// The chaos run's client workloads, each a few async workers sending real HTTP requests to random
// agents (servers and clients) through the test process's own address, which faults never cut:
//
//   register: ?consistent reads, PUTs and cas writes on a few keys (one worker per agent), recorded in the Raft simulator's
//             history format and checked for linearizability with its checker (kvModel: the
//             register with put/get/cas). Keys rotate every few seconds so each key's history stays
//             small enough to search (Jepsen's independent keys).
//   lock:     sessions and ?acquire / ?release on one key; each worker holds the lock only for less
//             than half the session's lock-delay after its acquire was sent, so no two holders'
//             intervals [acquire answered, release sent] may ever overlap.
//   counter:  read (?consistent) then cas index+1; every acknowledged increment must survive.
//
// Outcomes: an answer = ok (or a definite failure for 4xx and refused cas/acquire); no answer within
// the client timeout, a connection error or a 5xx on a write = indeterminate (it may or may not have
// happened). Reads that fail constrain nothing and are left out.
import { HistoryRecorder } from '../../packages/raft/src/sim/history.ts';
import type { KvInput, KvOutput } from '../../packages/raft/src/sim/kv.ts';
import type { Rng } from '../../packages/raft/src/sim/rng.ts';
import { request, type HttpResult } from '../support/http.ts';

export type Outcome = 'ok' | 'fail' | 'info';

/** One request as the latency plot and the availability figures see it. */
export interface OpSample {
  workload: 'register' | 'lock' | 'counter';
  kind: string;
  agent: string;
  /** ms since the run started. */
  at: number;
  latencyMs: number;
  outcome: Outcome;
}

export interface Target {
  name: string;
  url: string;
}

export interface WorkloadContext {
  targets: () => Target[];
  rng: Rng;
  opTimeoutMs: number;
  t0: number;
  stopped: () => boolean;
  samples: OpSample[];
}

type Answer = { kind: 'answer'; r: HttpResult } | { kind: 'none'; error: string };

async function send(ctx: WorkloadContext, t: Target, method: string, path: string, body?: string): Promise<Answer> {
  try {
    return { kind: 'answer', r: await request(t.url, method, path, { body, timeoutMs: ctx.opTimeoutMs }) };
  } catch (err) {
    return { kind: 'none', error: (err as Error).message };
  }
}

function sample(ctx: WorkloadContext, workload: OpSample['workload'], kind: string, agent: string, start: number, outcome: Outcome): void {
  const now = performance.now();
  ctx.samples.push({ workload, kind, agent, at: Math.round(start - ctx.t0), latencyMs: Math.round((now - start) * 10) / 10, outcome });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface KvEntry { value: string | null; index: number }

/** A GET /v1/kv answer as (value, ModifyIndex); value null and index 0 when the key is absent. */
function kvEntry(r: HttpResult): KvEntry | undefined {
  if (r.status === 404) return { value: null, index: 0 };
  if (r.status !== 200) return undefined;
  const [e] = r.json<Array<{ Value: string | null; ModifyIndex: number }>>();
  if (!e) return undefined;
  return { value: e.Value === null ? '' : Buffer.from(e.Value, 'base64').toString('utf8'), index: e.ModifyIndex };
}

// ---- register ------------------------------------------------------------------------------------

export class RegisterWorkload {
  readonly history = new HistoryRecorder<KvInput, KvOutput>();
  readonly keysPerGeneration = 2;
  readonly generationMs: number;
  #seq = 0;
  private readonly ctx: WorkloadContext;

  constructor(ctx: WorkloadContext, generationMs = 6000) {
    this.ctx = ctx;
    this.generationMs = generationMs;
  }

  #keys(): string[] {
    const gen = Math.floor((performance.now() - this.ctx.t0) / this.generationMs);
    return Array.from({ length: this.keysPerGeneration }, (_, k) => `chaos/reg/g${gen}-k${k}`);
  }

  async worker(id: number): Promise<void> {
    const ctx = this.ctx;
    const rng = ctx.rng.fork(`register-${id}`);
    // What this worker last read of each key: a cas needs the entry's ModifyIndex.
    const seen = new Map<string, KvEntry>();
    // Bound to one agent, as Jepsen binds a client to a node: a worker stuck on a cut-off agent
    // does not slow the others, so the majority side's throughput can be measured.
    const t = ctx.targets()[id % ctx.targets().length]!;
    while (!ctx.stopped()) {
      const key = rng.pick(this.#keys());
      const roll = rng.float();
      const last = seen.get(key);
      if (roll < 0.4 || (roll >= 0.7 && !last)) await this.#read(id, t, key, seen);
      else if (roll < 0.7) await this.#put(id, t, key);
      else await this.#cas(id, t, key, last!);
      await sleep(rng.range(5, 40));
    }
  }

  async #read(id: number, t: Target, key: string, seen: Map<string, KvEntry>): Promise<void> {
    const start = performance.now();
    const op = this.history.invoke(id, { kind: 'get', key }, `${t.name} +${Math.round(start - this.ctx.t0)}ms`);
    const a = await send(this.ctx, t, 'GET', `/v1/kv/${key}?consistent`);
    const e = a.kind === 'answer' ? kvEntry(a.r) : undefined;
    if (e) {
      this.history.ok(op, { kind: 'get', value: e.value });
      seen.set(key, e);
      sample(this.ctx, 'register', 'read', t.name, start, 'ok');
    } else {
      // A read that failed or went unanswered changed nothing and constrains nothing.
      if (a.kind === 'none') this.history.indeterminate(op, false); else this.history.fail(op);
      sample(this.ctx, 'register', 'read', t.name, start, 'fail');
    }
  }

  async #put(id: number, t: Target, key: string): Promise<void> {
    const value = `w${id}-${++this.#seq}`;
    const start = performance.now();
    const op = this.history.invoke(id, { kind: 'put', key, value }, `${t.name} +${Math.round(start - this.ctx.t0)}ms`);
    const a = await send(this.ctx, t, 'PUT', `/v1/kv/${key}`, value);
    this.#settleWrite(op, a, (r) => (r.text.trim() === 'true' ? { kind: 'put' } : undefined), t, start, 'put');
  }

  async #cas(id: number, t: Target, key: string, last: KvEntry): Promise<void> {
    const value = `w${id}-${++this.#seq}`;
    const start = performance.now();
    // Every write stores a value no other write stores, so "ModifyIndex is still last.index" is
    // "the value is still last.value": the model's cas on the expected value.
    const op = this.history.invoke(id, { kind: 'cas', key, expected: last.value, value }, `${t.name} +${Math.round(start - this.ctx.t0)}ms index ${last.index}`);
    const a = await send(this.ctx, t, 'PUT', `/v1/kv/${key}?cas=${last.index}`, value);
    this.#settleWrite(op, a, (r) => {
      const s = r.text.trim();
      return s === 'true' ? { kind: 'cas', ok: true } : s === 'false' ? { kind: 'cas', ok: false } : undefined;
    }, t, start, 'cas');
  }

  #settleWrite(op: number, a: Answer, parse: (r: HttpResult) => KvOutput | undefined, t: Target, start: number, kind: string): void {
    if (a.kind === 'answer' && a.r.status === 200) {
      const out = parse(a.r);
      if (out) {
        this.history.ok(op, out);
        sample(this.ctx, 'register', kind, t.name, start, 'ok');
        return;
      }
    }
    if (a.kind === 'answer' && a.r.status >= 400 && a.r.status < 500) {
      this.history.fail(op);
    } else {
      this.history.indeterminate(op, true);
    }
    sample(this.ctx, 'register', kind, t.name, start, 'fail');
  }
}

// ---- lock ----------------------------------------------------------------------------------------

export interface HoldInterval {
  worker: number;
  session: string;
  agent: string;
  /** ms since the run started: the acquire's answer, and the release being sent. */
  from: number;
  to: number;
}

export class LockWorkload {
  readonly key = 'chaos/lock';
  readonly lockDelayMs: number;
  readonly holds: HoldInterval[] = [];
  readonly counts = { acquireAttempts: 0, acquired: 0, refused: 0, indeterminate: 0, lateAcks: 0, sessions: 0 };

  private readonly ctx: WorkloadContext;

  constructor(ctx: WorkloadContext, lockDelayMs = 3000) {
    this.ctx = ctx;
    this.lockDelayMs = lockDelayMs;
  }

  async worker(id: number): Promise<void> {
    const ctx = this.ctx;
    const rng = ctx.rng.fork(`lock-${id}`);
    let session: { id: string; target: Target } | undefined;
    while (!ctx.stopped()) {
      if (!session) {
        const t = rng.pick(ctx.targets());
        const start = performance.now();
        const a = await send(ctx, t, 'PUT', '/v1/session/create', JSON.stringify({ Name: `chaos-lock-${id}`, LockDelay: `${this.lockDelayMs / 1000}s`, Behavior: 'release' }));
        if (a.kind === 'answer' && a.r.status === 200) {
          session = { id: a.r.json<{ ID: string }>().ID, target: t };
          this.counts.sessions++;
          sample(ctx, 'lock', 'session', t.name, start, 'ok');
        } else {
          sample(ctx, 'lock', 'session', t.name, start, 'fail');
          await sleep(300);
        }
        continue;
      }
      const t = rng.pick(ctx.targets());
      const call = performance.now();
      this.counts.acquireAttempts++;
      const a = await send(ctx, t, 'PUT', `/v1/kv/${this.key}?acquire=${session.id}`, `w${id}`);
      const ack = performance.now();
      if (a.kind === 'answer' && a.r.status === 200 && a.r.text.trim() === 'true') {
        this.counts.acquired++;
        sample(ctx, 'lock', 'acquire', t.name, call, 'ok');
        // The lock may have been lost the moment it was taken (session invalidated); lock-delay then
        // keeps everyone else out until invalidation + lockDelay ≥ call + lockDelay. Holding only
        // until call + lockDelay/2 keeps a holder safe without knowing.
        const limit = call + this.lockDelayMs / 2;
        if (ack < limit) {
          await sleep(Math.max(0, Math.min(rng.range(50, 400), limit - performance.now() - 50)));
          const to = performance.now();
          this.holds.push({ worker: id, session: session.id, agent: t.name, from: ack - ctx.t0, to: to - ctx.t0 });
        } else {
          this.counts.lateAcks++;
        }
        const rs = performance.now();
        const r = await send(ctx, t, 'PUT', `/v1/kv/${this.key}?release=${session.id}`, `w${id}`);
        const ok = r.kind === 'answer' && r.r.status === 200;
        sample(ctx, 'lock', 'release', t.name, rs, ok ? 'ok' : 'fail');
        if (!ok) session = await this.#drop(session);
      } else if (a.kind === 'answer' && a.r.status === 200) {
        this.counts.refused++;
        sample(ctx, 'lock', 'acquire', t.name, call, 'info');
        await sleep(rng.range(50, 250));
      } else if (a.kind === 'answer' && /invalid session|Invalid session/.test(a.r.text)) {
        sample(ctx, 'lock', 'acquire', t.name, call, 'fail');
        session = undefined;
      } else {
        // Maybe acquired, maybe not: give the session up so the lock (if taken) is released.
        this.counts.indeterminate++;
        sample(ctx, 'lock', 'acquire', t.name, call, 'fail');
        session = await this.#drop(session);
      }
    }
    if (session) await this.#drop(session);
  }

  /** Destroys a session (best effort: an unreachable agent's session dies with its node check). */
  async #drop(session: { id: string; target: Target }): Promise<undefined> {
    const t = this.ctx.targets()[0] ?? session.target;
    await send(this.ctx, t, 'PUT', `/v1/session/destroy/${session.id}`);
    return undefined;
  }
}

/** Pairs of hold intervals of different sessions that overlap in time (mutual exclusion broken). */
export function lockViolations(holds: HoldInterval[]): Array<[HoldInterval, HoldInterval]> {
  const sorted = [...holds].sort((a, b) => a.from - b.from);
  const out: Array<[HoldInterval, HoldInterval]> = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length && sorted[j]!.from < sorted[i]!.to; j++) {
      if (sorted[j]!.session !== sorted[i]!.session) out.push([sorted[i]!, sorted[j]!]);
    }
  }
  return out;
}

// ---- counter -------------------------------------------------------------------------------------

export class CounterWorkload {
  readonly key = 'chaos/counter';
  readonly counts = { attempts: 0, acked: 0, refused: 0, indeterminate: 0 };
  /** The values acknowledged increments wrote: each must be distinct (two acks of one value = a lost increment). */
  readonly ackedValues: number[] = [];

  private readonly ctx: WorkloadContext;

  constructor(ctx: WorkloadContext) {
    this.ctx = ctx;
  }

  async worker(id: number): Promise<void> {
    const ctx = this.ctx;
    const rng = ctx.rng.fork(`counter-${id}`);
    while (!ctx.stopped()) {
      const t = rng.pick(ctx.targets());
      const start = performance.now();
      const a = await send(ctx, t, 'GET', `/v1/kv/${this.key}?consistent`);
      const e = a.kind === 'answer' ? kvEntry(a.r) : undefined;
      if (!e) {
        sample(ctx, 'counter', 'read', t.name, start, 'fail');
        await sleep(100);
        continue;
      }
      sample(ctx, 'counter', 'read', t.name, start, 'ok');
      const next = (e.value === null ? 0 : Number(e.value)) + 1;
      const cs = performance.now();
      this.counts.attempts++;
      const w = await send(ctx, t, 'PUT', `/v1/kv/${this.key}?cas=${e.index}`, String(next));
      if (w.kind === 'answer' && w.r.status === 200 && w.r.text.trim() === 'true') {
        this.counts.acked++;
        this.ackedValues.push(next);
        sample(ctx, 'counter', 'cas', t.name, cs, 'ok');
      } else if (w.kind === 'answer' && w.r.status === 200) {
        this.counts.refused++;
        sample(ctx, 'counter', 'cas', t.name, cs, 'info');
      } else {
        this.counts.indeterminate++;
        sample(ctx, 'counter', 'cas', t.name, cs, 'fail');
      }
      await sleep(rng.range(10, 60));
    }
  }

  /** The counter's final value, by a ?consistent read retried until one answers. */
  async finalValue(deadlineMs = 30_000): Promise<number | undefined> {
    const end = Date.now() + deadlineMs;
    while (Date.now() < end) {
      for (const t of this.ctx.targets()) {
        const a = await send(this.ctx, t, 'GET', `/v1/kv/${this.key}?consistent`);
        const e = a.kind === 'answer' ? kvEntry(a.r) : undefined;
        if (e) return e.value === null ? 0 : Number(e.value);
      }
      await sleep(500);
    }
    return undefined;
  }
}

export interface CounterVerdict {
  ok: boolean;
  final: number | undefined;
  acked: number;
  indeterminate: number;
  duplicateAcks: number[];
  explanation: string;
}

/** acked ≤ final ≤ acked + indeterminate, and no value acknowledged twice. */
export function checkCounter(final: number | undefined, acked: number[], indeterminate: number): CounterVerdict {
  const counts = new Map<number, number>();
  for (const v of acked) counts.set(v, (counts.get(v) ?? 0) + 1);
  const duplicateAcks = [...counts].filter(([, n]) => n > 1).map(([v]) => v).sort((a, b) => a - b);
  const problems: string[] = [];
  if (final === undefined) problems.push('the final value could not be read');
  else {
    if (final < acked.length) problems.push(`final value ${final} < ${acked.length} acknowledged increments: ${acked.length - final} lost`);
    if (final > acked.length + indeterminate) problems.push(`final value ${final} > ${acked.length} acknowledged + ${indeterminate} indeterminate increments`);
  }
  if (duplicateAcks.length > 0) problems.push(`values acknowledged more than once (two increments from one read, one lost): ${duplicateAcks.slice(0, 10).join(', ')}`);
  return {
    ok: problems.length === 0, final, acked: acked.length, indeterminate, duplicateAcks,
    explanation: problems.length === 0 ? `final ${final}: ${acked.length} acknowledged ≤ final ≤ ${acked.length} + ${indeterminate} indeterminate` : problems.join('; '),
  };
}
