// Discovery chain compile time (issue 14's target: a chain of 50 config entries ≤ 5 ms).
//
//   npx node packages/agent/bench/chain.ts [--iterations 2000] [--json]
//
// The 50 entries, stored as the state store keeps them (Go duration strings): 1 router with 10
// routes, 16 splitters (each 50/50 between its service's v1 subset and the next service, so the
// router's chain flattens splitters 16 deep), 16 resolvers (two subsets, a default subset, failover
// to a second datacenter, a connect timeout) and 17 service-defaults (protocol http). Each iteration
// does what GET /v1/discovery-chain does per request after the read: convert the stored entries to
// the compiler's input and compile the chain of the router's service. Figures: median, p99 and max
// of one compile, after a warm-up.
import { parseArgs } from 'node:util';
import { compileDiscoveryChain } from '../src/connect/discoveryChain.ts';
import { formatGoDurationNs } from '../src/config/duration.ts';
import { chainEntriesOf } from '../src/http/routes/discoveryChain.ts';
import type { ConfigEntry } from '../src/state/types.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000' }, json: { type: 'boolean', default: false } }, strict: true });
const iterations = Number(values.iterations);
if (!Number.isInteger(iterations) || iterations < 10) throw new Error('--iterations must be an integer ≥ 10');

function entries(): ConfigEntry[] {
  const out: Record<string, unknown>[] = [];
  const N = 16;
  for (let i = 0; i <= N; i++) out.push({ Kind: 'service-defaults', Name: `svc${i}`, Protocol: 'http' });
  for (let i = 0; i < N; i++) {
    out.push({ Kind: 'service-splitter', Name: `svc${i}`, Splits: [{ Weight: 50, ServiceSubset: 'v1' }, { Weight: 50, Service: `svc${i + 1}` }] });
    out.push({
      Kind: 'service-resolver', Name: `svc${i}`, DefaultSubset: 'v1', ConnectTimeout: '3s',
      Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2', OnlyPassing: true } },
      Failover: { '*': { Datacenters: ['dc2'] } },
    });
  }
  out.push({
    Kind: 'service-router', Name: 'svc0',
    Routes: Array.from({ length: 10 }, (_, i) => ({ Match: { HTTP: { PathPrefix: `/r${i}`, Header: [{ Name: 'x-route', Exact: String(i) }] } }, Destination: { Service: `svc${i}` } })),
  });
  return out.map((e, i) => ({ ...e, CreateIndex: i + 1, ModifyIndex: i + 1 }) as unknown as ConfigEntry);
}

const stored = entries();
if (stored.length !== 50) throw new Error(`expected 50 entries, built ${stored.length}`);
const formatDuration = (ns: number): string => formatGoDurationNs(BigInt(ns));
const once = () => compileDiscoveryChain({ serviceName: 'svc0', datacenter: 'dc1', trustDomain: '11111111-2222-3333-4444-555555555555.consul', entries: chainEntriesOf(stored), formatDuration });

const chain = once();
for (let i = 0; i < 200; i++) once();
const times: number[] = [];
for (let i = 0; i < iterations; i++) {
  const t0 = performance.now();
  once();
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
const result = {
  entries: stored.length, nodes: Object.keys(chain.Nodes).length, targets: Object.keys(chain.Targets).length, iterations,
  medianMs: +q(0.5).toFixed(3), p99Ms: +q(0.99).toFixed(3), maxMs: +times[times.length - 1]!.toFixed(3), targetMs: 5,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`compile a chain of ${result.entries} config entries (${result.nodes} nodes, ${result.targets} targets), ${iterations} iterations`);
  console.log(`  median ${result.medianMs} ms   p99 ${result.p99Ms} ms   max ${result.maxMs} ms   (target ≤ ${result.targetMs} ms)`);
}
