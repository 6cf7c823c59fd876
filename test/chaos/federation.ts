// `npm run chaos -- --federation --duration 60s --seed N`: issue 16's workload (e), cross-datacenter
// calls through mesh gateways during WAN partitions. Two datacenters (onprem primary, cloud) in
// network namespaces, started by the federation suite's cast (test/e2e/federation/fedCast.ts,
// topology.ts): a server and a mesh gateway each, web, payments v1, payments v2 in onprem and
// currency in cloud, every app behind its `trellis connect proxy` sidecar; currency resolves to
// cloud (ConnectTimeout 2s, RequestTimeout 3s, as the federation suite's partition test sets it).
//
// Workload: two loops call web all the time: a local call (web -> payments v1, onprem only) and a
// cross-datacenter call (group: test: web -> payments v2 -> onprem gateway -> cloud gateway ->
// currency (cloud)). Nemesis: a seeded schedule of quiet gaps and WAN partitions (every packet
// between onprem's and cloud's namespaces dropped, Netns.partition), each healed. During each
// partition a config entry is written in the primary; it must not be in cloud before the heal and
// must arrive after it. The report: local availability during partitions, how fast cross calls
// fail during them, the time from heal to cross calls succeeding again, the config entry's
// replication after the heal; JSON and Markdown in the --out directory.
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../packages/raft/src/sim/rng.ts';
import { netnsUnavailable } from '../support/netns.ts';
import { sleep } from '../support/index.ts';
import { CAST, FedCast, describeCall, failedHop } from '../e2e/federation/fedCast.ts';

export const LOCAL = 'payments v1 (onprem)';
export const CROSS = 'payments v2 (onprem) -> currency (cloud)';
const GROUP_TEST = { group: 'test' };

/** What the run must show (the verdict); the test asserts the same figures. */
export const LIMITS = {
  /** Local calls answered during WAN partitions. */
  localAvailability: 0.99,
  /** A cross-datacenter call during a partition fails within this (the test apps give up at 10 s). */
  failFastMs: 8000,
  /** From the heal until cross-datacenter calls succeed again (3 in a row). */
  recoveryMs: 30_000,
  /** From the heal until the config entry written during the partition is in cloud. */
  replicationMs: 60_000,
};

export interface FedChaosOptions {
  durationMs: number;
  seed: number;
  /** Exactly this many partitions (the run lasts as long as they take); 0: as many as fit in durationMs. */
  partitions: number;
  outDir: string;
}

export interface FedCall {
  /** ms since the run's start when the call was sent. */
  at: number;
  kind: 'local' | 'cross';
  ok: boolean;
  ms: number;
  /** What answered ("payments v1 (onprem)", "status 503", "error ..."). */
  what: string;
}

export interface WanPartition {
  index: number;
  /** ms since the run's start. */
  start: number;
  end: number;
  local: { calls: number; ok: number; availability: number | null };
  /**
   * Cross calls sent during the partition: `ok` those answered through the cut link (before the
   * heal), `failed` those that failed; `maxMs` the slowest of all of them, however it ended (a call
   * that hangs until after the heal counts with its whole time).
   */
  cross: { calls: number; ok: number; failed: number; failMedianMs: number | null; maxMs: number | null };
  /** Heal -> first of 3 cross calls in a row that succeeded (sent after the heal); null: not seen. */
  recoveredAfterMs: number | null;
  configEntry: string;
  /** The entry was absent from cloud while partitioned (read once, after writing it in onprem). */
  configAbsentDuringPartition: boolean;
  /** Heal -> the entry read in cloud with onprem's content; null: not within LIMITS.replicationMs. */
  configReplicatedAfterMs: number | null;
}

export interface FedChaosReport {
  options: FedChaosOptions;
  startedAt: string;
  setupMs: number;
  elapsedMs: number;
  totals: { local: { calls: number; ok: number }; cross: { calls: number; ok: number } };
  partitions: WanPartition[];
  verdict: { ok: boolean; failures: string[] };
  log: string[];
}

const median = (xs: number[]) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

/** Heal -> start of the first of `run` successful cross calls in a row sent after the heal. */
export function recoveredAfter(calls: FedCall[], healAt: number, run = 3): number | null {
  let streak = 0;
  let first = 0;
  for (const c of calls) {
    if (c.kind !== 'cross' || c.at < healAt) continue;
    if (c.ok) { if (streak++ === 0) first = c.at; if (streak >= run) return first - healAt; } else streak = 0;
  }
  return null;
}

/** The figures of one partition window from the calls (sorted by `at`). */
export function partitionFigures(calls: FedCall[], p: { index: number; start: number; end: number; cutUntil?: number; configEntry: string; configAbsentDuringPartition: boolean; configReplicatedAfterMs: number | null }): WanPartition {
  const local = calls.filter((c) => c.kind === 'local' && c.at >= p.start && c.at < p.end);
  const cross = calls.filter((c) => c.kind === 'cross' && c.at >= p.start && c.at < p.end);
  const failed = cross.filter((c) => !c.ok).map((c) => c.ms);
  // Answered while the rules were certainly in (before the heal began): through the cut link.
  const okThroughCut = cross.filter((c) => c.ok && c.at + c.ms <= (p.cutUntil ?? p.end)).length;
  const localOk = local.filter((c) => c.ok).length;
  return {
    ...p,
    local: { calls: local.length, ok: localOk, availability: local.length ? Math.round((localOk / local.length) * 10_000) / 10_000 : null },
    cross: { calls: cross.length, ok: okThroughCut, failed: failed.length, failMedianMs: median(failed), maxMs: cross.length ? Math.max(...cross.map((c) => c.ms)) : null },
    recoveredAfterMs: recoveredAfter(calls, p.end),
  };
}

/** The verdict: every property of every partition, each failure named. */
export function judge(parts: WanPartition[], want: number): { ok: boolean; failures: string[] } {
  const f: string[] = [];
  if (parts.length < want) f.push(`only ${parts.length} partition(s) of ${want}`);
  for (const p of parts) {
    const n = `partition ${p.index + 1}`;
    if (p.local.calls < 5) f.push(`${n}: only ${p.local.calls} local calls during it`);
    else if (p.local.availability! < LIMITS.localAvailability) f.push(`${n}: local availability ${p.local.availability} < ${LIMITS.localAvailability}`);
    if (p.cross.failed < 1) f.push(`${n}: no cross-datacenter call failed during it (the partition did not cut the WAN link, or no call was made)`);
    if (p.cross.ok > 0) f.push(`${n}: ${p.cross.ok} cross-datacenter call(s) succeeded through a cut WAN link`);
    if (p.cross.maxMs !== null && p.cross.maxMs > LIMITS.failFastMs) f.push(`${n}: a cross-datacenter call sent during it took ${p.cross.maxMs} ms (> ${LIMITS.failFastMs} ms: hung, not failed fast)`);
    if (p.recoveredAfterMs === null || p.recoveredAfterMs > LIMITS.recoveryMs) f.push(`${n}: cross-datacenter calls ${p.recoveredAfterMs === null ? 'never succeeded again' : `succeeded again only ${p.recoveredAfterMs} ms`} after the heal (limit ${LIMITS.recoveryMs} ms)`);
    if (!p.configAbsentDuringPartition) f.push(`${n}: ${p.configEntry} was readable in cloud during the partition (the link was not cut)`);
    if (p.configReplicatedAfterMs === null) f.push(`${n}: ${p.configEntry} did not reach cloud within ${LIMITS.replicationMs} ms of the heal`);
  }
  return { ok: f.length === 0, failures: f };
}

/** Why --federation cannot run here ('' when it can): it needs network namespaces to cut a WAN link. */
export function federationUnavailable(): string {
  const why = netnsUnavailable();
  return why ? `chaos --federation needs network namespaces (it cuts the WAN link between two datacenters' namespaces with nftables) and cannot make them here: ${why}` : '';
}

export async function runFederationChaos(o: FedChaosOptions, print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<{ report: FedChaosReport; outDir: string }> {
  const why = federationUnavailable();
  if (why) throw new Error(why);
  const log: string[] = [];
  const t0 = Date.now();
  const say = (l: string) => { const line = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${l}`; log.push(line); print(line); };
  say(`chaos --federation seed ${o.seed}, ${o.partitions ? `${o.partitions} partition(s)` : `duration ${o.durationMs / 1000} s`}`);
  const cast = await FedCast.create(say, { wanfed: false });
  const stopOnSignal = () => { void cast.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const calls: FedCall[] = [];
  const parts: WanPartition[] = [];
  let setupMs = 0;
  let running = true;
  try {
    if (cast.topo.mode !== 'netns') throw new Error(`chaos --federation: the topology fell back to loopback (${cast.topo.fallbackReason}); a WAN partition needs namespaces`);
    const net = cast.topo.net!;
    // The federation suite's setup, cut to what the two paths need.
    await Promise.all([cast.startServer('onprem'), cast.startServer('cloud')]);
    await cast.writeGlobals();
    await cast.putConfig({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } });
    await cast.putConfig({ Kind: 'service-router', Name: 'payments', Routes: [
      { Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } },
    ] });
    await cast.putConfig({ Kind: 'service-resolver', Name: 'currency', ConnectTimeout: '2s', RequestTimeout: '3s', Redirect: { Datacenter: 'cloud' } });
    await Promise.all([cast.startGateway('onprem'), cast.startGateway('cloud')]);
    const members = [CAST.paymentsV1, CAST.paymentsV2, CAST.web, CAST.currencyCloud];
    for (const m of members) await cast.add(m);
    for (const m of members) await cast.waitPassing(m);
    const settle = async (what: string, fn: () => Promise<boolean>) => {
      const deadline = Date.now() + 90_000;
      while (!(await fn().catch(() => false))) {
        if (Date.now() > deadline) throw new Error(`setup: ${what} not within 90 s`);
        await sleep(250);
      }
    };
    await settle('web -> payments v1 (onprem)', async () => (await cast.via('web', '/')) === LOCAL);
    await settle(`web -> ${CROSS}`, async () => (await cast.via('web', '/', GROUP_TEST)) === CROSS);
    setupMs = Date.now() - t0;
    say(`set up in ${(setupMs / 1000).toFixed(1)} s: onprem and cloud servers, two mesh gateways, web, payments v1/v2 (onprem), currency (cloud); both paths answer`);

    // The workload: from here on every call is recorded, at ms since the workload's start.
    const w0 = Date.now();
    const now = () => Date.now() - w0;
    const loop = async (kind: 'local' | 'cross') => {
      while (running) {
        const at = now();
        let ok = false;
        let what: string;
        try {
          const r = await cast.get('web', '/', kind === 'cross' ? GROUP_TEST : {});
          what = `${r.status} ${Object.values(r.body.upstream_calls ?? {}).map(describeCall).join(', ')}`;
          ok = r.status === 200 && what === `200 ${kind === 'cross' ? CROSS : LOCAL}`;
          if (!ok && kind === 'cross' && !failedHop(r, 1) && !failedHop(r, 2)) what += ' (not a failed hop)';
        } catch (err) {
          what = `error ${(err as Error).message}`;
        }
        calls.push({ at, kind, ok, ms: now() - at, what });
        await sleep(100);
      }
    };
    const loops = [loop('local'), loop('cross')];

    const rng = new Rng(o.seed).fork('federation-wan');
    const enough = () => (o.partitions ? parts.length >= o.partitions : now() >= o.durationMs);
    try {
      while (!enough()) {
        const gap = rng.range(3000, 6000);
        const length = rng.range(6000, 12_000);
        if (!o.partitions && now() + gap + length > o.durationMs && parts.length > 0) break;
        await sleep(gap);
        const index = parts.length;
        // The window opens once the rules are in: a call sent while nft was still applying them may
        // cross the link and succeed (CI, seed 106533400: "1 cross-datacenter call(s) succeeded
        // through a cut WAN link").
        await net.partition([['onprem'], ['cloud']]);
        const start = now();
        let healBegan = 0;
        say(`partition ${index + 1}: WAN link onprem <-> cloud cut for ${length} ms`);
        const configEntry = `chaos-wan-${o.seed}-${index + 1}`;
        let configAbsentDuringPartition = false;
        try {
          await sleep(Math.min(1000, length / 4));
          await cast.putConfig({ Kind: 'service-defaults', Name: configEntry, Protocol: 'http' });
          configAbsentDuringPartition = (await cast.http('cloud', 'GET', `/v1/config/service-defaults/${configEntry}`)).status === 404;
          say(`partition ${index + 1}: service-defaults/${configEntry} written in onprem; in cloud: ${configAbsentDuringPartition ? 'absent' : 'PRESENT'}`);
          await sleep(Math.max(0, start + length - now()));
        } finally {
          healBegan = now();
          await net.heal();
        }
        const end = now();
        say(`partition ${index + 1}: healed after ${end - start} ms`);
        let configReplicatedAfterMs: number | null = null;
        try {
          await cast.waitReplicated(['cloud'], 'service-defaults', configEntry, LIMITS.replicationMs);
          configReplicatedAfterMs = now() - end;
        } catch { /* null: not replicated in time */ }
        // Wait (bounded) for the cross calls to come back before the next gap, so windows do not overlap a recovery.
        const deadline = end + LIMITS.recoveryMs + 5000;
        while (recoveredAfter(calls, end) === null && now() < deadline) await sleep(200);
        const fig = partitionFigures([...calls].sort((a, b) => a.at - b.at), { index, start, end, cutUntil: healBegan, configEntry, configAbsentDuringPartition, configReplicatedAfterMs });
        parts.push(fig);
        say(`partition ${index + 1}: local ${fig.local.ok}/${fig.local.calls}; cross failed ${fig.cross.failed}/${fig.cross.calls} (failed in median ${fig.cross.failMedianMs} ms; slowest ${fig.cross.maxMs} ms); ` +
          `cross calls back ${fig.recoveredAfterMs ?? 'never'} ms after heal; config in cloud ${configReplicatedAfterMs ?? 'never'} ms after heal`);
      }
      await sleep(2000);
    } finally {
      running = false;
      await Promise.all(loops);
      await net.heal().catch(() => {});
    }
    for (const p of parts) await cast.deleteConfig('service-defaults', p.configEntry).catch(() => {});
  } catch (err) {
    running = false;
    print(cast.report());
    throw err;
  } finally {
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
    await cast.stop();
  }

  const count = (k: 'local' | 'cross') => ({ calls: calls.filter((c) => c.kind === k).length, ok: calls.filter((c) => c.kind === k && c.ok).length });
  const report: FedChaosReport = {
    options: o, startedAt: new Date(t0).toISOString(), setupMs, elapsedMs: Date.now() - t0,
    totals: { local: count('local'), cross: count('cross') }, partitions: parts,
    verdict: judge(parts, o.partitions || 1), log,
  };
  const outDir = o.outDir || path.join('chaos-report', `${new Date(t0).toISOString().replace(/[:.]/g, '-')}-federation-seed${o.seed}`);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify({ ...report, calls }, null, 1));
  const md = markdown(report);
  fs.writeFileSync(path.join(outDir, 'report.md'), md);
  print(md);
  print(`report: ${outDir}/report.md, report.json`);
  return { report, outDir };
}

export function markdown(r: FedChaosReport): string {
  const s = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`);
  const rows = r.partitions.map((p) => `| ${p.index + 1} | ${s(p.start)}–${s(p.end)} (${s(p.end - p.start)}) | ${p.local.ok}/${p.local.calls} (${p.local.availability === null ? '—' : `${(p.local.availability * 100).toFixed(1)} %`}) | ` +
    `${p.cross.failed}/${p.cross.calls} failed, in median ${p.cross.failMedianMs ?? '—'} ms; slowest ${p.cross.maxMs ?? '—'} ms | ${s(p.recoveredAfterMs)} | ${p.configAbsentDuringPartition ? 'absent' : 'PRESENT'} / ${s(p.configReplicatedAfterMs)} |`);
  return [
    `# chaos --federation, seed ${r.options.seed}: ${r.verdict.ok ? 'PASS' : 'FAIL'}`,
    '',
    `Two datacenters (onprem primary, cloud) in network namespaces; set up in ${s(r.setupMs)}, ${s(r.elapsedMs)} in all. ` +
      `Calls: local (web -> payments v1, onprem) ${r.totals.local.ok}/${r.totals.local.calls} ok; cross-datacenter (web -> payments v2 -> gateways -> currency (cloud)) ${r.totals.cross.ok}/${r.totals.cross.calls} ok.`,
    '',
    '| WAN partition | window (since workload start) | local calls ok during | cross calls sent during | heal -> cross calls ok again | config entry in cloud: during / after heal |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Limits: local availability >= ${LIMITS.localAvailability * 100} %, cross calls fail within ${LIMITS.failFastMs} ms, back within ${LIMITS.recoveryMs / 1000} s of the heal, config entry in cloud within ${LIMITS.replicationMs / 1000} s of the heal.`,
    ...(r.verdict.ok ? [] : ['', '**Failures:**', ...r.verdict.failures.map((f) => `- ${f}`)]),
    '',
  ].join('\n');
}
