// A metrics sink shaped like hashicorp/go-metrics, which Consul uses: counters, gauges and samples
// (timings) under dotted names ("consul.kvs.apply"). It feeds two views:
//   - Prometheus text via prom-client (`/v1/agent/metrics?format=prometheus`), where dots become
//     underscores exactly as Consul's prometheus sink does (consul_kvs_apply, consul_raft_apply);
//   - Consul's JSON summary (`/v1/agent/metrics`): {Timestamp, Gauges, Points, Counters, Samples}.
// One sink per agent: the raft wiring and other components record into the same instance
// (AgentBackend.metrics) so both views show everything.

import { Counter, Gauge, Registry, Summary } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

interface Aggregate {
  name: string;
  labels: Labels;
  count: number;
  sum: number;
  sumSq: number;
  min: number;
  max: number;
}

/** JSON entry for a counter or sample, with go-metrics' field names. */
export interface SampledValue {
  Name: string;
  Count: number;
  Rate: number;
  Sum: number;
  Min: number;
  Max: number;
  Mean: number;
  Stddev: number;
  Labels: Record<string, string>;
}

export interface MetricsSummary {
  Timestamp: string;
  Gauges: Array<{ Name: string; Value: number; Labels: Record<string, string> }>;
  Points: unknown[];
  Counters: SampledValue[];
  Samples: SampledValue[];
}

function promName(dotted: string): string {
  return dotted.replace(/[^a-zA-Z0-9_:]/g, '_');
}

function aggKey(name: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? name : `${name}{${keys.map((k) => `${k}=${labels[k]}`).join(',')}}`;
}

/** Go's time.Time.String() layout, which Consul's JSON metrics carry: "2006-01-02 15:04:05 +0000 UTC". */
function goTimestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000 UTC`;
}

export class MetricsSink {
  readonly registry: Registry;
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();
  private readonly summaries = new Map<string, Summary>();
  private readonly counterAgg = new Map<string, Aggregate>();
  private readonly sampleAgg = new Map<string, Aggregate>();
  private readonly gaugeValues = new Map<string, { name: string; labels: Labels; value: number }>();
  private readonly now: () => number;
  private readonly startedMs: number;

  constructor(opts: { registry?: Registry; now?: () => number } = {}) {
    this.registry = opts.registry ?? new Registry();
    this.now = opts.now ?? Date.now;
    this.startedMs = this.now();
  }

  /** Adds `n` to a counter (go-metrics IncrCounter). */
  incrCounter(name: string, n = 1, labels: Labels = {}): void {
    let c = this.counters.get(name);
    if (!c) {
      c = new Counter({ name: promName(name), help: name, labelNames: Object.keys(labels), registers: [this.registry] });
      this.counters.set(name, c);
    }
    c.inc(labels, n);
    this.aggregate(this.counterAgg, name, labels, n);
  }

  /** Sets a gauge (go-metrics SetGauge). */
  setGauge(name: string, value: number, labels: Labels = {}): void {
    let g = this.gauges.get(name);
    if (!g) {
      g = new Gauge({ name: promName(name), help: name, labelNames: Object.keys(labels), registers: [this.registry] });
      this.gauges.set(name, g);
    }
    g.set(labels, value);
    this.gaugeValues.set(aggKey(name, labels), { name, labels, value });
  }

  /** Records a timing in milliseconds (go-metrics AddSample / MeasureSince). */
  addSample(name: string, ms: number, labels: Labels = {}): void {
    let s = this.summaries.get(name);
    if (!s) {
      // Consul's prometheus sink exports summaries with these objectives.
      s = new Summary({
        name: promName(name), help: name, labelNames: Object.keys(labels), registers: [this.registry],
        percentiles: [0.5, 0.9, 0.99], maxAgeSeconds: 600, ageBuckets: 5,
      });
      this.summaries.set(name, s);
    }
    s.observe(labels, ms);
    this.aggregate(this.sampleAgg, name, labels, ms);
  }

  /** Convenience: records the time elapsed since `startMs` (performance.now() based). */
  measureSince(name: string, startMs: number, labels: Labels = {}): void {
    this.addSample(name, performance.now() - startMs, labels);
  }

  private aggregate(map: Map<string, Aggregate>, name: string, labels: Labels, v: number): void {
    const key = aggKey(name, labels);
    let a = map.get(key);
    if (!a) {
      a = { name, labels, count: 0, sum: 0, sumSq: 0, min: v, max: v };
      map.set(key, a);
    }
    a.count++;
    a.sum += v;
    a.sumSq += v * v;
    if (v < a.min) a.min = v;
    if (v > a.max) a.max = v;
  }

  /** Consul's `/v1/agent/metrics` JSON. Aggregates are since agent start (go-metrics keeps 10 s
   *  intervals; one cumulative interval keeps this allocation-free and still answers "how many, how
   *  slow"). Rate is per second over that interval. */
  summary(): MetricsSummary {
    const elapsedS = Math.max(1, (this.now() - this.startedMs) / 1000);
    const sampled = (a: Aggregate): SampledValue => {
      const mean = a.count ? a.sum / a.count : 0;
      const variance = a.count > 1 ? Math.max(0, (a.sumSq - a.count * mean * mean) / (a.count - 1)) : 0;
      return {
        Name: a.name, Count: a.count, Rate: a.sum / elapsedS, Sum: a.sum, Min: a.min, Max: a.max,
        Mean: mean, Stddev: Math.sqrt(variance), Labels: { ...a.labels },
      };
    };
    const byName = <T extends { Name: string }>(x: T[]) => x.sort((a, b) => a.Name.localeCompare(b.Name));
    return {
      Timestamp: goTimestamp(new Date(this.now())),
      Gauges: byName([...this.gaugeValues.values()].map((g) => ({ Name: g.name, Value: g.value, Labels: { ...g.labels } }))),
      Points: [],
      Counters: byName([...this.counterAgg.values()].map(sampled)),
      Samples: byName([...this.sampleAgg.values()].map(sampled)),
    };
  }

  /** Prometheus text exposition of everything in the registry. */
  async prometheus(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
