// The run's report: JSON (everything), Markdown (a table a person reads) and an SVG plot of every
// request's latency over time with the fault windows shaded.
import type { FaultEvent } from './nemesis.ts';
import type { OpSample } from './workloads.ts';

export interface PhaseFigures {
  attempted: number;
  ok: number;
  failed: number;
  /** ok / (ok + failed); refused cas/acquire ('info') count as answered, not as failures. */
  availability: number | null;
}

export interface ChaosReport {
  options: Record<string, unknown>;
  startedAt: string;
  elapsedMs: number;
  verdict: { ok: boolean; summary: string };
  register: {
    attempted: number; ok: number; failed: number; indeterminate: number;
    linearizable: boolean | 'unknown'; searched: number; keys: number; unknownKeys: string[];
    counterexample?: string;
  };
  lock: { acquireAttempts: number; acquired: number; refused: number; indeterminate: number; lateAcks: number; sessions: number; holds: number; violations: string[] };
  counter: { attempts: number; acked: number; refused: number; indeterminate: number; final: number | undefined; ok: boolean; explanation: string };
  phases: Record<'quiet' | 'fault' | 'afterHeal', PhaseFigures>;
  faults: Array<FaultEvent & { lastFailureAfterHealMs?: number | null; majorityThroughputRatio?: number | null }>;
  elections: { terms: number; oneLeaderPerTerm: boolean; detail: string };
  gossip: { detectionMs: number[]; medianDetectionMs: number | null; falseFailures: string[] };
  log: string[];
}

const AFTER_HEAL_MS = 5000;

export function phaseOf(at: number, faults: FaultEvent[]): 'quiet' | 'fault' | 'afterHeal' {
  for (const f of faults) {
    const end = f.end ?? Infinity;
    if (at >= f.start && at < end) return 'fault';
    if (at >= end && at < end + AFTER_HEAL_MS) return 'afterHeal';
  }
  return 'quiet';
}

export function phaseFigures(samples: OpSample[], faults: FaultEvent[]): ChaosReport['phases'] {
  const out = {
    quiet: { attempted: 0, ok: 0, failed: 0, availability: null },
    fault: { attempted: 0, ok: 0, failed: 0, availability: null },
    afterHeal: { attempted: 0, ok: 0, failed: 0, availability: null },
  } as ChaosReport['phases'];
  for (const s of samples) {
    const p = out[phaseOf(s.at, faults)];
    p.attempted++;
    if (s.outcome === 'fail') p.failed++; else p.ok++;
  }
  for (const p of Object.values(out)) p.availability = p.attempted === 0 ? null : Math.round((p.ok / p.attempted) * 1000) / 1000;
  return out;
}

/**
 * Per fault: the last failed request sent after the heal, as ms after the heal; null = none failed.
 * Only requests that also ended before the next fault began count: one sent a moment before the next
 * fault and failed by it (a leader killed under it) says nothing about this fault's recovery.
 */
export function lastFailureAfterHeal(samples: OpSample[], faults: FaultEvent[]): Array<number | null> {
  return faults.map((f, i) => {
    if (f.end === undefined) return null;
    const until = faults[i + 1]?.start ?? Infinity;
    let last: number | null = null;
    for (const s of samples) {
      if (s.outcome === 'fail' && s.at >= f.end && s.at + s.latencyMs < until) last = Math.max(last ?? 0, s.at - f.end);
    }
    return last;
  });
}

/** For partitions with a majority side: ok requests/s to majority-side agents during the fault over the same in quiet phases. */
export function majorityThroughput(samples: OpSample[], faults: FaultEvent[], elapsedMs: number): Array<number | null> {
  let quietMs = 0;
  for (let t = 0; t < elapsedMs; t += 100) if (phaseOf(t, faults) === 'quiet') quietMs += 100;
  // Register workers are bound to one agent each, so a stalled minority-side worker does not slow
  // the majority side's: their requests are the ones counted.
  const reg = samples.filter((s) => s.workload === 'register' && s.outcome !== 'fail');
  return faults.map((f) => {
    if (!f.majority || f.end === undefined || quietMs === 0) return null;
    const side = new Set(f.majority);
    const during = reg.filter((s) => side.has(s.agent) && s.at >= f.start && s.at < f.end!).length / ((f.end - f.start) / 1000);
    const base = reg.filter((s) => side.has(s.agent) && phaseOf(s.at, faults) === 'quiet').length / (quietMs / 1000);
    return base === 0 ? null : Math.round((during / base) * 100) / 100;
  });
}

function pct(x: number | null): string {
  return x === null ? '–' : `${(x * 100).toFixed(1)}%`;
}

export function markdown(r: ChaosReport): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(`# Chaos run: ${r.verdict.ok ? 'PASS' : 'FAIL'}`, '');
  lines.push(`${r.verdict.summary}`, '');
  lines.push(`Seed ${o.seed}, ${o.servers} servers + ${o.clients} clients, faults ${(o.faults as string[]).join(', ')}, ` +
    `${Math.round(Number(o.durationMs) / 1000)} s of faults + ${Math.round(Number(o.recoveryMs) / 1000)} s recovery; ` +
    `started ${r.startedAt}, took ${(r.elapsedMs / 1000).toFixed(0)} s${o.plant ? `; PLANTED BUG ${o.plant}` : ''}.`, '');
  lines.push('| check | verdict | figures |', '|---|---|---|');
  const reg = r.register;
  lines.push(`| KV register linearizable | ${reg.linearizable === true ? 'yes' : reg.linearizable === 'unknown' ? `not proven for ${reg.unknownKeys.length} keys (search budget spent)` : '**NO**'} | ${reg.attempted} ops: ${reg.ok} ok, ${reg.failed} failed, ${reg.indeterminate} indeterminate; ${reg.keys} keys; ${reg.searched} search steps |`);
  lines.push(`| lock mutual exclusion | ${r.lock.violations.length === 0 ? 'yes' : `**NO** (${r.lock.violations.length} overlaps)`} | ${r.lock.acquired} acquired / ${r.lock.acquireAttempts} attempts, ${r.lock.refused} refused, ${r.lock.indeterminate} indeterminate, ${r.lock.sessions} sessions, ${r.lock.holds} holds checked |`);
  lines.push(`| counter: no lost acked increment | ${r.counter.ok ? 'yes' : '**NO**'} | ${r.counter.explanation} |`);
  lines.push(`| one leader per term | ${r.elections.oneLeaderPerTerm ? 'yes' : '**NO**'} | ${r.elections.detail} |`);
  lines.push('');
  lines.push('| phase | requests | ok (or refused) | failed / no answer | availability |', '|---|---|---|---|---|');
  for (const [name, p] of Object.entries(r.phases)) lines.push(`| ${name === 'afterHeal' ? 'first 5 s after heal' : name === 'fault' ? 'during a fault' : 'quiet'} | ${p.attempted} | ${p.ok} | ${p.failed} | ${pct(p.availability)} |`);
  lines.push('');
  lines.push('| time | fault | what | new leader after fault | leader after heal | all alive after heal | last failure after heal | dead-node detection | majority-side throughput |', '|---|---|---|---|---|---|---|---|---|');
  const ms = (x: number | null | undefined) => (x === undefined || x === null ? '–' : `${(x / 1000).toFixed(2)} s`);
  for (const f of r.faults) {
    const cell = (t: string) => t.replaceAll('|', '/');
    lines.push(`| ${(f.start / 1000).toFixed(1)}–${f.end === undefined ? '?' : (f.end / 1000).toFixed(1)} s | ${f.fault} | ${cell(f.detail)}${f.falseFailures && f.falseFailures.length > 0 ? `; false failures: ${f.falseFailures.join(', ')}` : ''} | ${ms(f.failoverMs)} | ${ms(f.leaderAfterHealMs)} | ${ms(f.membersAliveAfterHealMs)} | ${f.lastFailureAfterHealMs === null ? 'none' : ms(f.lastFailureAfterHealMs)} | ${ms(f.detectedMs)} | ${f.majorityThroughputRatio === undefined || f.majorityThroughputRatio === null ? '–' : `${(f.majorityThroughputRatio * 100).toFixed(0)}% of quiet`} |`);
  }
  lines.push('');
  lines.push(`Gossip: dead-node detection ${r.gossip.detectionMs.length === 0 ? 'not measured (no kill)' : `${r.gossip.detectionMs.map((x) => `${(x / 1000).toFixed(2)} s`).join(', ')} (median ${ms(r.gossip.medianDetectionMs)})`}; ` +
    `false failure declarations during loss: ${r.gossip.falseFailures.length === 0 ? 'none' : r.gossip.falseFailures.join(', ')}.`, '');
  if (reg.counterexample) lines.push('## Linearizability counterexample', '', '```', reg.counterexample, '```', '');
  if (r.lock.violations.length > 0) lines.push('## Lock overlaps', '', ...r.lock.violations.slice(0, 10).map((v) => `- ${v}`), '');
  lines.push('New leader after fault: from the fault until the servers the leader was cut from agree on another leader. ' +
    'Leader / all alive after heal: until every server names one leader / every agent lists every member alive (after a kill this includes the restart). ' +
    'Majority-side throughput: answered register requests per second of the workers bound to majority-side agents, against quiet phases.', '');
  lines.push('Latency plot: latency.svg (fault windows shaded).', '');
  return lines.join('\n');
}

/** Request latency over time: one dot per request (green ok, grey refused, red failed), log scale, faults shaded. */
export function latencySvg(samples: OpSample[], faults: FaultEvent[], elapsedMs: number, timeoutMs: number): string {
  const W = 1000, H = 380, L = 60, R = 20, T = 30, B = 40;
  const pw = W - L - R, ph = H - T - B;
  // A loop, not Math.max(...): a 30-minute run has ~200,000 samples, past the argument limit.
  let maxMs = timeoutMs * 1.2;
  for (const s of samples) if (s.latencyMs > maxMs) maxMs = s.latencyMs;
  const lo = Math.log10(0.5), hi = Math.log10(maxMs);
  const x = (t: number) => L + (Math.min(t, elapsedMs) / elapsedMs) * pw;
  const y = (ms: number) => T + ph - ((Math.log10(Math.max(ms, 0.5)) - lo) / (hi - lo)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="18" font-size="13">Request latency over time (log scale); shaded: fault windows</text>`);
  for (const f of faults) {
    const x0 = x(f.start), x1 = x(f.end ?? elapsedMs);
    out.push(`<rect x="${x0.toFixed(1)}" y="${T}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${ph}" fill="#f4b183" fill-opacity="0.35"/>`);
    out.push(`<text x="${(x0 + 2).toFixed(1)}" y="${T + 12}" font-size="10" fill="#8a3b00">${f.fault}</text>`);
  }
  for (const ms of [1, 10, 100, 1000, 10000].filter((v) => v <= maxMs)) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(ms).toFixed(1)}" y2="${y(ms).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${(y(ms) + 4).toFixed(1)}" text-anchor="end">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`);
  }
  const step = elapsedMs > 300_000 ? 60_000 : elapsedMs > 60_000 ? 10_000 : 5_000;
  for (let t = 0; t <= elapsedMs; t += step) out.push(`<text x="${x(t).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${t / 1000}s</text>`);
  out.push(`<line x1="${L}" x2="${W - R}" y1="${T + ph}" y2="${T + ph}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" stroke="#333"/>`);
  const colour = { ok: '#2e7d32', info: '#9e9e9e', fail: '#c62828' };
  // One dot per request, except that requests landing on the same pixel with the same colour are
  // drawn once (a long run would otherwise write hundreds of thousands of identical circles).
  const drawn = new Set<string>();
  for (const s of samples) {
    const cx = Math.round(x(s.at)), cy = Math.round(y(s.latencyMs));
    const key = `${cx},${cy},${s.outcome}`;
    if (drawn.has(key)) continue;
    drawn.add(key);
    out.push(`<circle cx="${cx}" cy="${cy}" r="1.6" fill="${colour[s.outcome]}" fill-opacity="0.6"/>`);
  }
  out.push(`<text x="${W - R}" y="${H - 8}" text-anchor="end"><tspan fill="${colour.ok}">● ok</tspan>  <tspan fill="${colour.info}">● refused (cas/acquire false)</tspan>  <tspan fill="${colour.fail}">● failed / no answer</tspan></text>`);
  out.push('</svg>');
  return out.join('\n');
}
