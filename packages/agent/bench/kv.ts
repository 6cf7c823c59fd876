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
// --acl [--rounds 6] [--trios 2] runs Trellis alone (issue 17: with ACLs >= 0.9x of the run
// without): three servers started alike, one without ACLs, one with acl.enabled and default_policy =
// "deny", and a second one without ACLs as the control (the noise floor: how far two identical
// servers differ), every request to each carrying the same token (one key_prefix rule), in `trios`
// fresh sets of processes. Each row runs in rounds of interleaved slices (XYZZYX, rotating the
// order); it reports per-round ratios (median and confidence interval) of ops/s and of server CPU
// per operation, and a verdict per row against 0.9x that says when the run cannot tell. --seconds
// is then the measured time per row and server (default 10). Fresh processes differ by up to ±10%
// from each other, so a row whose ratio is near 0.9x needs many trios: every row was decided by
// `--seconds 120 --trios 30` (49 minutes on 2 cores, docs/BENCHMARKS.md); --trios goes up to 40.
// No etcd, startup or idle-RSS phases. See mainAcl.
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
import { AgentProcess, freePort, launcher, pin, trellisEnv, usableCpus } from '../../../test/support/index.ts';
import { Cluster, type ServerProc } from '../../../test/cluster/cluster.ts';
import { roundSlots, spread, verdict, type Spread, type Verdict } from './interleaved.ts';

const VALUE_BYTES = 64;
const WRITE_CONCURRENCY = [1, 16, 64] as const;
const READ_CONCURRENCY = [16, 64] as const;
const STARTUP_RUNS = 5;

interface Options { seconds: number; keys: number; json: boolean; servers: number; acl: boolean; rounds: number; trios: number; pin: boolean }

function options(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      keys: { type: 'string', default: '100000' },
      servers: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      acl: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '6' },
      trios: { type: 'string', default: '2' },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: node packages/agent/bench/kv.ts [--seconds N (default 10)] [--keys N (default 100000)] [--servers 1|3] [--acl [--rounds N (default 6)] [--trios N (default 2)] [--no-pin]] [--json]\n');
    process.exit(0);
  }
  const seconds = Number(values.seconds);
  const keys = Number(values.keys);
  const servers = Number(values.servers);
  if (!(seconds > 0)) fail(`--seconds must be a positive number, got ${JSON.stringify(values.seconds)}`);
  if (!Number.isInteger(keys) || keys < 1) fail(`--keys must be a positive integer, got ${JSON.stringify(values.keys)}`);
  if (servers !== 1 && servers !== 3) fail(`--servers must be 1 or 3, got ${JSON.stringify(values.servers)}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) fail(`--rounds must be an integer from 1 to 100, got ${JSON.stringify(values.rounds)}`);
  const trios = Number(values.trios);
  if (!Number.isInteger(trios) || trios < 1 || trios > 40) fail(`--trios must be an integer from 1 to 40, got ${JSON.stringify(values.trios)}`);
  return { seconds, keys, json: values.json, servers, acl: values.acl === true, rounds, trios, pin: values['no-pin'] !== true };
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
  /** Wall-clock seconds of the cell, and the server processes' CPU seconds (utime+stime) in it. */
  elapsedS: number; serverCpuS: number;
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/** user+system CPU seconds of a process so far, from /proc/<pid>/stat (fields 14 and 15). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the command name may hold spaces
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

/**
 * The same quantity (user+system CPU seconds of every thread of the process) to the nanosecond: the
 * sum of sum_exec_runtime in /proc/<pid>/task/<tid>/schedstat, where utime+stime count 10 ms ticks
 * (a 0.4 s slice at half a core is ~20 ticks, a 5% step). A thread that exited drops out, so only
 * for the --acl rows, whose Node servers keep their threads; /proc/<pid>/stat when schedstat is absent.
 */
function cpuSecondsFine(pid: number): number {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
      } catch {
        // the thread exited between the listing and the read
      }
    }
    return ns / 1e9;
  } catch {
    return cpuSeconds(pid);
  }
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
  op: (worker: number, seq: number) => { call: HttpCall; check?: (status: number, body: Buffer) => string | null },
  latencies?: (sorted: Float64Array) => void, cpuOf: (pid: number) => number = cpuSeconds): Promise<CellResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  let lat = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const end = started + seconds * 1000;
  const genCpu0 = process.cpuUsage();
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuOf(pid), 0);
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
  const serverCpuS = serverCpu() - srvCpu0;
  const serverCpuPct = (serverCpuS / elapsedS) * 100;
  agent.destroy();
  const sorted = lat.slice(0, n).sort();
  latencies?.(sorted);
  return { ops: n, opsPerSec: n / elapsedS, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), errors, firstError, generatorCpuPct, serverCpuPct, elapsedS, serverCpuS };
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

// ---------------------------------------------------------------------------------------------
// --acl (issue 17): the same server with and without ACLs, interleaved in rounds.

const ACL_MANAGEMENT = '6d5c8f1e-2b3a-4c7d-9e0f-1a2b3c4d5e6f';
/** Keys written once to every server before the read rows, so that all read the same key set. */
const ACL_READ_KEYS = 5_000;

/**
 * One server for --acl: -server -bootstrap with a data dir and a config file that differs between
 * the servers only in acl.enabled (the same default_policy and initial_management token in all).
 */
async function startAclBenchServer(root: string, name: string, aclOn: boolean): Promise<AgentProcess> {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'bench.hcl');
  fs.writeFileSync(cfg, `acl {\n  enabled = ${aclOn}\n  default_policy = "deny"\n  tokens {\n    initial_management = "${ACL_MANAGEMENT}"\n  }\n}\n`);
  return AgentProcess.start({ name, mode: 'server', dir, args: ['-log-level', 'warn', '-config-file', cfg] });
}

/**
 * On the ACL server: a policy with one key_prefix rule covering the bench's keys and a token with
 * only that policy; returns the token's SecretID. Checks that default deny is really on.
 */
async function makeBenchToken(port: number): Promise<string> {
  const mgmt = { 'x-consul-token': ACL_MANAGEMENT, 'content-type': 'application/json' };
  const agent = new http.Agent({ keepAlive: false });
  try {
    const deadline = Date.now() + 30_000;
    let pol: { status: number; body: Buffer };
    // The initial management token exists once the leader has initialised ACLs.
    do {
      pol = await call(agent, port, { method: 'PUT', path: '/v1/acl/policy', headers: mgmt, body: Buffer.from(JSON.stringify({ Name: 'bench-kv', Rules: 'key_prefix "" { policy = "write" }' })) });
      if (pol.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    if (pol.status !== 200) throw new Error(`creating the bench policy answered ${pol.status} ${pol.body.toString()}`);
    const tok = await call(agent, port, { method: 'PUT', path: '/v1/acl/token', headers: mgmt, body: Buffer.from(JSON.stringify({ Policies: [{ Name: 'bench-kv' }] })) });
    if (tok.status !== 200) throw new Error(`creating the bench token answered ${tok.status} ${tok.body.toString()}`);
    const secret = (JSON.parse(tok.body.toString()) as { SecretID: string }).SecretID;
    const anon = await call(agent, port, { method: 'PUT', path: '/v1/kv/bench/anon', body: Buffer.from('x') });
    if (anon.status !== 403) throw new Error(`an anonymous write to the ACL server answered ${anon.status}, expected 403 (default deny)`);
    return secret;
  } finally {
    agent.destroy();
  }
}

/** What one server did in one round of one row (its two slices summed). */
interface RoundCell { ops: number; elapsedS: number; cpuS: number }

interface AclRowSystem {
  opsPerSec: number; cpuUsPerOp: number; p50Ms: number; p99Ms: number; errors: number; firstError?: string;
  rounds: RoundCell[];
}

interface AclRow {
  op: string; conc: number;
  none: AclRowSystem; acl: AclRowSystem; control: AclRowSystem;
  /** Per round: ACL ops/s over none's, control's over none's; CPU per op likewise. */
  aclOps: Spread; controlOps: Spread; aclCpu: Spread; controlCpu: Spread;
  /** The median ops/s ratios of each trio of processes alone. */
  aclOpsByTrio: number[]; controlOpsByTrio: number[];
  /**
   * The same rule on CPU per operation, the figure other processes move least: none's over acl's
   * (>= 0.9x is what a CPU-bound server's 0.9x throughput comes to), read against control's.
   */
  cpuVerdict: Verdict;
  verdict: Verdict; margin: number; noise: number;
}

const perSec = (c: RoundCell) => c.ops / c.elapsedS;
const cpuPerOp = (c: RoundCell) => (c.ops > 0 ? (c.cpuS / c.ops) * 1e6 : Number.NaN);

/**
 * --acl: three servers started the same way (the same flags and config file but for acl.enabled):
 * "none" without ACLs, "acl" with acl.enabled and default_policy = "deny", and "control", a second
 * server without ACLs. Every request to every server carries the same X-Consul-Token header (the
 * token whose one policy is key_prefix "" { policy = "write" }; servers without ACLs ignore it), so
 * the load generator takes the same path for all three and the difference is the server's ACL work.
 *
 * Each row runs `rounds` rounds per trio of processes; in a round each server gets two slices of
 * seconds/(2*rounds*trios), in the order XYZZYX, the order going through all six permutations of the
 * three across rounds, so neither drift over a round nor going first favours one. Two identical
 * server processes differ by several percent for as long as they live (seen in earlier runs and in
 * the control), which interleaving cannot remove: so the run uses `trios` fresh sets of three
 * processes one after the other (started in a rotated order), and a process's offset becomes one
 * more source of the scatter the confidence interval covers. Per round the bench takes ACL/none and
 * control/none of ops/s and of server CPU per operation (utime+stime from /proc); the report gives
 * each ratio's median with its confidence interval over all rounds, the median per trio, and a
 * verdict per row (interleaved.ts). Writes go to distinct keys; before the read rows every server
 * gets the same ACL_READ_KEYS keys, and the reads of a slice follow the same key sequence on each.
 */
async function mainAcl(opts: Options): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-kv-acl-'));
  const loadBefore = loadAvg();
  if (os.loadavg()[0]! > 1) note(`WARNING: load average ${loadBefore} before the run: other processes are competing for the CPUs`);
  const { rounds, trios } = opts;
  const slice = opts.seconds / (2 * rounds * trios);
  // Pinned (the default where this process may use 2 CPUs or more): the load generator (this
  // process) on CPU 0, each server with all its threads on CPU 1. Only one server is loaded at a
  // time, so the three never compete with each other, and none of them with the generator: what
  // moves one slice's ops/s against the next is then the server's own work, not where the
  // scheduler put the generator. (Trellis against itself: etcd's Go runtime is not in this row.)
  const pinned = opts.pin && usableCpus() >= 2;
  if (pinned && !pin(process.pid, '0')) fail('taskset could not pin the load generator to CPU 0 (util-linux missing?); run with --no-pin');
  const names = ['none', 'acl', 'control'] as const;
  type Op = (w: number, q: number) => { call: HttpCall; check?: (status: number, body: Buffer) => string | null };
  interface RowAcc {
    label: string; conc: number; perRound: RoundCell[][]; lats: Float64Array[][]; errors: number[]; firstErrors: Array<string | undefined>;
    /** The trio of each round. */
    trioOf: number[];
  }
  const acc = (label: string, conc: number): RowAcc => ({
    label, conc, perRound: names.map(() => []), lats: names.map(() => []), errors: names.map(() => 0), firstErrors: names.map(() => undefined), trioOf: [],
  });
  const writeRows = WRITE_CONCURRENCY.map((c) => acc('write', c));
  const readRows = (['read', 'read ?consistent'] as const).flatMap((label) => READ_CONCURRENCY.map((c) => ({ ...acc(label, c), consistent: label !== 'read' })));
  const readKeys = Array.from({ length: ACL_READ_KEYS }, (_, i) => `read/${String(i).padStart(6, '0')}`);
  /** What each server process ran: the bundle, or the sources (the launcher's choice when a .ts is newer than the bundle). */
  const ran = new Set<string>();

  /** Round g (numbered across trios) of one row: XYZZYX slices; `op(s, k)` builds slice k (0, 1) of server s. */
  const round = async (row: RowAcc, systems: RunningSystem[], trio: number, g: number, op: (s: RunningSystem, k: number) => Op) => {
    const cells = systems.map((): RoundCell => ({ ops: 0, elapsedS: 0, cpuS: 0 }));
    const seen = systems.map(() => 0);
    for (const i of roundSlots(g)) {
      const s = systems[i]!;
      const res = await runCell(s.target, s.pids, row.conc, slice, op(s, seen[i]!++), (sorted) => row.lats[i]!.push(sorted), cpuSecondsFine);
      cells[i]!.ops += res.ops;
      cells[i]!.elapsedS += res.elapsedS;
      cells[i]!.cpuS += res.serverCpuS;
      row.errors[i]! += res.errors;
      row.firstErrors[i] ??= res.firstError;
    }
    for (const [i, cell] of cells.entries()) row.perRound[i]!.push(cell);
    row.trioOf.push(trio);
  };

  /** One trio of fresh processes: started, given the token, warmed up, every row's rounds, stopped. */
  const runTrio = async (trio: number) => {
    const procs: AgentProcess[] = [];
    try {
      // Started in a rotated order (none, acl, control; then acl, control, none; ...).
      for (let j = 0; j < 3; j++) {
        const i = (j + trio) % 3;
        note(`trio ${trio + 1}/${trios}: starting ${names[i]}`);
        procs[i] = await startAclBenchServer(root, `kv-${names[i]}-${trio + 1}`, i === 1);
        if (pinned && !pin(procs[i]!.pid!, '1')) throw new Error(`taskset could not pin ${names[i]} (pid ${procs[i]!.pid}) to CPU 1; run with --no-pin`);
      }
      for (const p of procs) {
        const argv = fs.readFileSync(`/proc/${p.pid!}/cmdline`, 'utf8').split('\0');
        ran.add(argv.some((a) => a.endsWith('dist/trellis.mjs')) ? 'the bundle (dist/trellis.mjs)' : 'the TypeScript sources (the bundle was stale)');
      }
      const secret = await makeBenchToken(procs[1]!.ports.http);
      const systems: RunningSystem[] = procs.map((p, i) => ({
        target: { ...trellisTarget(p.ports.http, secret), name: names[i]! }, pids: [p.pid!], leaderPid: p.pid!, stop: async () => { await p.stop(); },
      }));
      // The servers without ACLs take the token's requests as the ACL server does.
      for (const s of systems) {
        const agent = new http.Agent();
        const r = await call(agent, s.target.port, s.target.put('bench/probe', valueFor('bench/probe')));
        agent.destroy();
        if (r.status !== 200) throw new Error(`${s.target.name}: a write with the bench token answered ${r.status} ${r.body.toString().slice(0, 200)}`);
      }
      for (const i of roundSlots(trio).slice(0, 3)) {
        const s = systems[i]!;
        note(`trio ${trio + 1}/${trios}: ${s.target.name}: warm-up writes for ${Math.min(2, opts.seconds)}s`);
        await runCell(s.target, s.pids, 16, Math.min(2, opts.seconds), (w, q) => {
          const key = `warm/${w}/${q}`;
          return { call: s.target.put(key, valueFor(key)) };
        });
      }
      for (const row of writeRows) {
        note(`trio ${trio + 1}/${trios}: write c=${row.conc}: ${rounds} rounds of ${slice.toFixed(2)}s slices`);
        for (let r = 0; r < rounds; r++) {
          const g = trio * rounds + r;
          await round(row, systems, trio, g, (s, k) => (w, q) => {
            const key = `bench/w${row.conc}/${g}${k}/${w}/${String(q).padStart(7, '0')}`;
            return { call: s.target.put(key, valueFor(key)) };
          });
        }
      }
      note(`trio ${trio + 1}/${trios}: writing the same ${ACL_READ_KEYS} keys to every server for the read rows`);
      for (const s of systems) {
        let next = 0;
        const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
        await Promise.all(Array.from({ length: 64 }, async () => {
          while (next < readKeys.length) {
            const key = readKeys[next++]!;
            const r = await call(agent, s.target.port, s.target.put(key, valueFor(key)));
            if (r.status !== 200) throw new Error(`${s.target.name}: writing ${key} answered ${r.status} ${r.body.toString().slice(0, 200)}`);
          }
        }));
        agent.destroy();
      }
      for (const row of readRows) {
        note(`trio ${trio + 1}/${trios}: ${row.label} c=${row.conc}: ${rounds} rounds of ${slice.toFixed(2)}s slices`);
        for (let r = 0; r < rounds; r++) {
          const g = trio * rounds + r;
          await round(row, systems, trio, g, (s, k) => {
            // The same pseudo-random key sequence for every server in the same slot of a round.
            let rnd = 12345 + g * 2 + k;
            let i = 0;
            const build = row.consistent ? s.target.getConsistent : s.target.get;
            return () => {
              rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
              const key = readKeys[rnd % readKeys.length]!;
              const verify = (i++ % 100) === 0;
              return { call: build(key), check: verify ? (_st, body) => (s.target.verifyGet(body, valueFor(key)) ? null : `wrong or missing value for ${key}`) : undefined };
            };
          });
        }
      }
    } finally {
      for (const p of procs) await p?.stop();
    }
  };

  const finish = (row: RowAcc): AclRow => {
    const sys = (i: number): AclRowSystem => {
      const rs = row.perRound[i]!;
      const ops = rs.reduce((a, x) => a + x.ops, 0);
      const el = rs.reduce((a, x) => a + x.elapsedS, 0);
      const cpu = rs.reduce((a, x) => a + x.cpuS, 0);
      const all = new Float64Array(row.lats[i]!.reduce((a, x) => a + x.length, 0));
      let off = 0;
      for (const l of row.lats[i]!) { all.set(l, off); off += l.length; }
      all.sort();
      return { opsPerSec: ops / el, cpuUsPerOp: ops > 0 ? (cpu / ops) * 1e6 : Number.NaN, p50Ms: percentile(all, 0.5), p99Ms: percentile(all, 0.99), errors: row.errors[i]!, firstError: row.firstErrors[i], rounds: rs };
    };
    const perRoundRatio = (f: (c: RoundCell) => number, i: number) => row.perRound[i]!.map((x, r) => f(x) / f(row.perRound[0]![r]!));
    const byTrio = (values: number[]) => Array.from({ length: trios }, (_, t) => spread(values.filter((_, r) => row.trioOf[r] === t)).median);
    const aclOpsR = perRoundRatio(perSec, 1);
    const controlOpsR = perRoundRatio(perSec, 2);
    const aclOps = spread(aclOpsR);
    const controlOps = spread(controlOpsR);
    const aclCpuR = perRoundRatio(cpuPerOp, 1);
    const controlCpuR = perRoundRatio(cpuPerOp, 2);
    return {
      op: row.label, conc: row.conc, none: sys(0), acl: sys(1), control: sys(2), aclOps, controlOps,
      aclCpu: spread(aclCpuR), controlCpu: spread(controlCpuR),
      aclOpsByTrio: byTrio(aclOpsR), controlOpsByTrio: byTrio(controlOpsR), ...verdict(aclOps, controlOps, 0.9),
      cpuVerdict: verdict(spread(aclCpuR.map((v) => 1 / v)), spread(controlCpuR.map((v) => 1 / v)), 0.9).verdict,
    };
  };

  try {
    for (let t = 0; t < trios; t++) await runTrio(t);
    const rows = [...writeRows, ...readRows].map(finish);
    const loadAfter = loadAvg();
    const errs = rows.flatMap((r) => [r.none, r.acl, r.control]).filter((x) => x.errors > 0).map((x) => x.firstError);
    if (errs.length > 0) process.exitCode = 1;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), loadBefore, loadAfter, seconds: opts.seconds, rounds, trios, sliceSeconds: slice, rows }, null, 2)}\n`);
      return;
    }
    const x = (v: number) => `${v.toFixed(2)}x`;
    const sp = (s: Spread) => `${x(s.median)} [${s.ciLow.toFixed(2)}-${s.ciHigh.toFixed(2)}]`;
    const us = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-');
    const table = (head: string[], body: string[][]) => {
      const all = [head, ...body];
      const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
      return all.map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
    };
    const n = rounds * trios;
    const lines = [
      `Trellis KV benchmark, ACL row  ${new Date().toISOString()}`,
      `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}; Node ${process.version}; data dirs on ${fsType(root)}`,
      `servers: ${trios} trio(s), one after the other, of three trellis agent -server -bootstrap -data-dir started alike (the same flags and config file but for acl.enabled):`,
      '  none = no ACLs; acl = acl.enabled, default_policy "deny"; control = no ACLs (a second identical server: the noise floor)',
      `servers ran: ${[...ran].join(' and ')}${ran.size > 1 ? '  <- MIXED: a source file changed during the run; rebuild (node packages/agent/build.ts) and run again' : ''}`,
      'requests: every one to every server carries X-Consul-Token = a token whose one policy is key_prefix "" { policy = "write" } (servers without ACLs ignore it)',
      `load: closed loop, keep-alive HTTP/1.1, ${VALUE_BYTES}-byte values; writes to distinct keys; reads of the same ${ACL_READ_KEYS.toLocaleString('en-US')} keys on every server`,
      `placement: ${pinned ? 'pinned with taskset: the load generator (this process) on CPU 0, every server with all its threads on CPU 1' : 'unpinned (--no-pin, or fewer than 2 CPUs usable)'}`,
      `rounds: ${rounds} per row and trio; in a round each server gets two ${slice.toFixed(2)} s slices in the order XYZZYX, the order rotating through the six permutations; ${(2 * n * slice).toFixed(1)} s per row and server`,
      `load average (1/5/15 min): ${loadBefore} before, ${loadAfter} after${os.loadavg()[0]! > 1 ? '  <- other processes competed' : ''}`,
      '',
      'totals over all rounds (cpu us/op: the server process\'s CPU time per operation, user+system, all threads, from /proc/<pid>/task/*/schedstat):',
      ...table(['op', 'conc', 'none ops/s', 'p50 ms', 'p99 ms', 'cpu us/op', 'acl ops/s', 'p50 ms', 'p99 ms', 'cpu us/op', 'control ops/s', 'cpu us/op', 'errors'],
        rows.map((r) => [r.op, String(r.conc), fmtOps(r.none.opsPerSec), fmtMs(r.none.p50Ms), fmtMs(r.none.p99Ms), us(r.none.cpuUsPerOp),
          fmtOps(r.acl.opsPerSec), fmtMs(r.acl.p50Ms), fmtMs(r.acl.p99Ms), us(r.acl.cpuUsPerOp), fmtOps(r.control.opsPerSec), us(r.control.cpuUsPerOp),
          `${r.none.errors}/${r.acl.errors}/${r.control.errors}`])),
      '',
      `ratios per round: median of ${n} [its ${(rows[0]!.aclOps.ciCoverage * 100).toFixed(1)}% confidence interval, order statistics${rows[0]!.aclOps.ciLow === rows[0]!.aclOps.min && rows[0]!.aclOps.ciHigh === rows[0]!.aclOps.max ? ': the range' : ''}]; then the ops/s medians per trio`,
      ...table(['op', 'conc', 'ops/s acl/none', 'ops/s control/none', 'cpu/op acl/none', 'cpu/op control/none', 'acl/none by trio', 'control/none by trio'],
        rows.map((r) => [r.op, String(r.conc), sp(r.aclOps), sp(r.controlOps), sp(r.aclCpu), sp(r.controlCpu),
          r.aclOpsByTrio.map((v) => v.toFixed(2)).join(' '), r.controlOpsByTrio.map((v) => v.toFixed(2)).join(' ')])),
      '',
      'issue 17 target: acl ops/s >= 0.9x none. met: the interval\'s low end minus the noise floor (|control/none median - 1|) >= 0.9x;',
      'NOT met: its high end plus the noise floor < 0.9x; otherwise undecided (this run cannot tell). The same rule on CPU per operation',
      '(none\'s over acl\'s >= 0.9x, i.e. acl cpu/op <= 1.11x none\'s, what a CPU-bound server\'s 0.9x throughput comes to) after "cpu":',
      ...rows.map((r) => `  ${`${r.op} c=${r.conc}:`.padEnd(25)} ${x(r.aclOps.median)} [${r.aclOps.ciLow.toFixed(2)}-${r.aclOps.ciHigh.toFixed(2)}], noise floor ${r.noise.toFixed(2)}: ${r.verdict}; cpu/op acl/none ${x(r.aclCpu.median)} [${r.aclCpu.ciLow.toFixed(2)}-${r.aclCpu.ciHigh.toFixed(2)}] (control ${x(r.controlCpu.median)}): cpu ${r.cpuVerdict}`),
    ];
    if (errs.length > 0) lines.push('', `ERRORS (first of each server and row): ${errs.join(' | ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
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
