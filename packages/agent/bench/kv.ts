// KV benchmark: Trellis (one server agent with a data dir, not -dev) against a single-member etcd
// 3.4 on this machine, driven by the same HTTP load generator in the same run.
//
//   npx node packages/agent/bench/kv.ts [--seconds 10] [--keys 100000] [--json]
//   npm run bench:kv
//
// What it measures, per system, 64-byte values under distinct keys, keep-alive HTTP/1.1:
//   writes at concurrency 1, 16, 64   Trellis: PUT /v1/kv/<key>     etcd: POST /v3/kv/put
//   reads  at concurrency 16, 64      Trellis: GET /v1/kv/<key>     etcd: POST /v3/kv/range
// Reads use each system's default consistency: Trellis serves them from the leader's state (Consul's
// default mode); etcd's default is linearizable (a ReadIndex round per request).
// Then: time from spawning `trellis agent -dev` to its first successful KV write (median of 5),
// resident memory after 100,000 keys (VmRSS from /proc), for both, and the RSS of an idle server and
// an idle client agent, run from the bundle (what bin/trellis runs) and from the TypeScript sources.
//
// --acl runs Trellis alone: one server without ACLs and one with acl.enabled, default_policy = "deny"
// and every request carrying a token whose one policy is a single key_prefix rule (issue 17: ACL
// cost ≥ 0.9x of the run without), their cells interleaved ABBA, with a third server without ACLs as
// a control (how far two identical server processes differ). No etcd, startup or idle-RSS phases.
//
// --servers 3 runs three Trellis servers (-bootstrap-expect 3, joined by -retry-join) against a
// three-member etcd, with the load on each one's leader.
//
// Placement on a 2-core machine: the load generator is this process; each server is its own
// process, started only for its own measurements and stopped before the other starts, so the idle
// one never competes. No CPU pinning: pinning the server to one core would hobble etcd's Go runtime
// (and its fsync thread) more than Node, and pinning the generator would cap it below what the
// servers need at c=64. Both data dirs are on the same local filesystem (os.tmpdir()).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentProcess, freePort, launcher, trellisEnv } from '../../../test/support/index.ts';
import { Cluster, type ServerProc } from '../../../test/cluster/cluster.ts';

const VALUE_BYTES = 64;
const WRITE_CONCURRENCY = [1, 16, 64] as const;
const READ_CONCURRENCY = [16, 64] as const;
const STARTUP_RUNS = 5;

interface Options { seconds: number; keys: number; json: boolean; servers: number; acl: boolean }

function options(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      keys: { type: 'string', default: '100000' },
      servers: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      acl: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: node packages/agent/bench/kv.ts [--seconds N (default 10)] [--keys N (default 100000)] [--servers 1|3] [--acl] [--json]\n');
    process.exit(0);
  }
  const seconds = Number(values.seconds);
  const keys = Number(values.keys);
  const servers = Number(values.servers);
  if (!(seconds > 0)) fail(`--seconds must be a positive number, got ${JSON.stringify(values.seconds)}`);
  if (!Number.isInteger(keys) || keys < 1) fail(`--keys must be a positive integer, got ${JSON.stringify(values.keys)}`);
  if (servers !== 1 && servers !== 3) fail(`--servers must be 1 or 3, got ${JSON.stringify(values.servers)}`);
  return { seconds, keys, json: values.json, servers, acl: values.acl === true };
}

function fail(msg: string): never {
  process.stderr.write(`bench:kv: ${msg}\n`);
  process.exit(2);
}

function note(msg: string): void {
  process.stderr.write(`# ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Load generator: the same for both systems. A `Target` turns (key, value) into one HTTP request;
// the generator owns connections, timing and the per-request latency record.

interface HttpCall { method: string; path: string; body?: Buffer; headers?: Record<string, string> }

interface Target {
  name: string;
  port: number;
  put(key: string, value: Buffer): HttpCall;
  /** A default-consistency read (Trellis: leader lease; etcd: its default, linearizable). */
  get(key: string): HttpCall;
  /** A linearizable read (Trellis: ?consistent, a ReadIndex round; etcd: its default range). */
  getConsistent(key: string): HttpCall;
  /** Checks a read's answer carried `value` (done on a sample, not on every read). */
  verifyGet(body: Buffer, value: Buffer): boolean;
}

/** `token`: sent as X-Consul-Token on every request (the --acl run). */
const trellisTarget = (port: number, token?: string): Target => {
  const headers = token ? { 'x-consul-token': token } : undefined;
  return {
  name: token ? 'trellis+acl' : 'trellis',
  port,
  put: (key, value) => ({ method: 'PUT', path: `/v1/kv/${key}`, body: value, ...(headers ? { headers } : {}) }),
  get: (key) => ({ method: 'GET', path: `/v1/kv/${key}`, ...(headers ? { headers } : {}) }),
  getConsistent: (key) => ({ method: 'GET', path: `/v1/kv/${key}?consistent`, ...(headers ? { headers } : {}) }),
  verifyGet: (body, value) => {
    const [e] = JSON.parse(body.toString()) as Array<{ Value: string }>;
    return Buffer.from(e!.Value, 'base64').equals(value);
  },
  };
};

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

const etcdTarget = (port: number, prefix: string): Target => ({
  name: 'etcd',
  port,
  put: (key, value) => ({ method: 'POST', path: `${prefix}/kv/put`, body: Buffer.from(JSON.stringify({ key: b64(key), value: b64(value) })), headers: { 'content-type': 'application/json' } }),
  get: (key) => ({ method: 'POST', path: `${prefix}/kv/range`, body: Buffer.from(JSON.stringify({ key: b64(key) })), headers: { 'content-type': 'application/json' } }),
  getConsistent: (key) => ({ method: 'POST', path: `${prefix}/kv/range`, body: Buffer.from(JSON.stringify({ key: b64(key) })), headers: { 'content-type': 'application/json' } }),
  verifyGet: (body, value) => {
    const r = JSON.parse(body.toString()) as { kvs?: Array<{ value: string }> };
    return r.kvs !== undefined && Buffer.from(r.kvs[0]!.value, 'base64').equals(value);
  },
});

function call(agent: http.Agent, port: number, c: HttpCall): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...c.headers };
    if (c.body) headers['content-length'] = String(c.body.length);
    const req = http.request({ host: '127.0.0.1', port, method: c.method, path: c.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(c.body);
  });
}

interface CellResult {
  ops: number; opsPerSec: number; p50Ms: number; p99Ms: number; errors: number; firstError?: string;
  /** CPU used during the cell, in % of one core: the generator (this process) and the server. */
  generatorCpuPct: number; serverCpuPct: number;
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/** user+system CPU seconds of a process so far, from /proc/<pid>/stat (fields 14 and 15). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the command name may hold spaces
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/**
 * Runs `concurrency` closed loops for `seconds`: each sends one request, waits for its answer,
 * sends the next. `op(worker, seq)` builds the request. Latency is send-to-last-byte.
 */
async function runCell(target: Target, serverPids: number[], concurrency: number, seconds: number,
  op: (worker: number, seq: number) => { call: HttpCall; check?: (status: number, body: Buffer) => string | null }): Promise<CellResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  let lat = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const end = started + seconds * 1000;
  const genCpu0 = process.cpuUsage();
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const srvCpu0 = serverCpu();
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    for (let seq = 0; performance.now() < end; seq++) {
      const { call: c, check } = op(w, seq);
      const t0 = performance.now();
      let problem: string | null = null;
      try {
        const r = await call(agent, target.port, c);
        problem = r.status === 200 ? (check?.(r.status, r.body) ?? null) : `${r.status} ${r.body.toString().slice(0, 120)}`;
      } catch (err) {
        problem = (err as Error).message;
      }
      const ms = performance.now() - t0;
      if (problem !== null) {
        errors++;
        firstError ??= `${c.method} ${c.path}: ${problem}`;
        continue;
      }
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = ms;
    }
  }));
  const elapsedS = (performance.now() - started) / 1000;
  const gen = process.cpuUsage(genCpu0);
  const generatorCpuPct = ((gen.user + gen.system) / 1e6 / elapsedS) * 100;
  const serverCpuPct = ((serverCpu() - srvCpu0) / elapsedS) * 100;
  agent.destroy();
  const sorted = lat.slice(0, n).sort();
  return { ops: n, opsPerSec: n / elapsedS, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), errors, firstError, generatorCpuPct, serverCpuPct };
}

/** Deterministic 64-byte value for a key, so reads can be verified without remembering values. */
function valueFor(key: string): Buffer {
  const v = Buffer.alloc(VALUE_BYTES);
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  for (let i = 0; i < VALUE_BYTES; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    v[i] = 97 + (h % 26); // printable, so both systems store the same bytes as text
  }
  return v;
}

interface SystemResults {
  writes: Record<number, CellResult>;
  reads: Record<number, CellResult>;
  consistentReads: Record<number, CellResult>;
  rssAfterKeysMB: number;
  keysForRss: number;
}

/** The write, read and memory phases against one running server. */
async function measure(sys: RunningSystem, opts: Options): Promise<SystemResults> {
  const { target, pids } = sys;
  const written: string[] = [];
  const writes: Record<number, CellResult> = {};
  const reads: Record<number, CellResult> = {};
  const consistentReads: Record<number, CellResult> = {};
  // Warm-up (JIT, connection setup, the first Raft batches): not measured.
  await runCell(target, pids, 16, Math.min(2, opts.seconds), (w, s) => {
    const key = `warm/${w}/${s}`;
    return { call: target.put(key, valueFor(key)) };
  });
  for (const c of WRITE_CONCURRENCY) {
    const phaseKeys: string[][] = Array.from({ length: c }, () => []);
    note(`${target.name}: writes at c=${c} for ${opts.seconds}s`);
    writes[c] = await runCell(target, pids, c, opts.seconds, (w, s) => {
      const key = `bench/w${c}/${w}/${String(s).padStart(7, '0')}`;
      phaseKeys[w]!.push(key);
      return { call: target.put(key, valueFor(key)) };
    });
    // A key counts as written only if its request may have succeeded; the reads below verify.
    for (const ks of phaseKeys) written.push(...ks);
  }
  // Reads: uniformly random keys from the ones written, every 100th answer checked for its value.
  let rnd = 12345;
  const nextKey = () => {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    return written[rnd % written.length]!;
  };
  for (const [kind, into, build] of [['default', reads, target.get], ['consistent', consistentReads, target.getConsistent]] as const) {
    for (const c of READ_CONCURRENCY) {
      note(`${target.name}: ${kind} reads at c=${c} for ${opts.seconds}s`);
      let i = 0;
      into[c] = await runCell(target, pids, c, opts.seconds, () => {
        const key = nextKey();
        const verify = (i++ % 100) === 0;
        return {
          call: build(key),
          check: verify ? (_s, body) => (target.verifyGet(body, valueFor(key)) ? null : `wrong or missing value for ${key}`) : undefined,
        };
      });
    }
  }
  // Memory with opts.keys keys: top up with more distinct keys (the ones above count), then read RSS.
  const have = written.length;
  const missing = Math.max(0, opts.keys - have);
  note(`${target.name}: writing ${missing} more keys to reach ${opts.keys} for the memory reading`);
  let next = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < missing) {
      const key = `fill/${String(next++).padStart(7, '0')}`;
      const r = await call(agent, target.port, target.put(key, valueFor(key)));
      if (r.status !== 200) throw new Error(`${target.name}: fill write ${key} answered ${r.status} ${r.body.toString().slice(0, 200)}`);
    }
  }));
  agent.destroy();
  return { writes, reads, consistentReads, rssAfterKeysMB: rssMB(sys.leaderPid), keysForRss: have + missing };
}

function rssMB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

// ---------------------------------------------------------------------------------------------
// The servers.

function etcdVersion(): string {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    fail('etcd is not installed: run `bash deploy/install-bench-deps.sh` (installs Debian\'s etcd-server and etcd-client)');
  }
  const v = /etcd Version: (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
  if (!v.startsWith('3.4.')) note(`etcd ${v} is not 3.4; the numbers compare against it all the same`);
  return v;
}

/** A running system under test: where the load goes, and the processes to account CPU to. */
interface RunningSystem {
  target: Target;
  /** Every server process (CPU is summed over them). */
  pids: number[];
  /** The process the load goes to (the leader); RSS is read from it. */
  leaderPid: number;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return exited.finally(() => clearTimeout(t));
}

/**
 * `members` etcd processes forming one cluster (static bootstrap), each with its own data dir and
 * loopback ports. The load goes to the leader, found through the maintenance status API.
 */
async function startEtcd(root: string, members: number): Promise<RunningSystem> {
  const nodes = [];
  for (let i = 1; i <= members; i++) nodes.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const initialCluster = nodes.map((n) => `${n.name}=http://127.0.0.1:${n.peer}`).join(',');
  const children = nodes.map((n) => {
    const logFile = path.join(root, `etcd-${n.name}.log`);
    const fd = fs.openSync(logFile, 'a');
    try {
      return spawn('etcd', [
        '--name', n.name, '--data-dir', path.join(root, `etcd-${n.name}`),
        '--listen-client-urls', `http://127.0.0.1:${n.client}`, '--advertise-client-urls', `http://127.0.0.1:${n.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${n.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${n.peer}`,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'trellis-bench',
        '--logger', 'zap', '--log-level', 'warn', '--log-outputs', 'stderr',
      ], { stdio: ['ignore', fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
  });
  const stop = async () => { await Promise.all(children.map(stopChild)); };
  const agent = new http.Agent({ keepAlive: false });
  const deadline = Date.now() + 30_000;
  // etcd 3.4 serves the gRPC gateway at /v3 (and the deprecated /v3beta); find which answers.
  let lastProblem = 'no answer yet';
  while (Date.now() < deadline) {
    const dead = children.findIndex((c) => c.exitCode !== null);
    if (dead >= 0) { lastProblem = `member ${nodes[dead]!.name} exited`; break; }
    for (const prefix of ['/v3', '/v3beta']) {
      try {
        for (const [i, n] of nodes.entries()) {
          const r = await call(agent, n.client, { method: 'POST', path: `${prefix}/maintenance/status`, body: Buffer.from('{}') });
          if (r.status !== 200) { lastProblem = `${n.name}: ${r.status}`; break; }
          const st = JSON.parse(r.body.toString()) as { header?: { member_id?: string }; leader?: string };
          if (st.leader !== undefined && st.leader !== '0' && st.leader === st.header?.member_id) {
            // Confirm the leader takes a write before measuring it.
            const put = await call(agent, n.client, { method: 'POST', path: `${prefix}/kv/put`, body: Buffer.from(JSON.stringify({ key: b64('probe'), value: b64('x') })) });
            if (put.status === 200) {
              return { target: etcdTarget(n.client, prefix), pids: children.map((c) => c.pid!), leaderPid: children[i]!.pid!, stop };
            }
          }
        }
      } catch (err) {
        lastProblem = (err as Error).message; // not listening yet
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  const tail = fs.readFileSync(path.join(root, `etcd-${nodes[0]!.name}.log`), 'utf8').split('\n').slice(-20).join('\n');
  throw new Error(`etcd (${members} member${members > 1 ? 's' : ''}) had no leader taking writes within 30 s (${lastProblem}); m1's log ends:\n${tail}`);
}

/**
 * Trellis servers with data dirs on local disk, not -dev: one agent with -server -bootstrap, or
 * `servers` agents with -bootstrap-expect joining each other (test/cluster's helper). The load
 * goes to the leader.
 */
async function startTrellis(root: string, servers: number): Promise<RunningSystem> {
  if (servers === 1) {
    const a = await AgentProcess.start({ name: 'bench', mode: 'server', dir: path.join(root, 'trellis'), args: ['-log-level', 'warn'] });
    return { target: trellisTarget(a.ports.http), pids: [a.pid!], leaderPid: a.pid!, stop: async () => { await a.stop(); } };
  }
  const c = await Cluster.create(0);
  try {
    const pidFile = (i: number) => path.join(root, `trellis-s${i}.pid`);
    for (let i = 1; i <= servers; i++) await c.add({ name: `bench${i}`, expect: servers, args: ['-log-level', 'warn', '-pid-file', pidFile(i)] });
    for (const s of c.servers) s.joins = c.servers.filter((x) => x !== s).map((x) => x.serfAddr);
    for (const s of c.servers) s.start();
    const leader = await c.waitLeader(60_000);
    const pidOf = (s: ServerProc) => Number(fs.readFileSync(pidFile(c.servers.indexOf(s) + 1), 'utf8').trim());
    return {
      target: trellisTarget(leader.ports.http),
      pids: c.servers.map(pidOf),
      leaderPid: pidOf(leader),
      stop: async () => {
        await Promise.all(c.servers.map((s) => s.stop()));
        await c.dispose();
      },
    };
  } catch (err) {
    c.dumpLogs(20);
    await c.dispose();
    throw err;
  }
}

/**
 * One Trellis server with ACLs on (default deny) and a token whose single policy is one key_prefix
 * rule covering the bench's keys; the target sends that token on every request.
 */
async function startTrellisAcl(root: string): Promise<RunningSystem> {
  const management = '6d5c8f1e-2b3a-4c7d-9e0f-1a2b3c4d5e6f';
  const dir = path.join(root, 'trellis-acl');
  fs.mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'acl.hcl');
  fs.writeFileSync(cfg, `acl {\n  enabled = true\n  default_policy = "deny"\n  tokens {\n    initial_management = "${management}"\n  }\n}\n`);
  const a = await AgentProcess.start({ name: 'bench-acl', mode: 'server', dir, args: ['-log-level', 'warn', '-config-file', cfg] });
  try {
    const mgmt = { 'x-consul-token': management, 'content-type': 'application/json' };
    const agent = new http.Agent({ keepAlive: false });
    const deadline = Date.now() + 30_000;
    let pol: { status: number; body: Buffer };
    // The initial management token exists once the leader has initialised ACLs.
    do {
      pol = await call(agent, a.ports.http, { method: 'PUT', path: '/v1/acl/policy', headers: mgmt, body: Buffer.from(JSON.stringify({ Name: 'bench-kv', Rules: 'key_prefix "" { policy = "write" }' })) });
      if (pol.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    if (pol.status !== 200) throw new Error(`creating the bench policy answered ${pol.status} ${pol.body.toString()}`);
    const tok = await call(agent, a.ports.http, { method: 'PUT', path: '/v1/acl/token', headers: mgmt, body: Buffer.from(JSON.stringify({ Policies: [{ Name: 'bench-kv' }] })) });
    if (tok.status !== 200) throw new Error(`creating the bench token answered ${tok.status} ${tok.body.toString()}`);
    agent.destroy();
    const secret = (JSON.parse(tok.body.toString()) as { SecretID: string }).SecretID;
    // Default deny really is on: the same write without the token is refused.
    const anon = await call(new http.Agent(), a.ports.http, { method: 'PUT', path: '/v1/kv/bench/anon', body: Buffer.from('x') });
    if (anon.status !== 403) throw new Error(`an anonymous write answered ${anon.status}, expected 403`);
    return { target: trellisTarget(a.ports.http, secret), pids: [a.pid!], leaderPid: a.pid!, stop: async () => { await a.stop(); } };
  } catch (err) {
    await a.stop();
    throw err;
  }
}

/** Two cells of one system (ABBA order) merged: ops/s and latencies averaged, errors summed. */
function merge(a: CellResult, b: CellResult): CellResult {
  return {
    ops: a.ops + b.ops, opsPerSec: (a.opsPerSec + b.opsPerSec) / 2, p50Ms: (a.p50Ms + b.p50Ms) / 2, p99Ms: (a.p99Ms + b.p99Ms) / 2,
    errors: a.errors + b.errors, firstError: a.firstError ?? b.firstError,
    generatorCpuPct: (a.generatorCpuPct + b.generatorCpuPct) / 2, serverCpuPct: (a.serverCpuPct + b.serverCpuPct) / 2,
  };
}

/**
 * --acl: the same server without and with ACLs, both running, every cell measured in ABBA order
 * (plain, ACL, ACL, plain; half the cell time each) so that load from other processes, which drifts
 * over a run on a shared machine, falls on both alike. The idle one of the two uses almost no CPU.
 * A third server, also without ACLs (the control), runs in the middle of each row (plain, ACL,
 * control, control, ACL, plain): control/none shows how far two identical server processes differ
 * in that run, which interleaving cannot remove (it is per process, not per moment), so an ACL/none
 * ratio can be read against it.
 */
async function mainAcl(opts: Options): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-kv-acl-'));
  const loadBefore = loadAvg();
  if (os.loadavg()[0]! > 1) note(`WARNING: load average ${loadBefore} before the run: other processes are competing for the CPUs`);
  note('starting Trellis without ACLs, and with ACLs (default deny, one key_prefix rule) ...');
  const plain = await startTrellis(root, 1);
  let acl: RunningSystem | undefined;
  let control: RunningSystem | undefined;
  try {
    acl = await startTrellisAcl(root);
    const ctl = await AgentProcess.start({ name: 'bench-control', mode: 'server', dir: path.join(root, 'trellis-control'), args: ['-log-level', 'warn'] });
    control = { target: { ...trellisTarget(ctl.ports.http), name: 'trellis (control)' }, pids: [ctl.pid!], leaderPid: ctl.pid!, stop: async () => { await ctl.stop(); } };
    const systems = [plain, acl, control] as const;
    const written = new Map<RunningSystem, string[]>(systems.map((s) => [s, []]));
    const half = opts.seconds / 2;
    for (const s of systems) {
      await runCell(s.target, s.pids, 16, Math.min(2, opts.seconds), (w, q) => {
        const key = `warm/${w}/${q}`;
        return { call: s.target.put(key, valueFor(key)) };
      });
    }
    /** One row: plain, ACL, control, control, ACL, plain. */
    const abba = async (label: string, c: number, op: (s: RunningSystem) => (w: number, q: number) => { call: HttpCall; check?: (status: number, body: Buffer) => string | null }) => {
      const cells = new Map<RunningSystem, CellResult[]>(systems.map((s) => [s, []]));
      for (const s of [plain, acl!, control!, control!, acl!, plain]) {
        note(`${s.target.name}: ${label} at c=${c} for ${half}s`);
        cells.get(s)!.push(await runCell(s.target, s.pids, c, half, op(s)));
      }
      const [a1, a2] = cells.get(plain)!;
      const [b1, b2] = cells.get(acl!)!;
      const [c1, c2] = cells.get(control!)!;
      return [merge(a1!, a2!), merge(b1!, b2!), merge(c1!, c2!)] as const;
    };
    // Server CPU per operation (from /proc, both servers' own): far less moved by other processes'
    // load than ops/s on a shared machine, so the column to compare when the load average is high.
    const cpuUs = (c: CellResult) => (c.serverCpuPct * 1e4 / c.opsPerSec).toFixed(0);
    const rows: string[][] = [['op', 'conc', 'no ACL ops/s', 'p50 ms', 'p99 ms', 'cpu us/op', 'ACL ops/s', 'p50 ms', 'p99 ms', 'cpu us/op', 'ACL/none', 'control ops/s', 'cpu us/op', 'control/none', 'errors']];
    const verdict: string[] = [];
    const results: Record<string, unknown> = {};
    const add = (op: string, c: number, [a, b, k]: readonly [CellResult, CellResult, CellResult]) => {
      const ratio = b.opsPerSec / a.opsPerSec;
      const controlRatio = k.opsPerSec / a.opsPerSec;
      results[`${op} c=${c}`] = { plain: a, acl: b, control: k, ratio, controlRatio };
      rows.push([op, String(c), a.opsPerSec.toFixed(0), a.p50Ms.toFixed(2), a.p99Ms.toFixed(2), cpuUs(a), b.opsPerSec.toFixed(0), b.p50Ms.toFixed(2), b.p99Ms.toFixed(2), cpuUs(b), `${ratio.toFixed(2)}x`,
        k.opsPerSec.toFixed(0), cpuUs(k), `${controlRatio.toFixed(2)}x`, `${a.errors}/${b.errors}/${k.errors}`]);
      verdict.push(`${op} c=${c}: ${ratio.toFixed(2)}x ${ratio >= 0.9 ? 'met' : 'NOT met'} (target >= 0.9x); control (a second server without ACLs) ${controlRatio.toFixed(2)}x`);
    };
    for (const c of WRITE_CONCURRENCY) {
      add('write', c, await abba('writes', c, (s) => (w, q) => {
        const key = `bench/w${c}/${w}/${String(q).padStart(7, '0')}-${written.get(s)!.length}`;
        written.get(s)!.push(key);
        return { call: s.target.put(key, valueFor(key)) };
      }));
    }
    for (const [label, build] of [['read', (s: RunningSystem) => s.target.get], ['read ?consistent', (s: RunningSystem) => s.target.getConsistent]] as const) {
      for (const c of READ_CONCURRENCY) {
        add(label, c, await abba(label, c, (s) => {
          const keys = written.get(s)!;
          let rnd = 12345;
          let i = 0;
          return () => {
            rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
            const key = keys[rnd % keys.length]!;
            const verify = (i++ % 100) === 0;
            return { call: build(s)(key), check: verify ? (_st, body) => (s.target.verifyGet(body, valueFor(key)) ? null : `wrong or missing value for ${key}`) : undefined };
          };
        }));
      }
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const lines = [
      `Trellis KV benchmark, ACL row  ${new Date().toISOString()}`,
      `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}; Node ${process.version}; data dirs on ${fsType(root)}`,
      `load: ${opts.seconds} s per row and system (two halves each, interleaved: plain, ACL, control, control, ACL, plain) after a 2 s warm-up, closed loop, keep-alive HTTP/1.1, ${VALUE_BYTES}-byte values; one server (-server -bootstrap, data dir) per system`,
      'ACL run: acl.enabled, default_policy = "deny", every request with a token whose one policy is key_prefix "" { policy = "write" }',
      'control: a third server without ACLs, in the middle of each row (plain, ACL, control, control, ACL, plain): how far two identical servers differ in this run',
      `load average (1/5/15 min): ${loadBefore} before, ${loadAvg()} after${os.loadavg()[0]! > 1 ? '  <- other processes competed: treat the numbers with care' : ''}`,
      '',
      ...rows.map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')),
      '',
      ...verdict,
    ];
    if (opts.json) process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), loadBefore, loadAfter: loadAvg(), seconds: opts.seconds, rows: results }, null, 2)}\n`);
    else process.stdout.write(`${lines.join('\n')}\n`);
    const errors = Object.values(results).flatMap((r) => { const x = r as { plain: CellResult; acl: CellResult; control: CellResult }; return [x.plain, x.acl, x.control]; }).filter((c) => c.errors > 0);
    if (errors.length > 0) {
      process.stdout.write(`ERRORS: ${errors.map((c) => c.firstError).join(' | ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    await control?.stop();
    await acl?.stop();
    await plain.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Spawn `trellis agent -dev` and poll a KV write until it succeeds; returns ms from spawn. */
async function startupOnce(root: string, run: number): Promise<number> {
  const http1 = await freePort();
  const dns = await freePort({ udp: true });
  const srv = await freePort();
  const logFile = path.join(root, `startup-${run}.log`);
  const fd = fs.openSync(logFile, 'a');
  const t0 = performance.now();
  const child = spawn(launcher, ['agent', '-dev', '-node', `startup-${run}`, '-log-level', 'warn',
    '-http-port', String(http1), '-dns-port', String(dns), '-server-port', String(srv), '-serf-wan-port', '-1'],
  { env: trellisEnv(), stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`trellis agent -dev exited (${child.exitCode}); log ${logFile}`);
      if (performance.now() - t0 > 30_000) throw new Error(`trellis agent -dev took no write within 30 s; log ${logFile}`);
      try {
        const r = await call(agent, http1, { method: 'PUT', path: '/v1/kv/startup', body: Buffer.from('x') });
        if (r.status === 200 && r.body.toString() === 'true') return performance.now() - t0;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    agent.destroy();
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

/** Seconds an idle agent is left alone before its RSS is read (start-up garbage collected). */
const IDLE_SETTLE_S = 15;

interface IdleRss { serverMB: number; clientMB: number }

/**
 * Resident memory of an idle server (-server -bootstrap -data-dir) and of an idle client agent
 * joined to it, after IDLE_SETTLE_S seconds with nothing to do. `fromSrc` runs the TypeScript
 * sources (TRELLIS_FROM_SRC=1) instead of the bundle bin/trellis runs by default.
 */
async function idleRss(root: string, fromSrc: boolean): Promise<IdleRss> {
  const env = fromSrc ? { TRELLIS_FROM_SRC: '1' } : {};
  const tag = fromSrc ? 'src' : 'bundle';
  const server = await AgentProcess.start({ name: `idle-server-${tag}`, mode: 'server', dir: path.join(root, `idle-server-${tag}`), env, args: ['-log-level', 'warn'] });
  try {
    const client = await AgentProcess.start({ name: `idle-client-${tag}`, mode: 'client', dir: path.join(root, `idle-client-${tag}`), env, args: ['-log-level', 'warn', '-retry-join', server.serfAddr] });
    try {
      await new Promise((r) => setTimeout(r, IDLE_SETTLE_S * 1000));
      return { serverMB: rssMB(server.pid!), clientMB: rssMB(client.pid!) };
    } finally {
      await client.stop();
    }
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const fmtOps = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const fmtMs = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}x` : '-');

function table(t: SystemResults, e: SystemResults): string {
  const rows: string[][] = [['op', 'conc', 'trellis ops/s', 'p50 ms', 'p99 ms', 'etcd ops/s', 'p50 ms', 'p99 ms', 'ops T/E', 'p50 T/E', 'p99 T/E', 'errors T/E']];
  const add = (op: string, c: number, a: CellResult, b: CellResult) => rows.push([
    op, String(c), fmtOps(a.opsPerSec), fmtMs(a.p50Ms), fmtMs(a.p99Ms), fmtOps(b.opsPerSec), fmtMs(b.p50Ms), fmtMs(b.p99Ms),
    ratio(a.opsPerSec, b.opsPerSec), ratio(a.p50Ms, b.p50Ms), ratio(a.p99Ms, b.p99Ms), `${a.errors}/${b.errors}`,
  ]);
  for (const c of WRITE_CONCURRENCY) add('write', c, t.writes[c]!, e.writes[c]!);
  for (const c of READ_CONCURRENCY) add('read', c, t.reads[c]!, e.reads[c]!);
  for (const c of READ_CONCURRENCY) add('read consistent', c, t.consistentReads[c]!, e.consistentReads[c]!);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n');
}

/** CPU per cell: on 2 cores, generator + server near 200% means the machine, not the server, was the limit. */
function cpuTable(t: SystemResults, e: SystemResults): string {
  const cells: Array<[string, CellResult, CellResult]> = [
    ...WRITE_CONCURRENCY.map((c) => [`write c=${c}`, t.writes[c]!, e.writes[c]!] as [string, CellResult, CellResult]),
    ...READ_CONCURRENCY.map((c) => [`read c=${c}`, t.reads[c]!, e.reads[c]!] as [string, CellResult, CellResult]),
    ...READ_CONCURRENCY.map((c) => [`cons. c=${c}`, t.consistentReads[c]!, e.consistentReads[c]!] as [string, CellResult, CellResult]),
  ];
  const pct = (x: number) => `${Math.round(x)}%`.padStart(5);
  return ['CPU, % of one core (generator / server):', ...cells.map(([what, a, b]) =>
    `  ${what.padEnd(11)} trellis ${pct(a.generatorCpuPct)} / ${pct(a.serverCpuPct)}    etcd ${pct(b.generatorCpuPct)} / ${pct(b.serverCpuPct)}`)].join('\n');
}

function verdicts(t: SystemResults, e: SystemResults, startupMs: number): string[] {
  const out: string[] = [];
  const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
  for (const c of [16, 64]) {
    const r = t.writes[c]!.opsPerSec / e.writes[c]!.opsPerSec;
    out.push(`writes/s at c=${c} >= 1.0x etcd: ${r.toFixed(2)}x (${mark(r >= 1.0)})`);
  }
  for (const c of READ_CONCURRENCY) {
    const r = t.reads[c]!.opsPerSec / e.reads[c]!.opsPerSec;
    out.push(`default reads/s at c=${c} >= 1.5x etcd (issue 4): ${r.toFixed(2)}x (${mark(r >= 1.5)})`);
  }
  for (const c of READ_CONCURRENCY) {
    const r = t.consistentReads[c]!.opsPerSec / e.consistentReads[c]!.opsPerSec;
    out.push(`consistent reads/s at c=${c} >= 1.0x etcd's linearizable reads (issue 6): ${r.toFixed(2)}x (${mark(r >= 1.0)})`);
  }
  const p99s = [...WRITE_CONCURRENCY.map((c) => [`write c=${c}`, t.writes[c]!, e.writes[c]!] as const),
    ...READ_CONCURRENCY.map((c) => [`read c=${c}`, t.reads[c]!, e.reads[c]!] as const)];
  for (const [what, a, b] of p99s) {
    const r = a.p99Ms / b.p99Ms;
    out.push(`p99 ${what} <= 1.5x etcd: ${r.toFixed(2)}x (${mark(r <= 1.5)})`);
  }
  out.push(`startup to first KV write <= 1500 ms: ${startupMs.toFixed(0)} ms (${mark(startupMs <= 1500)})`);
  out.push(`agent RSS after ${t.keysForRss.toLocaleString('en-US')} keys <= 150 MB: ${t.rssAfterKeysMB.toFixed(1)} MB (${mark(t.rssAfterKeysMB <= 150)})`);
  return out;
}

/** Issue 11's memory targets, each beside the write rate relative to etcd (the throughput guard). */
function memoryVerdicts(t: SystemResults, e: SystemResults, idle: IdleRss): string[] {
  const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const writeRatios = WRITE_CONCURRENCY.map((c) => `c=${c} ${ratio(t.writes[c]!.opsPerSec, e.writes[c]!.opsPerSec)}`).join(', ');
  return [
    `idle server RSS <= 110 MB: ${idle.serverMB.toFixed(1)} MB (${mark(idle.serverMB <= 110)})`,
    `idle client RSS <= 100 MB: ${idle.clientMB.toFixed(1)} MB (${mark(idle.clientMB <= 100)})`,
    `server RSS after ${t.keysForRss.toLocaleString('en-US')} keys <= 250 MB: ${t.rssAfterKeysMB.toFixed(1)} MB (${mark(t.rssAfterKeysMB <= 250)}; etcd ${e.rssAfterKeysMB.toFixed(1)} MB)`,
    `write rate / etcd in this run (compare with the previous run's, +-10%): ${writeRatios}`,
  ];
}

async function main(): Promise<void> {
  const opts = options();
  if (opts.acl) {
    await mainAcl(opts);
    return;
  }
  const etcdV = etcdVersion();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-kv-'));
  note(`work dir ${root} (${fsType(root)})`);
  // Other processes on a 2-core machine move these numbers more than anything measured here.
  const loadBefore = loadAvg();
  if (os.loadavg()[0]! > 1) note(`WARNING: load average ${loadBefore} before the run: other processes are competing for the CPUs`);
  let failed = false;
  try {
    const shape = opts.servers === 1 ? 'a single server' : `${opts.servers} servers`;
    note(`starting Trellis: ${shape} with data dirs (not -dev) ...`);
    const trellis = await startTrellis(root, opts.servers);
    let t: SystemResults;
    try {
      t = await measure(trellis, opts);
    } finally {
      await trellis.stop();
    }

    note(`starting etcd ${etcdV}: ${opts.servers === 1 ? 'a single member' : `${opts.servers} members`} ...`);
    const etcd = await startEtcd(root, opts.servers);
    let e: SystemResults;
    try {
      e = await measure(etcd, opts);
    } finally {
      await etcd.stop();
    }

    note(`startup: ${STARTUP_RUNS} runs of trellis agent -dev until the first KV write succeeds`);
    const startups: number[] = [];
    for (let i = 0; i < STARTUP_RUNS; i++) startups.push(await startupOnce(root, i));
    const startupMedian = [...startups].sort((a, b) => a - b)[Math.floor(STARTUP_RUNS / 2)]!;

    note(`idle RSS: a server and a client agent left alone for ${IDLE_SETTLE_S} s, from the bundle and from the sources`);
    const idle = await idleRss(root, false);
    const idleSrc = await idleRss(root, true);

    const errors = [t, e].flatMap((x) => [...Object.values(x.writes), ...Object.values(x.reads), ...Object.values(x.consistentReads)])
      .filter((c) => c.errors > 0).map((c) => c.firstError);
    failed = errors.length > 0;

    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), loadBefore, loadAfter: loadAvg(), seconds: opts.seconds, valueBytes: VALUE_BYTES, etcdVersion: etcdV, node: process.version, cpus: os.cpus().length, trellis: t, etcd: e, startupMs: startups, startupMedianMs: startupMedian, idleRss: idle, idleRssFromSrc: idleSrc }, (_k, v) => (typeof v === 'bigint' ? String(v) : v), 2)}\n`);
      return;
    }
    const lines = [
      `Trellis KV benchmark  ${new Date().toISOString()}`,
      `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; Node ${process.version}; etcd ${etcdV}; data dirs on ${fsType(root)}`,
      `load: ${opts.seconds} s per cell after a 2 s warm-up, closed loop, keep-alive HTTP/1.1, ${VALUE_BYTES}-byte values, distinct keys; reads pick random written keys`,
      opts.servers === 1
        ? 'trellis: trellis agent -server -bootstrap -data-dir (single voter, fsync per Raft batch); reads: default consistency, and ?consistent'
        : `trellis: ${opts.servers} x trellis agent -server -bootstrap-expect ${opts.servers} -retry-join, load on the leader; reads: default consistency, and ?consistent`,
      opts.servers === 1
        ? 'etcd:    single member, defaults (fsync per batch), default (linearizable) range reads via the /v3 JSON gateway in both read rows'
        : `etcd:    ${opts.servers} members, defaults, load on the leader, default (linearizable) range reads via the /v3 JSON gateway in both read rows`,
      'placement: generator = the bench process; each server its own process, run one at a time; no CPU pinning',
      `load average (1/5/15 min): ${loadBefore} before, ${loadAvg()} after${os.loadavg()[0]! > 1 ? '  <- other processes competed: treat the numbers with care' : ''}`,
      '',
      table(t, e),
      '',
      cpuTable(t, e),
      '',
      `startup (spawn trellis agent -dev -> first successful KV write): median ${startupMedian.toFixed(0)} ms of ${STARTUP_RUNS} [${startups.map((x) => x.toFixed(0)).join(', ')}]`,
      `RSS after ${t.keysForRss.toLocaleString('en-US')} keys${opts.servers > 1 ? ' (the leader)' : ''}: trellis ${t.rssAfterKeysMB.toFixed(1)} MB, etcd ${e.rssAfterKeysMB.toFixed(1)} MB (after ${e.keysForRss.toLocaleString('en-US')} keys)`,
      `idle RSS after ${IDLE_SETTLE_S} s (a -server -bootstrap with a data dir, a client joined to it): bundle (what bin/trellis runs) server ${idle.serverMB.toFixed(1)} MB, client ${idle.clientMB.toFixed(1)} MB; from the TypeScript sources (TRELLIS_FROM_SRC=1) server ${idleSrc.serverMB.toFixed(1)} MB, client ${idleSrc.clientMB.toFixed(1)} MB`,
      '',
      `targets (issue 4${opts.servers > 1 ? '; stated for a single server, shown here for reference' : ''}):`,
      ...verdicts(t, e, startupMedian).map((v) => `  ${v}`),
      `memory targets (issue 11${opts.servers > 1 ? '; stated for a single server' : ''}):`,
      ...memoryVerdicts(t, e, idle).map((v) => `  ${v}`),
    ];
    if (errors.length > 0) lines.push('', `ERRORS during the run (first of each cell): ${errors.join(' | ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

function fsType(dir: string): string {
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', dir], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().replace(/\s+/, ' on ') : 'unknown filesystem';
}

const loadAvg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

await main();
