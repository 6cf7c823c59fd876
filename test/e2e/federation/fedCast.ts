// The cast of SCENARIOS.md across its three datacenters (onprem primary, cloud, space) as real
// processes in a Topology (topology.ts: network namespaces, else loopback): per datacenter one
// server agent (-server -bootstrap, Connect on, primary_datacenter onprem; it also hosts the
// datacenter's services, as the dev agent of cast.ts does), one `trellis connect gateway
// -register` mesh gateway, and the test apps each with a `trellis connect proxy -sidecar-for`.
// Config entries and intentions are written in onprem and replicate out. Every wait is a
// condition with a deadline.

import { request, runTrellis, waitFor, type CliResult, type HttpResult } from '../../support/index.ts';
import type { TestAppAnswer } from '../../fixtures/testApp.ts';
import { ALLOWS } from '../scenarios/cast.ts';
import { DATACENTERS, Proc, Topology, listening, type Dc, type Site, type Slot } from './topology.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const PRIMARY: Dc = 'onprem';

export interface FedMember {
  dc: Dc;
  service: string;
  id: string;
  display: string;
  /** Tag v<version> and Meta.version (the cast table's "tags/meta"; api and backend have none). */
  version?: '1' | '2';
  upstream?: string;
  /** Its port slot (topology.ts): members of different datacenters share slots on purpose. */
  slot: 'front' | 'p1' | 'p2' | 'currency';
  /** web and api listen where a user reaches them (the datacenter's WAN address); the rest on 127.0.0.1 only. */
  public?: boolean;
}

/** SCENARIOS.md's cast table, every row. */
export const CAST = {
  web: { dc: 'onprem', service: 'web', id: 'web', display: 'web (onprem)', version: '1', upstream: 'payments', slot: 'front', public: true },
  paymentsV1: { dc: 'onprem', service: 'payments', id: 'payments-v1', display: 'payments v1 (onprem)', version: '1', slot: 'p1' },
  currencyV1: { dc: 'onprem', service: 'currency', id: 'currency-v1', display: 'currency (onprem)', version: '1', slot: 'currency' },
  paymentsV2: { dc: 'onprem', service: 'payments', id: 'payments-v2', display: 'payments v2 (onprem)', version: '2', upstream: 'currency', slot: 'p2' },
  currencyCloud: { dc: 'cloud', service: 'currency', id: 'currency', display: 'currency (cloud)', version: '2', slot: 'currency' },
  api: { dc: 'cloud', service: 'api', id: 'api', display: 'api (cloud)', upstream: 'backend', slot: 'front', public: true },
  backend: { dc: 'space', service: 'backend', id: 'backend', display: 'backend (space)', slot: 'p1' },
} satisfies Record<string, FedMember>;

export interface RunningMember {
  member: FedMember;
  app: Proc;
  proxy: Proc;
}

export interface Answer {
  status: number;
  body: TestAppAnswer;
}

/**
 * One call of a chain in words: "payments v2 (onprem) -> currency (cloud)". A hop that failed
 * shows as "status <code>" (-1: no connection; 5xx: the sidecar's own answer), an app that answered
 * but whose own call failed as "<name> -> status <code>".
 */
export function describeCall(call: TestAppAnswer | undefined): string {
  if (!call) return 'no call';
  if (!call.name) return `status ${call.code}`;
  const nested = Object.values(call.upstream_calls ?? {});
  if (nested.length) return `${call.name} -> ${nested.map(describeCall).join(', ')}`;
  return call.code === 200 ? call.name : `${call.name} (status ${call.code})`;
}

/**
 * A call that failed at the hop `depth` calls below the front app (a connection failure or an
 * error status), the front app answering 500 (federation.test.ts, chaos --federation).
 */
export function failedHop(r: { status: number; body: TestAppAnswer }, depth: number): boolean {
  let call: TestAppAnswer | undefined = r.body;
  for (let i = 0; i < depth; i++) call = Object.values(call?.upstream_calls ?? {})[0];
  return r.status === 500 && call !== undefined && (call.code === -1 || call.code >= 500);
}

export class FedCast {
  readonly topo: Topology;
  readonly servers = new Map<Dc, Proc>();
  readonly gateways = new Map<Dc, Proc>();
  readonly running = new Map<string, RunningMember>();
  private constructor(topo: Topology) { this.topo = topo; }

  /**
   * `log` gets the line saying which topology it is (namespaces, or the loopback fallback and why).
   * `wanfed`: WAN federation through mesh gateways (servers with TLS on the server port,
   * connect.enable_mesh_gateway_wan_federation, primary_gateways in the secondaries; server RPC
   * ports closed between the namespaces).
   */
  static async create(log?: (line: string) => void, o: { wanfed?: boolean } = {}): Promise<FedCast> {
    // TRELLIS_FED_WANFED=1 runs a suite built on the default (the A5–A7 story) in wanfed mode
    // (2026-12-07: federation.test.ts 20 of 20 in namespaces).
    const wanfed = o.wanfed ?? process.env['TRELLIS_FED_WANFED'] === '1';
    const topo = await Topology.create(log, { wanfed });
    if (wanfed) makeServerCerts(topo);
    return new FedCast(topo);
  }

  site(dc: Dc): Site { return this.topo.sites[dc]; }

  /** The agent's HTTP API as the test process reaches it. */
  httpBase(dc: Dc): string { return `http://${this.site(dc).wanHost}:${this.site(dc).ports.http}`; }
  /**
   * The agent's HTTP API as processes of its own datacenter reach it: its WAN address too (the
   * agent binds HTTP on the first -client address only, so it listens on one address).
   */
  localHttp(dc: Dc): string { return `${this.site(dc).wanHost}:${this.site(dc).ports.http}`; }
  /** Where other datacenters' servers join this one's WAN pool. */
  serfWanAddr(dc: Dc): string { return `${this.site(dc).wanHost}:${this.site(dc).ports.serfWan}`; }

  http(dc: Dc, method: string, p: string, body?: unknown): Promise<HttpResult> {
    return request(this.httpBase(dc), method, p, { body, timeoutMs: 15_000 });
  }

  async getJson<T>(dc: Dc, p: string): Promise<T> {
    const r = await this.http(dc, 'GET', p);
    if (r.status !== 200) throw new Error(`GET ${p} in ${dc}: ${r.status} ${r.text}`);
    return r.json<T>();
  }

  cli(dc: Dc, args: string[]): Promise<CliResult> {
    return runTrellis(args, { env: { CONSUL_HTTP_ADDR: this.httpBase(dc).slice('http://'.length) } });
  }

  /**
   * The datacenter's server: bootstraps itself, Connect on, primary_datacenter onprem; the others
   * join onprem's WAN pool (-retry-join-wan; wanfed: through onprem's gateway, primary_gateways). Ready once it has a leader; the pid the test holds
   * must be the agent's own (its -pid-file), not a wrapper's (`ip netns exec` and the launcher exec).
   */
  async startServer(dc: Dc): Promise<Proc> {
    const s = this.site(dc);
    const cfg = path.join(s.dir, 'agent.json');
    const certs = path.join(this.topo.root, 'certs');
    fs.writeFileSync(cfg, JSON.stringify(this.topo.wanfed
      ? {
        primary_datacenter: PRIMARY,
        connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
        tls: {
          defaults: { ca_file: path.join(certs, 'ca.crt'), cert_file: path.join(certs, `${dc}.crt`), key_file: path.join(certs, `${dc}.key`), verify_incoming: true, verify_outgoing: true },
          internal_rpc: { verify_server_hostname: true },
        },
        // The secondaries join the WAN pool through the primary's gateway (no serf WAN port crosses).
        ...(dc !== PRIMARY ? { primary_gateways: [`${this.site(PRIMARY).wanHost}:${this.site(PRIMARY).ports.gwWan}`], primary_gateways_interval: '1s' } : {}),
      }
      : { primary_datacenter: PRIMARY, connect: { enabled: true } }));
    const pidFile = path.join(s.dir, 'agent.pid');
    fs.rmSync(pidFile, { force: true });
    const args = ['agent', '-server', '-bootstrap', '-data-dir', path.join(s.dir, 'data'), '-datacenter', dc, '-node', `${dc}-server`,
      '-bind', s.wanHost, '-client', s.wanHost, '-config-file', cfg, '-pid-file', pidFile,
      '-http-port', String(s.ports.http), '-dns-port', String(s.ports.dns), '-server-port', String(s.ports.server),
      '-serf-lan-port', String(s.ports.serfLan), '-serf-wan-port', String(s.ports.serfWan)];
    if (dc !== PRIMARY && !this.topo.wanfed) args.push('-retry-join-wan', this.serfWanAddr(PRIMARY), '-retry-interval-wan', '1s');
    const proc = this.topo.trellis(dc, 'server', args);
    this.servers.set(dc, proc);
    await waitFor(`${dc}'s server has a leader`, async () => {
      if (!proc.running) throw new Error(`${dc}'s server exited: ${proc.output().slice(-2000)}`);
      const r = await this.http(dc, 'GET', '/v1/status/leader').catch(() => undefined);
      return r?.status === 200 && r.json<string>() !== '';
    }, 60_000, 200);
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    if (pid !== proc.pid) throw new Error(`${dc}'s server: the pid held (${proc.pid}) is not the agent's (${pid} in its -pid-file)`);
    return proc;
  }

  /** `trellis connect gateway -register -service mesh-gateway` with a LAN (127.0.0.1) and a WAN address; waits until passing. */
  async startGateway(dc: Dc): Promise<Proc> {
    const s = this.site(dc);
    const proc = this.topo.trellis(dc, 'mesh-gateway', ['connect', 'gateway', '-register', '-service', 'mesh-gateway',
      '-address', `${s.lanHost}:${s.ports.gwLan}`, '-wan-address', `${s.wanHost}:${s.ports.gwWan}`,
      '-http-addr', this.localHttp(dc), '-metrics-addr', `${s.wanHost}:${s.ports.gwMetrics}`, ...(this.topo.wanfed ? ['-expose-servers'] : [])]);
    this.gateways.set(dc, proc);
    await waitFor(`${dc}'s mesh gateway listening on its WAN address and passing`, async () => {
      if (!proc.running) throw new Error(`${dc}'s gateway exited: ${proc.output().slice(-2000)}`);
      if (!(await listening(s.wanHost, s.ports.gwWan))) return false;
      const h = await this.getJson<Array<{ Service: { ID: string } }>>(dc, '/v1/health/service/mesh-gateway?passing=1');
      return h.some((e) => e.Service.ID === 'mesh-gateway');
    }, 60_000, 250);
    return proc;
  }

  async stopGateway(dc: Dc): Promise<void> {
    await this.gateways.get(dc)?.stop();
    this.gateways.delete(dc);
  }

  /** A counter from a gateway's /metrics (summed over the series whose labels include `labels`). */
  async gatewayMetric(dc: Dc, name: string, labels: Record<string, string> = {}): Promise<number> {
    const s = this.site(dc);
    const r = await request(`http://${s.wanHost}:${s.ports.gwMetrics}`, 'GET', '/metrics', { timeoutMs: 5000 });
    let sum = 0;
    for (const line of r.text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
    }
    return sum;
  }

  /** PUT /v1/config in the primary; throws unless the status is `expect`. */
  async putConfig(entry: Record<string, unknown>, expect = 200): Promise<HttpResult> {
    const r = await this.http(PRIMARY, 'PUT', '/v1/config', entry);
    if (r.status !== expect) throw new Error(`PUT /v1/config ${String(entry.Kind)}/${String(entry.Name)}: ${r.status} ${r.text}`);
    return r;
  }

  async deleteConfig(kind: string, name: string): Promise<void> {
    const r = await this.http(PRIMARY, 'DELETE', `/v1/config/${kind}/${name}`);
    if (r.status !== 200) throw new Error(`DELETE /v1/config/${kind}/${name}: ${r.status} ${r.text}`);
  }

  /** Waits until `dc` reads kind/name with the primary's content (replicated), or its absence once deleted. */
  async waitReplicated(dcs: Dc[], kind: string, name: string, timeoutMs = 20_000): Promise<void> {
    const want = await this.http(PRIMARY, 'GET', `/v1/config/${kind}/${name}`);
    const strip = (t: string) => { const o = JSON.parse(t) as Record<string, unknown>; delete o.CreateIndex; delete o.ModifyIndex; delete o.Hash; return JSON.stringify(o); };
    for (const dc of dcs) {
      if (dc === PRIMARY) continue;
      await waitFor(`${kind}/${name} replicated to ${dc}`, async () => {
        const got = await this.http(dc, 'GET', `/v1/config/${kind}/${name}`);
        if (want.status === 404) return got.status === 404;
        return got.status === 200 && strip(got.text) === strip(want.text);
      }, timeoutMs, 200);
    }
  }

  /** proxy-defaults (protocol http, MeshGateway local) and default-deny intentions with the story's allows, in the primary. */
  async writeGlobals(): Promise<void> {
    await this.putConfig({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' }, MeshGateway: { Mode: 'local' } });
    const deny = await this.cli(PRIMARY, ['intention', 'create', '-deny', '*', '*']);
    if (deny.code !== 0) throw new Error(`intention create -deny * *: ${deny.stderr}`);
    for (const [src, dst] of ALLOWS) {
      const r = await this.cli(PRIMARY, ['intention', 'create', '-allow', src, dst]);
      if (r.code !== 0) throw new Error(`intention create -allow ${src} ${dst}: ${r.stderr}`);
    }
  }

  /** Starts the member's app, registers it with its sidecar on its datacenter's agent and starts the sidecar. */
  async add(member: FedMember, upstream = member.upstream): Promise<RunningMember> {
    const s = this.site(member.dc);
    const p = (suffix: '' | 'Sidecar' | 'Upstream') => s.ports[`${member.slot}${suffix}` as Slot];
    const host = member.public ? s.wanHost : s.lanHost;
    const upstreamUri = upstream ? `http://127.0.0.1:${p('Upstream')}` : undefined;
    const app = this.topo.app(member.dc, member.id, member.display, `${host}:${p('')}`, upstreamUri ? [upstreamUri] : []);
    const meta = member.version ? { version: member.version } : {};
    const body = {
      Name: member.service, ID: member.id, Port: p(''), Address: host, Tags: member.version ? [`v${member.version}`] : [], Meta: meta,
      Connect: { SidecarService: { Port: p('Sidecar'), Address: s.lanHost, Meta: meta, Proxy: {
        Config: { bind_address: s.lanHost }, LocalServiceAddress: host,
        Upstreams: upstream ? [{ DestinationName: upstream, LocalBindPort: p('Upstream') }] : [],
      } } },
    };
    const r = await this.http(member.dc, 'PUT', '/v1/agent/service/register', body);
    if (r.status !== 200) { await app.stop(); throw new Error(`register ${member.id} in ${member.dc}: ${r.status} ${r.text}`); }
    const proxy = this.topo.trellis(member.dc, `${member.id}-sidecar-proxy`, ['connect', 'proxy', '-sidecar-for', member.id, '-http-addr', this.localHttp(member.dc), '-log-level', 'info']);
    const running = { member, app, proxy };
    this.running.set(member.id, running);
    return running;
  }

  /** Stops the member's app and sidecar (its registration stays: its sidecar's check goes critical). */
  async halt(member: FedMember): Promise<void> {
    const r = this.running.get(member.id);
    if (!r) return;
    await r.proxy.stop();
    await r.app.stop();
    this.running.delete(member.id);
  }

  /** Waits until the instance and its sidecar are registered and passing. */
  async waitPassing(member: FedMember, timeoutMs = 60_000): Promise<void> {
    for (const [svc, id] of [[member.service, member.id], [`${member.service}-sidecar-proxy`, `${member.id}-sidecar-proxy`]] as const) {
      await waitFor(`${id} passing in ${member.dc}`, async () => {
        const h = await this.getJson<Array<{ Service: { ID: string } }>>(member.dc, `/v1/health/service/${svc}?passing=1`);
        return h.some((e) => e.Service.ID === id);
      }, timeoutMs, 250);
    }
  }

  /** GET on a public app (web in onprem, api in cloud): the whole answer. */
  async get(front: 'web' | 'api', p: string, headers: Record<string, string> = {}): Promise<Answer> {
    const m = CAST[front];
    const s = this.site(m.dc);
    const r = await request(`http://${s.wanHost}:${s.ports.front}`, 'GET', p, { headers, timeoutMs: 20_000 });
    return { status: r.status, body: JSON.parse(r.text) as TestAppAnswer };
  }

  /** Who answered the front app's upstream call, and their calls: "payments v2 (onprem) -> currency (cloud)". */
  async via(front: 'web' | 'api', p: string, headers: Record<string, string> = {}): Promise<string> {
    const r = await this.get(front, p, headers);
    const calls = Object.values(r.body.upstream_calls ?? {});
    return calls.length ? calls.map(describeCall).join(', ') : 'no call';
  }

  /** How many of n answers `via` gives each name; `parallel` requests at a time (each its own connections). */
  async tally(n: number, front: 'web' | 'api', p: string, headers: Record<string, string> = {}, parallel = 1): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const who = await this.via(front, p, headers).catch((err: Error) => `error ${err.message}`);
        seen.set(who, (seen.get(who) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
    return seen;
  }

  /** Everything's output tail, for a failed test. */
  report(): string {
    const procs = [...this.servers.values(), ...this.gateways.values(), ...[...this.running.values()].flatMap((r) => [r.proxy, r.app])];
    return procs.map((p) => `# ---- ${p.name} (pid ${p.pid}${p.running ? '' : ', exited'}):\n${p.output().slice(-2500)}`).join('\n');
  }

  async stop(): Promise<void> {
    await this.topo.destroy();
  }
}

export { DATACENTERS };

/** A CA and a server certificate per datacenter (server.<dc>.consul), in <root>/certs (wanfed). */
function makeServerCerts(topo: Topology): void {
  const dir = path.join(topo.root, 'certs');
  fs.mkdirSync(dir, { recursive: true });
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '1');
  for (const dc of DATACENTERS) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dc}.key`, '-out', `${dc}.csr`, '-subj', `/CN=server.${dc}.consul`);
    fs.writeFileSync(path.join(dir, `${dc}.ext`), `subjectAltName=DNS:server.${dc}.consul\nextendedKeyUsage=serverAuth,clientAuth\n`);
    ssl('x509', '-req', '-in', `${dc}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${dc}.crt`, '-days', '1', '-extfile', `${dc}.ext`);
  }
}
