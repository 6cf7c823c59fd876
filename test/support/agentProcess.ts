// A real `trellis agent` process for end-to-end tests: started through the launcher users run
// (node_modules/.bin/trellis), on free loopback ports, with its own temp directory (data dir, log
// file, pid file). Ready means GET /v1/status/leader names a leader, i.e. the agent can take writes.
//
//   const agent = await AgentProcess.start({ name: 'kv' });               // -dev
//   const agent = await AgentProcess.start({ mode: 'server' });           // -server -bootstrap -data-dir
//   await agent.request('PUT', '/v1/kv/a', { body: 'x' });
//   await agent.kill();  await agent.restart();                           // same ports, same data dir
//   await agent.dispose();
//
// Logs (stdout and stderr) go to <dir>/agent.log, appended across restarts; logTail() returns its
// end, and a failed start or an unexpected exit prints it, so a CI log shows what the agent said.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.ts';
import { launcher, trellisEnv } from './paths.ts';
import { request, type HttpResult, type RequestOptions } from './http.ts';

export interface AgentPorts {
  http: number;
  dns: number;
  server: number;
  /** LAN gossip (serf) port: where other agents join this one. */
  serfLan: number;
  /** WAN gossip port of a server (where servers of other datacenters -join-wan); clients have none. */
  serfWan: number;
}

export interface StartOptions {
  /**
   * 'dev' (default): -dev, state in memory. 'server': -server -bootstrap -data-dir <dir>/data.
   * 'client': a client agent with -data-dir <dir>/data; give it -join/-retry-join in `args` (it is
   * ready once it knows a leader through a server).
   */
  mode?: 'dev' | 'server' | 'client';
  /** A label for logs and the temp dir name; also the node name unless args give -node. */
  name?: string;
  /** Extra flags after the ones the helper sets (e.g. ['-log-level', 'debug']). */
  args?: string[];
  env?: Record<string, string | undefined>;
  /** How long to wait for a leader; default 20 s (a busy 2-core machine can be slow to start Node). */
  readyTimeoutMs?: number;
  /**
   * 'leader' (default): ready once GET /v1/status/leader names a leader. 'http': once the HTTP API
   * answers GET /v1/agent/self, for an agent that is meant to start alone (e.g. a client that a
   * test joins later).
   */
  readyWhen?: 'leader' | 'http';
  /** false: start() returns once the process is spawned, without waiting for a leader. */
  waitReady?: boolean;
  /** Use this directory instead of a fresh temp dir (e.g. to restore a data dir); kept on dispose. */
  dir?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Every agent still alive, killed when the test process exits (normally or by SIGINT/SIGTERM). */
const live = new Set<AgentProcess>();
process.on('exit', () => {
  for (const a of live) a.killNow();
});
// The test runner cancels a file by signalling its process; 'exit' handlers do not run on a death
// by signal, so kill the agents here and then die of the same signal as we would have.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const a of live) a.killNow();
    process.kill(process.pid, sig);
  });
}

const ADDRESS_IN_USE = /EADDRINUSE|address already in use/i;

export class AgentProcess {
  readonly name: string;
  /** The agent's temp directory: data/, agent.log, agent.pid. */
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly pidFile: string;
  readonly mode: 'dev' | 'server' | 'client';
  ports: AgentPorts;
  private readonly opts: StartOptions;
  private readonly ownsDir: boolean;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> | undefined;
  private expectingExit = false;
  private starts = 0;
  /** Leave the temp dir on dispose (set when a test using this agent failed). */
  keepDir = false;

  private constructor(opts: StartOptions, dir: string, ownsDir: boolean, ports: AgentPorts) {
    this.opts = opts;
    this.name = opts.name ?? 'agent';
    this.mode = opts.mode ?? 'dev';
    this.dir = dir;
    this.ownsDir = ownsDir;
    this.dataDir = path.join(dir, 'data');
    this.logFile = path.join(dir, 'agent.log');
    this.pidFile = path.join(dir, 'agent.pid');
    this.ports = ports;
  }

  /** Starts an agent and waits until it has a leader. Retries on new ports if one was taken meanwhile. */
  static async start(opts: StartOptions = {}): Promise<AgentProcess> {
    const ownsDir = opts.dir === undefined;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `trellis-e2e-${(opts.name ?? 'agent').replace(/[^\w-]/g, '_')}-`));
    fs.mkdirSync(dir, { recursive: true });
    const agent = new AgentProcess(opts, dir, ownsDir, await AgentProcess.pickPorts());
    for (let attempt = 1; ; attempt++) {
      try {
        await agent.launch();
        return agent;
      } catch (err) {
        if (attempt < 3 && agent.lostPortRace()) {
          agent.ports = await AgentProcess.pickPorts();
          continue;
        }
        await agent.dispose({ keepDir: true });
        throw err;
      }
    }
  }

  private static async pickPorts(): Promise<AgentPorts> {
    return {
      http: await freePort(), dns: await freePort({ udp: true }), server: await freePort(), serfLan: await freePort({ udp: true }),
      serfWan: await freePort({ udp: true }),
    };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** host:port of the HTTP API, as CONSUL_HTTP_ADDR wants it. */
  get httpAddr(): string {
    return `127.0.0.1:${this.ports.http}`;
  }

  get url(): string {
    return `http://${this.httpAddr}`;
  }

  /** host:port of its LAN gossip pool, for other agents' -join. */
  get serfAddr(): string {
    return `127.0.0.1:${this.ports.serfLan}`;
  }

  /** host:port of a server's WAN gossip pool, for other datacenters' -join-wan. */
  get serfWanAddr(): string {
    return `127.0.0.1:${this.ports.serfWan}`;
  }

  /** The flags this agent runs with (ports, dirs, mode, then the caller's extras). */
  args(): string[] {
    const a = ['agent'];
    if (this.mode === 'dev') a.push('-dev');
    else if (this.mode === 'server') a.push('-server', '-bootstrap', '-data-dir', this.dataDir);
    else a.push('-data-dir', this.dataDir);
    a.push(
      '-bind', '127.0.0.1', '-client', '127.0.0.1',
      '-http-port', String(this.ports.http), '-dns-port', String(this.ports.dns), '-server-port', String(this.ports.server),
      '-serf-lan-port', String(this.ports.serfLan), '-pid-file', this.pidFile,
    );
    // Servers open a WAN pool (Consul's default port 8302 would collide between agents).
    if (this.mode !== 'client') a.push('-serf-wan-port', String(this.ports.serfWan));
    if (!(this.opts.args ?? []).some((x) => /^--?node(=|$)/.test(x))) a.push('-node', this.name);
    a.push(...(this.opts.args ?? []));
    return a;
  }

  private async launch(): Promise<void> {
    this.starts++;
    fs.appendFileSync(this.logFile, `\n---- e2e: start #${this.starts} ${new Date().toISOString()}: trellis ${this.args().join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      // detached: its own process group, so kill() can SIGKILL everything it might have spawned.
      child = spawn(launcher, this.args(), {
        cwd: this.dir, env: trellisEnv(this.opts.env), stdio: ['ignore', fd, fd], detached: true,
      });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    this.expectingExit = false;
    live.add(this);
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('error', (err) => {
        fs.appendFileSync(this.logFile, `---- e2e: spawn failed: ${err.message}\n`);
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => {
        live.delete(this);
        fs.appendFileSync(this.logFile, `---- e2e: exited code=${code} signal=${signal}\n`);
        if (!this.expectingExit) {
          process.stderr.write(`\n[e2e] agent ${this.name} (pid ${child.pid}) exited unexpectedly: code=${code} signal=${signal}\n${this.logTail()}\n`);
        }
        resolve({ code, signal });
      });
    });
    if (this.opts.waitReady !== false) await this.waitReady(this.opts.readyTimeoutMs ?? 20_000);
  }

  /** Polls /v1/status/leader until it names a leader (or /v1/agent/self, see readyWhen); fails early if the process exits. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    let exited: ExitInfo | undefined;
    void this.exitPromise?.then((e) => { exited = e; });
    while (Date.now() < deadline) {
      if (exited) {
        this.expectingExit = true;
        throw new Error(`agent ${this.name} exited before it was ready (code=${exited.code} signal=${exited.signal}); log tail:\n${this.logTail()}`);
      }
      try {
        if (this.opts.readyWhen === 'http') {
          const r = await request(this.url, 'GET', '/v1/agent/self', { timeoutMs: 1000 });
          if (r.status === 200) return;
          last = `status ${r.status}: ${r.text}`;
          await sleep(50);
          continue;
        }
        const r = await request(this.url, 'GET', '/v1/status/leader', { timeoutMs: 1000 });
        if (r.status === 200 && typeof r.json() === 'string' && r.json<string>() !== '') return;
        last = `status ${r.status}: ${r.text}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(50);
    }
    const msg = `agent ${this.name} not ready within ${timeoutMs} ms (last: ${last}); log tail:\n${this.logTail()}`;
    this.killNow();
    throw new Error(msg);
  }

  /** Did the last start fail because a port we picked was taken before the agent bound it? */
  private lostPortRace(): boolean {
    return !this.running && ADDRESS_IN_USE.test(this.logTail(30));
  }

  request(method: string, urlPath: string, opts?: RequestOptions): Promise<HttpResult> {
    return request(this.url, method, urlPath, opts);
  }

  /** GET and parse JSON, failing with the body when the status is not 200. */
  async getJson<T = unknown>(urlPath: string): Promise<T> {
    const r = await this.request('GET', urlPath);
    if (r.status !== 200) throw new Error(`GET ${urlPath}: ${r.status} ${r.text}`);
    return r.json<T>();
  }

  /** Resolves when the current process exits. */
  waitExit(): Promise<ExitInfo> {
    return this.exitPromise ?? Promise.resolve({ code: null, signal: null });
  }

  /** Sends a signal to the agent process itself (not its group). */
  signal(sig: NodeJS.Signals): void {
    if (sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGKILL') this.expectingExit = true;
    if (this.running) this.child!.kill(sig);
  }

  /** SIGTERM, then wait; SIGKILL if it has not exited after timeoutMs. Returns how it exited. */
  async stop(timeoutMs = 15_000): Promise<ExitInfo> {
    if (!this.running) return this.waitExit();
    this.signal('SIGTERM');
    const timer = setTimeout(() => {
      fs.appendFileSync(this.logFile, `---- e2e: no exit ${timeoutMs} ms after SIGTERM: SIGKILL\n`);
      this.killNow();
    }, timeoutMs);
    try {
      return await this.waitExit();
    } finally {
      clearTimeout(timer);
    }
  }

  /** kill -9 (the whole process group) and wait for the exit. */
  async kill(): Promise<ExitInfo> {
    this.killNow();
    return this.waitExit();
  }

  /** Synchronous SIGKILL of the process group (also used at test-process exit). */
  killNow(): void {
    if (!this.running || this.child?.pid === undefined) return;
    this.expectingExit = true;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // The group is already gone (the process exited between the check and the kill).
    }
  }

  /** Starts the agent again with the same ports, flags and data dir (stopping it first if running). */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.launch();
  }

  /** The last `lines` lines of the agent's log. */
  logTail(lines = 60): string {
    let text: string;
    try {
      text = fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '(no log file)';
    }
    return text.split('\n').slice(-lines).join('\n');
  }

  /**
   * Kills the agent if running and removes its temp dir. The dir stays when keepDir is set, when
   * TRELLIS_E2E_KEEP=1, or when the caller passed its own dir.
   */
  async dispose(opts: { keepDir?: boolean } = {}): Promise<void> {
    if (this.running) await this.kill();
    live.delete(this);
    if (this.ownsDir && !opts.keepDir && !this.keepDir && process.env.TRELLIS_E2E_KEEP !== '1') {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** For node:test's afterEach: when the test failed, print each agent's log tail. */
/**
 * A `-server -bootstrap` agent and a client agent joined to it through LAN gossip: the pair most
 * end-to-end suites start (the client is ready once it knows the leader through the server). If
 * the client does not start, the server is disposed before the error is rethrown.
 */
export async function startServerAndClient(name: string, opts: { clientArgs?: string[]; readyTimeoutMs?: number } = {}): Promise<{ server: AgentProcess; client: AgentProcess }> {
  const server = await AgentProcess.start({ name: `${name}-server`, mode: 'server' });
  try {
    const client = await AgentProcess.start({
      name: `${name}-client`, mode: 'client', readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      args: ['-retry-join', server.serfAddr, '-retry-interval', '1s', ...(opts.clientArgs ?? [])],
    });
    return { server, client };
  } catch (err) {
    await server.dispose({ keepDir: true });
    throw err;
  }
}

export function printLogsIfFailed(t: { name: string; passed?: boolean }, ...agents: Array<AgentProcess | undefined>): void {
  // A suite context (no `passed`) has no outcome of its own to report.
  if (!('passed' in t) || t.passed !== false) return;
  for (const a of agents) {
    if (!a) continue;
    a.keepDir = true; // the data dir and full log are evidence: dispose() leaves them
    process.stderr.write(`\n[e2e] test "${t.name}" failed; agent ${a.name} log (${a.logFile}) ends:\n${a.logTail()}\n[e2e] kept ${a.dir}\n`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value or the time runs out (then throws with `what`). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}
