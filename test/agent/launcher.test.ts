// The `trellis` command as a supervisor runs it: from a shell whose PATH holds only the system's Node
// (20 here), keeping the PID it spawned and ending it with SIGKILL. The launcher (node_modules/.bin/trellis)
// must become the pinned Node 24 running the agent, not a parent waiting for it: the PID we spawned is
// the agent, the pid file names it, a SIGKILL of it leaves nothing behind, and its ports are free at
// once. CLI subcommands pass their exit code, stdin and stdout through the same way.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort, launcher, repoRoot, request, waitFor, closeIdleSockets } from '../support/index.ts';
import { isStale } from '../../packages/agent/build.ts';

const pinnedNode = path.join(repoRoot, 'node_modules', 'node', 'bin', 'node');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-launcher-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});

/**
 * PATH as a supervisor's shell has it: the directory of the system's `node` (the first one on our
 * PATH outside this checkout's node_modules, which npm puts first), then /usr/bin:/bin.
 */
function systemPath(): string {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d && !path.resolve(d).startsWith(path.join(repoRoot, 'node_modules')) && !d.includes(`${path.sep}node_modules${path.sep}`));
  const nodeDir = dirs.find((d) => {
    try { fs.accessSync(path.join(d, 'node'), fs.constants.X_OK); return true; } catch { return false; }
  });
  return [...new Set([...(nodeDir ? [nodeDir] : []), '/usr/bin', '/bin'])].join(':');
}
const PATH = systemPath();

/** Spawns the launcher under `env -i PATH=<system>` plus `vars`; `env` execs it, so the PID is the launcher's. */
function spawnTrellis(args: string[], vars: Record<string, string> = {}): ChildProcess {
  const env = Object.entries({ PATH, ...vars }).map(([k, v]) => `${k}=${v}`);
  const child = spawn('/usr/bin/env', ['-i', ...env, launcher, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
function runTrellis(args: string[], vars: Record<string, string> = {}, stdin = ''): Promise<Run> {
  const child = spawnTrellis(args, vars);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b; });
  child.stderr!.on('data', (b: Buffer) => { stderr += b; });
  child.stdin!.end(stdin);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`trellis ${args.join(' ')} did not exit; stderr: ${stderr}`)); }, 30_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** PIDs of live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try { cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8'); } catch { continue; } // gone meanwhile
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

describe('the trellis launcher under the system Node', () => {
  test('the PATH used has a Node older than 24, or none (so the launcher cannot run the agent with it)', () => {
    const v = spawnSync('/usr/bin/env', ['-i', `PATH=${PATH}`, 'node', '--version'], { encoding: 'utf8' });
    if (v.error || v.status !== 0) return; // no system node: the launcher does not need one
    assert.ok(Number(v.stdout.trim().replace(/^v/, '').split('.')[0]) < 24, `PATH=${PATH} gives node ${v.stdout}`);
  });

  test('agent: the spawned PID is the agent on the pinned Node 24; SIGKILL of it leaves no process and frees its ports', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'agent-'));
    const pidFile = path.join(dir, 'agent.pid');
    const ports = { http: await freePort(), dns: await freePort({ udp: true }), server: await freePort(), serfLan: await freePort(), serfWan: await freePort() };
    const bundleWasStale = isStale();
    const child = spawnTrellis(['agent', '-dev', '-node', 'launcher-test', `-pid-file=${pidFile}`, '-log-level', 'warn',
      '-http-port', String(ports.http), '-dns-port', String(ports.dns), '-server-port', String(ports.server),
      '-serf-lan-port', String(ports.serfLan), '-serf-wan-port', String(ports.serfWan), '-grpc-port', '-1']);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b; });
    child.stderr!.on('data', (b: Buffer) => { out += b; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    try {
      const base = `http://127.0.0.1:${ports.http}`;
      await waitFor('the agent to serve HTTP with a leader', async () => {
        if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${out}`);
        const r = await request(base, 'GET', '/v1/status/leader', { timeoutMs: 2_000 });
        return r.status === 200 && r.json<string>() !== '';
      }, 30_000, 100);

      // The process we spawned is the agent: the pid file names it and it runs the pinned Node 24.
      assert.equal(Number(fs.readFileSync(pidFile, 'utf8')), child.pid, 'the pid file holds the spawned PID');
      const exe = fs.statSync(`/proc/${child.pid}/exe`);
      const pinned = fs.statSync(pinnedNode);
      assert.deepEqual([exe.dev, exe.ino], [pinned.dev, pinned.ino], `/proc/${child.pid}/exe is ${fs.readlinkSync(`/proc/${child.pid}/exe`)}, not ${pinnedNode}`);
      assert.deepEqual(processesMentioning(dir), [child.pid], 'the agent is the only process started for it');
      // The agent's environment and flags from the launcher.
      const environ = fs.readFileSync(`/proc/${child.pid}/environ`, 'utf8');
      assert.match(environ, /(^|\0)MALLOC_ARENA_MAX=2\0/);
      assert.match(environ, /(^|\0)MALLOC_MMAP_THRESHOLD_=131072\0/);
      const argv = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes('--max-semi-space-size=4'), argv.join(' '));
      // What users run: the bundle, unless a source is newer than it (then the sources).
      assert.equal(argv.includes(path.join(repoRoot, 'packages', 'agent', 'dist', 'trellis.mjs')), !bundleWasStale, argv.join(' '));

      // CLI commands against it, through the same launcher: stdin in, stdout and exit codes out.
      const env = { CONSUL_HTTP_ADDR: `127.0.0.1:${ports.http}` };
      const put = await runTrellis(['kv', 'put', 'launcher/stdin', '-'], env, 'read from stdin');
      assert.deepEqual([put.code, put.stdout, put.stderr], [0, 'Success! Data written to: launcher/stdin\n', '']);
      const get = await runTrellis(['kv', 'get', 'launcher/stdin'], env);
      assert.deepEqual([get.code, get.stdout], [0, 'read from stdin\n']);
      const missing = await runTrellis(['kv', 'get', 'launcher/none'], env);
      assert.deepEqual([missing.code, missing.stdout, missing.stderr], [1, '', 'Error! No key exists at: launcher/none\n']);

      process.kill(child.pid!, 'SIGKILL');
      const killedAt = Date.now();
      assert.deepEqual(await exited, { code: null, signal: 'SIGKILL' }, 'the spawned process itself died of the SIGKILL');
      // Within 1 s of the kill: nothing of the agent left, and its ports can be bound again.
      await waitFor('no process left for the agent and its HTTP and server ports free', async () =>
        processesMentioning(dir).length === 0 && await canBind(ports.http) && await canBind(ports.server), 1_000 - (Date.now() - killedAt), 20);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const pid of processesMentioning(dir)) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  });

  test('version: exit 0 and its stdout, nothing on stderr', async () => {
    const r = await runTrellis(['version']);
    assert.deepEqual([r.code, r.signal, r.stderr], [0, null, '']);
    assert.match(r.stdout, /^Trellis v\d+\.\d+\.\d+\nProtocol 2 spoken by default/);
  });

  test('a failing command: its exit code and message come through', async () => {
    const r = await runTrellis(['no-such-command']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Unknown command: "no-such-command"/);
  });

  test('TRELLIS_NODE names the Node to run; a missing one fails with exit 1', async () => {
    const ok = await runTrellis(['version'], { TRELLIS_NODE: pinnedNode });
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await runTrellis(['version'], { TRELLIS_NODE: path.join(tmp, 'no-node') });
    assert.deepEqual([bad.code, bad.stdout], [1, '']);
    assert.match(bad.stderr, /^trellis: TRELLIS_NODE is \S+no-node, which is not an executable file/);
  });

  test('runs the bundle while it is newer than every source, else the sources', async () => {
    // A package laid out as in the checkout, with stand-ins that say which file Node ran.
    const root = fs.mkdtempSync(path.join(tmp, 'layout-'));
    const pkg = path.join(root, 'packages', 'agent');
    const write = (rel: string, text: string, mtimeS: number) => {
      const f = path.join(root, rel);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, text);
      fs.utimesSync(f, mtimeS, mtimeS);
      return f;
    };
    fs.mkdirSync(path.join(pkg, 'bin'), { recursive: true });
    fs.copyFileSync(fs.realpathSync(launcher), path.join(pkg, 'bin', 'trellis'));
    fs.chmodSync(path.join(pkg, 'bin', 'trellis'), 0o755);
    fs.mkdirSync(path.join(root, 'node_modules', 'node', 'bin'), { recursive: true });
    fs.symlinkSync(pinnedNode, path.join(root, 'node_modules', 'node', 'bin', 'node'));
    fs.copyFileSync(path.join(repoRoot, 'node_modules', 'node', 'package.json'), path.join(root, 'node_modules', 'node', 'package.json'));
    const says = 'console.log(JSON.stringify({ file: import.meta.filename, args: process.argv.slice(2), execArgv: process.execArgv }));\n';
    const t0 = Math.floor(Date.now() / 1000) - 1000;
    write('packages/agent/src/cli/main.ts', says, t0);
    write('packages/raft/src/node.ts', '', t0);
    const dist = write('packages/agent/dist/trellis.mjs', says, t0 + 10);
    const run = async (vars: Record<string, string> = {}, argv = ['agent', '-dev']) => {
      const r = spawnSync('/usr/bin/env', ['-i', `PATH=${PATH}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), path.join(pkg, 'bin', 'trellis'), ...argv], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { file: string; args: string[]; execArgv: string[] };
    };
    let r = await run();
    assert.deepEqual([r.file, r.args, r.execArgv], [dist, ['agent', '-dev'], ['--max-semi-space-size=4', '--heap-growing-percent=50', '--enable-source-maps']]);
    r = await run({ TRELLIS_FROM_SRC: '1' });
    assert.deepEqual([r.file, r.execArgv], [path.join(pkg, 'src', 'cli', 'main.ts'), ['--max-semi-space-size=4', '--heap-growing-percent=50']]);
    // The sidecar proxy: no source maps and V8 lite mode from the bundle (its memory budget); from
    // src no lite mode (it has no WebAssembly, which type stripping needs).
    r = await run({}, ['connect', 'proxy', '-sidecar-for', 'web']);
    assert.deepEqual([r.file, r.args, r.execArgv], [dist, ['connect', 'proxy', '-sidecar-for', 'web'], ['--lite-mode', '--max-semi-space-size=4', '--heap-growing-percent=50']]);
    // TRELLIS_PROXY_JIT=1: the full JIT instead (twice the throughput per CPU, more memory).
    r = await run({ TRELLIS_PROXY_JIT: '1' }, ['connect', 'proxy', '-sidecar-for', 'web']);
    assert.deepEqual([r.file, r.args, r.execArgv], [dist, ['connect', 'proxy', '-sidecar-for', 'web'], ['--max-semi-space-size=4', '--heap-growing-percent=50']]);
    r = await run({ TRELLIS_FROM_SRC: '1' }, ['connect', 'proxy', '-sidecar-for', 'web']);
    assert.deepEqual([r.file, r.execArgv], [path.join(pkg, 'src', 'cli', 'main.ts'), ['--max-semi-space-size=4', '--heap-growing-percent=50']]);
    // The mesh gateway: V8's full JIT, no lite mode (it tripled its CPU per connection against
    // haproxy in bench:gateway) and no memory settings (its budget is 300 MB at 10,000 connections).
    r = await run({}, ['connect', 'gateway', '-register']);
    assert.deepEqual([r.file, r.args, r.execArgv], [dist, ['connect', 'gateway', '-register'], ['--enable-source-maps']]);
    // An edit in @trellis/gateway's sources (bundled too) makes the bundle stale.
    write('packages/gateway/src/index.ts', '', t0 + 15);
    assert.equal((await run()).file, path.join(pkg, 'src', 'cli', 'main.ts'));
    write('packages/agent/dist/trellis.mjs', says, t0 + 16);
    assert.equal((await run()).file, dist);
    // An edit in @trellis/raft's sources (bundled too) makes the bundle stale.
    write('packages/raft/src/node.ts', '', t0 + 20);
    r = await run();
    assert.equal(r.file, path.join(pkg, 'src', 'cli', 'main.ts'));
    write('packages/agent/dist/trellis.mjs', says, t0 + 30);
    assert.equal((await run()).file, dist);
    write('packages/agent/src/agent.ts', '', t0 + 40);
    assert.equal((await run()).file, path.join(pkg, 'src', 'cli', 'main.ts'));
  });

  test('no Node 24 to be found: exit 1 and what to do', async () => {
    // A copy of the launcher outside any checkout: no node_modules/node above it.
    const copy = path.join(fs.mkdtempSync(path.join(tmp, 'bare-')), 'trellis');
    fs.copyFileSync(fs.realpathSync(launcher), copy);
    fs.chmodSync(copy, 0o755);
    const r = spawnSync('/usr/bin/env', ['-i', `PATH=${PATH}`, copy, 'version'], { encoding: 'utf8' });
    assert.deepEqual([r.status, r.stdout], [1, '']);
    assert.match(r.stderr, /^trellis: needs Node\.js 24 or newer \(this is (v\d+\.\d+\.\d+|no node on PATH)\)\. Run 'npm install' in the Trellis checkout/);
  });
});
