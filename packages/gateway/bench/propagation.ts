// How long a config change takes to reach running sidecar proxies (issue 14, "Speed": a config
// change reaches 100 running proxies within 2 s). Real processes: `trellis agent -dev`, one test app
// `api` behind its sidecar, and N `trellis connect proxy -sidecar-for client-<i>` processes, each
// with an HTTP upstream listener for `api` (service-defaults protocol http, a service-router), so
// each watches api's discovery chain with a blocking query, as in production.
//
// One round: PUT a new service-router for api (its catch-all route sets a response header
// x-chain-version: <round>); each proxy logs "discovery chain updated" with its own timestamp when
// the new chain is in place. Figures: per round, the time from just before the PUT to the last
// proxy's line (and p50/p90), how many proxies were within 2 s; then a request through a sample of
// proxies must carry the new header (the chain is applied, not only logged). Also the proxies' RSS
// (VmRSS, and PSS, which shares the Node binary's pages among the processes that map them).
//
//   npm run bench:propagation [-- --proxies 100 --rounds 5 --batch 10 --dist <copy of packages/agent/dist>]
//
// Bounded: every wait has a deadline; all processes are killed on exit, error or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startTestApp, type TestApp } from '../../../test/fixtures/testApp.ts';
import { AgentProcess, freePort, launcher, repoRoot, trellisEnv, waitFor } from '../../../test/support/index.ts';

const nodeBin = path.join(repoRoot, 'node_modules', 'node', 'bin', 'node');

const { values: argv } = parseArgs({
  options: {
    proxies: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '10' },
    sample: { type: 'string', default: '10' },
    // A copy of packages/agent/dist to run with the launcher's flags, instead of bin/trellis (which
    // runs the sources whenever one is newer than the bundle: while others edit the tree).
    dist: { type: 'string' },
  },
});
const N = Number(argv.proxies);
const ROUNDS = Number(argv.rounds);
const BATCH = Number(argv.batch);
const SAMPLE = Math.min(N, Number(argv.sample));
if (![N, ROUNDS, BATCH, SAMPLE].every((x) => Number.isInteger(x) && x > 0) || N > 500) throw new Error('--proxies (1..500), --rounds, --batch, --sample: positive integers');
const TARGET_MS = 2000;

interface Proxy { child: ChildProcess; port: number; lines: string[]; started: boolean }
const proxies: Proxy[] = [];
let agent: AgentProcess | undefined;
let app: TestApp | undefined;
let apiProxy: ChildProcess | undefined;

function killAll(): void {
  for (const p of proxies) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  if (apiProxy && apiProxy.exitCode === null) apiProxy.kill('SIGKILL');
  agent?.killNow();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130); });

async function put(method: string, path: string, body: unknown): Promise<void> {
  const r = await agent!.request(method, path, { body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
}

const router = (version: number) => ({ Kind: 'service-router', Name: 'api', Routes: [
  { Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'api', RequestTimeout: '5s' } },
  { Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: 'api', ResponseHeaders: { Set: { 'x-chain-version': String(version) } } } },
] });

/** What bin/trellis execs for `connect proxy` from the bundle (its flags and malloc settings). */
function proxyCommand(args: string[]): [string, string[], NodeJS.ProcessEnv] {
  if (!argv.dist) return [launcher, args, trellisEnv()];
  return [nodeBin, ['--lite-mode', '--max-semi-space-size=4', '--heap-growing-percent=50', path.join(argv.dist, 'trellis.mjs'), ...args],
    { ...trellisEnv(), MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' }];
}

function spawnProxy(args: string[]): { child: ChildProcess; lines: string[] } {
  const [cmd, full, env] = proxyCommand(args);
  const child = spawn(cmd, full, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  const take = (b: Buffer) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return { child, lines };
}

/** The x-chain-version header of a GET / through proxy `p`'s upstream listener. */
function chainVersionVia(p: Proxy): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: p.port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers['x-chain-version'] as string | undefined));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function memOf(pid: number): { rss: number; pss: number } {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN) / 1024;
  return { rss: kb('Rss'), pss: kb('Pss') };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
const loadAvg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const loadBefore = loadAvg();
  // Every proxy here talks to one agent from 127.0.0.1 with ~7 blocking queries open: above Consul's
  // default limits.http_max_conns_per_client (200, answered with 429) from ~30 proxies on. In a
  // cluster each node's agent serves its own few proxies; here the limit is raised to fit N.
  agent = await AgentProcess.start({ name: 'bench-propagation', args: ['-log-level', 'warn', '-hcl', `limits { http_max_conns_per_client = ${Math.max(200, 12 * (N + 2))} }`] });
  await put('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await put('PUT', '/v1/config', router(0));
  app = await startTestApp({ name: 'api' });
  await put('PUT', '/v1/agent/service/register', { Name: 'api', Port: app.port, Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' } } } } });
  apiProxy = spawnProxy(['connect', 'proxy', '-sidecar-for', 'api', '-http-addr', agent.httpAddr, '-log-level', 'warn']).child;

  const t0 = Date.now();
  for (let b = 0; b < N; b += BATCH) {
    const batch: Proxy[] = [];
    for (let i = b; i < Math.min(N, b + BATCH); i++) {
      const port = await freePort();
      await put('PUT', '/v1/agent/service/register', { Name: `client-${i}`, Port: await freePort(),
        Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: [{ DestinationName: 'api', LocalBindPort: port }] } } } });
      const { child, lines } = spawnProxy(['connect', 'proxy', '-sidecar-for', `client-${i}`, '-http-addr', agent.httpAddr, '-log-level', 'info']);
      const p: Proxy = { child, port, lines, started: false };
      proxies.push(p);
      batch.push(p);
    }
    // A batch at a time, so startup (CPU-bound) does not starve the processes already running.
    await waitFor(`proxies ${b}..${b + batch.length - 1} listening`, () => batch.every((p) => {
      if (p.child.exitCode !== null) throw new Error(`proxy exited ${p.child.exitCode}: ${p.lines.slice(-5).join('\n')}`);
      return (p.started ||= p.lines.some((l) => l.includes('upstream listener started (http')));
    }), 120_000, 100).catch((err: Error) => {
      const stuck = batch.find((p) => !p.started);
      throw new Error(`${err.message}; a proxy that did not start said:\n${stuck?.lines.slice(-10).join('\n')}`);
    });
    process.stderr.write(`${proxies.length}/${N} proxies running (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  // Every proxy routes through the chain before the rounds (its target's instances are known).
  for (const p of proxies) await waitFor(`proxy on ${p.port} routes`, async () => (await chainVersionVia(p).catch(() => undefined)) === '0', 60_000, 200);
  await new Promise((r) => setTimeout(r, 6000)); // past the idle collection (idleGc.ts), so the RSS is the idle one
  const mem = proxies.map((p) => memOf(p.child.pid!));
  const rssSorted = mem.map((m) => m.rss).sort((a, b) => a - b);
  const pssTotal = mem.reduce((a, m) => a + m.pss, 0);

  const rounds: Array<{ lastMs: number; p50: number; p90: number; within: number; missing: number; verified: number }> = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const marks = proxies.map((p) => p.lines.length);
    const before = Date.now();
    await put('PUT', '/v1/config', router(r));
    // Each proxy's own timestamp on its "discovery chain updated" line after the PUT began.
    const seenAt = new Array<number | undefined>(N).fill(undefined);
    await waitFor(`round ${r}: every proxy updated its chain`, () => {
      proxies.forEach((p, i) => {
        if (seenAt[i] !== undefined) return;
        const line = p.lines.slice(marks[i]).find((l) => l.includes('discovery chain updated'));
        if (line) seenAt[i] = Date.parse(line.slice(0, line.indexOf(' ')));
      });
      return seenAt.every((x) => x !== undefined);
    }, 30_000, 20).catch(() => undefined);
    const delays = seenAt.filter((x): x is number => x !== undefined).map((t) => t - before).sort((a, b) => a - b);
    // Applied, not only logged: requests through a sample of proxies carry the new header.
    let verified = 0;
    for (const p of proxies.slice(0, SAMPLE)) if ((await chainVersionVia(p).catch(() => undefined)) === String(r)) verified++;
    rounds.push({ lastMs: delays[delays.length - 1] ?? NaN, p50: pct(delays, 50), p90: pct(delays, 90), within: delays.filter((d) => d <= TARGET_MS).length, missing: N - delays.length, verified });
    process.stderr.write(`round ${r}: last proxy after ${rounds[r - 1]!.lastMs} ms\n`);
    await new Promise((res) => setTimeout(res, 1000));
  }
  const loadAfter = loadAvg();

  out(`Trellis config propagation benchmark  ${new Date().toISOString()}`);
  out(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}`);
  out(`proxies run ${argv.dist ? `from the bundle copy ${argv.dist} with bin/trellis's flags` : 'through bin/trellis'}`);
  out(`${N} trellis connect proxy processes (HTTP upstream listener for api, watching its discovery chain), 1 api sidecar, trellis agent -dev`);
  out(`load average (1/5/15 min): ${loadBefore} before, ${loadAfter} after${os.loadavg()[0]! > 1.5 ? '  <- other processes competed for the cores: treat the times with care' : ''}`);
  out(`idle RSS per proxy: median ${pct(rssSorted, 50).toFixed(1)} MB, max ${rssSorted[rssSorted.length - 1]!.toFixed(1)} MB; PSS total ${(pssTotal / 1024).toFixed(2)} GiB for ${N} proxies (${(pssTotal / N).toFixed(1)} MB each, the Node binary's pages shared)`);
  out('');
  out(`${'round'.padEnd(6)} ${'p50 ms'.padStart(7)} ${'p90 ms'.padStart(7)} ${'last ms'.padStart(8)} ${'<= 2 s'.padStart(8)} ${'missing'.padStart(8)} ${'applied (sample)'.padStart(17)}`);
  rounds.forEach((r, i) => out(`${String(i + 1).padEnd(6)} ${String(r.p50).padStart(7)} ${String(r.p90).padStart(7)} ${String(r.lastMs).padStart(8)} ${`${r.within}/${N}`.padStart(8)} ${String(r.missing).padStart(8)} ${`${r.verified}/${SAMPLE}`.padStart(17)}`));
  const worst = Math.max(...rounds.map((r) => r.lastMs));
  out('');
  out(`target (issue 14): a config change reaches ${N} running proxies within 2 s: worst round ${worst} ms (${worst <= TARGET_MS && rounds.every((r) => r.missing === 0 && r.verified === SAMPLE) ? 'met' : 'NOT met'})`);
  process.stdout.write(outLines.join('\n') + '\n');

  function out(s: string): void { outLines.push(s); }
}
const outLines: string[] = [];

try {
  await main();
} finally {
  if (outLines.length === 0) process.stderr.write('no result\n');
  for (const p of proxies) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  if (apiProxy && apiProxy.exitCode === null) apiProxy.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  killAll();
  await app?.close();
  await agent?.dispose().catch(() => undefined);
}
