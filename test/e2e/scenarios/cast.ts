// The cast of SCENARIOS.md (onprem only: A0–A4 are single-datacenter) as real processes: one dev
// agent, the test apps (127.0.0.1 only), each with a `trellis connect proxy -sidecar-for` process.
// Shared by the scenario suite (scenarios.test.ts) and `npm run demo` (demo.ts), so both tell the
// same story. Every wait is a condition with a deadline (waitFor).

import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { startTestApp, type TestApp, type TestAppAnswer } from '../../fixtures/testApp.ts';
import { AgentProcess, freePort, launcher, runTrellis, trellisEnv, waitFor, type CliResult, type HttpResult } from '../../support/index.ts';

export interface CastMember {
  /** Service name (payments) and instance ID (payments-v2). */
  service: string;
  id: string;
  display: string;
  version: '1' | '2';
  /** The one upstream the app calls through its sidecar, if any. */
  upstream?: string;
}

/** SCENARIOS.md's cast table, onprem rows. */
export const ONPREM: Record<'web' | 'paymentsV1' | 'currencyV1' | 'paymentsV2', CastMember> = {
  web: { service: 'web', id: 'web', display: 'web (onprem)', version: '1', upstream: 'payments' },
  paymentsV1: { service: 'payments', id: 'payments-v1', display: 'payments v1 (onprem)', version: '1' },
  currencyV1: { service: 'currency', id: 'currency-v1', display: 'currency (onprem)', version: '1' },
  paymentsV2: { service: 'payments', id: 'payments-v2', display: 'payments v2 (onprem)', version: '2', upstream: 'currency' },
};

/** A0: with `* → *` deny, exactly these allows (source → destination). */
export const ALLOWS: Array<[string, string]> = [
  ['web', 'payments'], ['web', 'currency'], ['payments', 'currency'], ['api', 'backend'], ['backend', 'payments'],
];

export interface Running {
  member: CastMember;
  app: TestApp;
  proxy: ChildProcess;
  proxyOut: () => string;
  /** The URL the app's upstream call goes to (its sidecar's local listener), if any. */
  upstreamUri?: string;
  sidecarPort: number;
}

export interface Answer {
  status: number;
  body: TestAppAnswer;
}

/**
 * Every sidecar proxy still running, killed when this process exits or is signalled (the test
 * runner cancels a file by signal; Ctrl-C stops the demo): agentProcess.ts does the same for agents.
 */
const liveProxies = new Set<ChildProcess>();
const killProxies = () => { for (const p of liveProxies) if (p.exitCode === null) p.kill('SIGKILL'); };
process.on('exit', killProxies);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, killProxies);

export class Cast {
  readonly running = new Map<string, Running>();
  readonly agent: AgentProcess;
  private constructor(agent: AgentProcess) { this.agent = agent; }

  /** The agent, proxy-defaults (protocol http) and default-deny intentions with the A0 allows. */
  static async start(name = 'scenarios'): Promise<Cast> {
    const agent = await AgentProcess.start({ name });
    const cast = new Cast(agent);
    try {
      await cast.putConfig({ Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } }, 200);
      const deny = await cast.cli(['intention', 'create', '-deny', '*', '*']);
      if (deny.code !== 0) throw new Error(`intention create -deny * *: ${deny.stderr}`);
      for (const [src, dst] of ALLOWS) {
        const r = await cast.cli(['intention', 'create', '-allow', src, dst]);
        if (r.code !== 0) throw new Error(`intention create -allow ${src} ${dst}: ${r.stderr}`);
      }
    } catch (err) {
      await cast.stop();
      throw err;
    }
    return cast;
  }

  cli(args: string[]): Promise<CliResult> {
    return runTrellis(args, { env: { CONSUL_HTTP_ADDR: this.agent.httpAddr } });
  }

  /** PUT /v1/config; throws unless the status is `expect` (the caller checks refusals itself). */
  async putConfig(entry: Record<string, unknown>, expect = 200): Promise<HttpResult> {
    const r = await this.agent.request('PUT', '/v1/config', { body: JSON.stringify(entry) });
    if (r.status !== expect) throw new Error(`PUT /v1/config ${entry.Kind}/${entry.Name}: ${r.status} ${r.text}`);
    return r;
  }

  async deleteConfig(kind: string, name: string): Promise<void> {
    const r = await this.agent.request('DELETE', `/v1/config/${kind}/${name}`);
    if (r.status !== 200) throw new Error(`DELETE /v1/config/${kind}/${name}: ${r.status} ${r.text}`);
  }

  /** Starts the member's app, registers it with its sidecar and starts the sidecar proxy. */
  async add(member: CastMember): Promise<Running> {
    const upstreamPort = member.upstream ? await freePort() : undefined;
    const upstreamUri = upstreamPort ? `http://127.0.0.1:${upstreamPort}` : undefined;
    const app = await startTestApp({ name: member.display, upstreams: upstreamUri ? [upstreamUri] : [] });
    const sidecarPort = await freePort();
    const meta = { version: member.version };
    const body = {
      Name: member.service, ID: member.id, Port: app.port, Address: '127.0.0.1', Tags: [`v${member.version}`], Meta: meta,
      Connect: { SidecarService: { Port: sidecarPort, Meta: meta, Proxy: {
        Config: { bind_address: '127.0.0.1' },
        Upstreams: member.upstream ? [{ DestinationName: member.upstream, LocalBindPort: upstreamPort }] : [],
      } } },
    };
    const r = await this.agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
    if (r.status !== 200) { await app.close(); throw new Error(`register ${member.id}: ${r.status} ${r.text}`); }
    const proxy = spawn(launcher, ['connect', 'proxy', '-sidecar-for', member.id, '-http-addr', this.agent.httpAddr, '-log-level', 'info'],
      { env: trellisEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proxy.stdout!.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
    proxy.stderr!.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
    liveProxies.add(proxy);
    proxy.once('exit', () => liveProxies.delete(proxy));
    const running: Running = { member, app, proxy, proxyOut: () => out, upstreamUri, sidecarPort };
    this.running.set(member.id, running);
    return running;
  }

  /** Waits until the instance and its sidecar are registered and passing (the health endpoint). */
  async waitPassing(member: CastMember, timeoutMs = 60_000): Promise<void> {
    for (const [svc, id] of [[member.service, member.id], [`${member.service}-sidecar-proxy`, `${member.id}-sidecar-proxy`]] as const) {
      await waitFor(`${id} passing`, async () => {
        const r = await this.agent.request('GET', `/v1/health/service/${svc}?passing=1`);
        return r.status === 200 && (r.json() as Array<{ Service: { ID: string } }>).some((e) => e.Service.ID === id);
      }, timeoutMs, 200);
    }
  }

  /** GET on web (the only app a user reaches). */
  get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    const web = this.running.get(ONPREM.web.id);
    if (!web) throw new Error('web is not running');
    return getJson(web.app.url + path, headers);
  }

  /**
   * Who answered web's payments call: the display name, with the nested call's display name after
   * " -> " (payments v2 calls currency), or `status <code>` on a failed call.
   */
  async via(path: string, headers: Record<string, string> = {}): Promise<string> {
    const web = this.running.get(ONPREM.web.id)!;
    const r = await this.get(path, headers);
    const call = r.body.upstream_calls?.[web.upstreamUri!];
    if (call?.code !== 200) return `status ${call?.code}`;
    const nested = Object.values(call.upstream_calls ?? {});
    return nested.length ? `${call.name} -> ${nested.map((n) => (n.code === 200 ? n.name : `status ${n.code}`)).join(', ')}` : call.name;
  }

  /** How many of n answers `via` gives each name. */
  async tally(n: number, path: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const who = await this.via(path, headers);
      seen.set(who, (seen.get(who) ?? 0) + 1);
    }
    return seen;
  }

  async stop(): Promise<void> {
    for (const r of this.running.values()) if (r.proxy.exitCode === null) r.proxy.kill('SIGKILL');
    for (const r of this.running.values()) await r.app.close();
    this.running.clear();
    await this.agent.dispose();
  }
}

export function getJson(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => { try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(s) as TestAppAnswer }); } catch (err) { reject(err); } });
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`GET ${url}: no answer in 15 s`)));
    req.on('error', reject);
  });
}

/**
 * A plain TCP client (no mesh certificate) sends an HTTP request to a port: what came back (empty
 * when the listener refused it). Bounded by a 5 s socket timeout.
 */
export function plainProbe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('data', (c: Buffer) => { data += c.toString('latin1'); });
    socket.on('error', () => { /* refused or reset: nothing came back */ });
    socket.on('close', () => resolve(data));
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** SCENARIOS.md's binomial bound: p ± 3·sqrt(p(1-p)/N). */
export function binomialBound(p: number, n: number): [number, number] {
  const d = 3 * Math.sqrt((p * (1 - p)) / n);
  return [p - d, p + d];
}
