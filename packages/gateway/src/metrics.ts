// The proxy's Prometheus metrics, written in the text exposition format by hand: a handful of
// counters and gauges do not need prom-client, and every MB counts in the proxy's 60 MB budget
// (docs/BENCHMARKS.md). Names follow Consul's
// built-in proxy (connect/proxy/conn.go reports `consul.proxy.<svc>.inbound.conns` and
// `.tx_bytes`/`.rx_bytes` by direction), in Prometheus form with labels instead of name parts.

import type net from 'node:net';
import { serveText } from './httpLite.ts';

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, number>;
}

function labelKey(labels: Labels): string {
  const parts = Object.keys(labels).sort().map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  private readonly constLabels: Labels;
  constructor(constLabels: Labels = {}) {
    this.constLabels = constLabels;
  }

  private family(name: string, type: Family['type'], help: string): Family {
    let f = this.families.get(name);
    if (!f) { f = { help, type, values: new Map() }; this.families.set(name, f); }
    return f;
  }

  add(name: string, help: string, labels: Labels, n = 1, type: Family['type'] = 'counter'): void {
    this.addKeyed(name, help, this.key(labels), n, type);
  }

  /** The formatted label set, for a caller that counts the same labels often (the mesh gateway, per target). */
  key(labels: Labels): string {
    return labelKey({ ...this.constLabels, ...labels });
  }

  /** add() with a key from key(). */
  addKeyed(name: string, help: string, key: string, n = 1, type: Family['type'] = 'counter'): void {
    const f = this.family(name, type, help);
    f.values.set(key, (f.values.get(key) ?? 0) + n);
  }

  get(name: string, labels: Labels = {}): number {
    return this.families.get(name)?.values.get(labelKey({ ...this.constLabels, ...labels })) ?? 0;
  }

  text(): string {
    const out: string[] = [];
    // The process's own memory, under prom-client's default metric names (the proxy has a budget).
    const mem = process.memoryUsage();
    for (const [name, help, v] of [
      ['process_resident_memory_bytes', 'Resident memory size in bytes.', mem.rss],
      ['nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', mem.heapTotal],
      ['nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', mem.heapUsed],
      ['nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', mem.external],
    ] as const) out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const [k, v] of f.values) out.push(`${name}${k} ${v}`);
    }
    return `${out.join('\n')}\n`;
  }
}

/** The metric names (one place, so tests and dashboards agree). */
export const M = {
  connsTotal: ['consul_proxy_conns_total', 'Connections accepted, by direction (inbound: the public listener; upstream: a local upstream listener).'],
  connsActive: ['consul_proxy_conns', 'Connections open now, by direction.'],
  rxBytes: ['consul_proxy_rx_bytes_total', 'Bytes received from the downstream side (the caller), by direction; counted when a connection closes.'],
  txBytes: ['consul_proxy_tx_bytes_total', 'Bytes sent to the downstream side (the caller), by direction; counted when a connection closes.'],
  handshakeFailures: ['consul_proxy_tls_handshake_failures_total', 'mTLS handshakes that failed (bad or missing client certificate, unknown CA, wrong server identity), by direction.'],
  denials: ['consul_proxy_intention_denials_total', 'Inbound connections refused by intentions.'],
  resumed: ['consul_proxy_tls_resumed_total', 'Upstream mTLS connections that resumed a TLS session (no full handshake).'],
  dialFailures: ['consul_proxy_upstream_dial_failures_total', 'Upstream connections that could not be made (no healthy instance, connection refused).'],
} as const satisfies Record<string, readonly [string, string]>;

/** Serves GET /metrics (any other path: 404). Resolves with the bound server. */
export function serveMetrics(metrics: Metrics, host: string, port: number): Promise<net.Server> {
  const server = serveText((method, path) => {
    if (method === 'GET' && (path === '/metrics' || path.startsWith('/metrics?'))) {
      return { status: 200, contentType: 'text/plain; version=0.0.4; charset=utf-8', body: metrics.text() };
    }
    return { status: 404, contentType: 'text/plain', body: '404 page not found\n' };
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(server); });
  });
}
