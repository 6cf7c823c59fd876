// The `trellis` command as users run it: a real process started through the launcher
// (node_modules/.bin/trellis) from a shell whose PATH has only the system Node (20): the launcher
// must exec the CLI under the pinned Node 24.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startFakeConsul, type FakeConsul } from './fakeConsul.ts';

const root = path.resolve(import.meta.dirname, '../../../..');
const launcher = path.join(root, 'node_modules', '.bin', 'trellis');
const agentModule = path.join(root, 'packages', 'agent', 'src', 'agent.ts');

interface ProcResult { code: number | null; stdout: string; stderr: string }

/** Runs the launcher under `env -i PATH=/usr/bin:/bin` plus the given variables. */
function trellis(args: string[], env: Record<string, string> = {}): Promise<ProcResult> {
  const vars = Object.entries({ PATH: '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/env', ['-i', ...vars, launcher, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => { stdout += b; });
    child.stderr.on('data', (b) => { stderr += b; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`trellis ${args.join(' ')} did not exit; stderr: ${stderr}`)); }, 20_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

let fake: FakeConsul;
before(async () => { fake = await startFakeConsul(); });
after(async () => { await fake.close(); });

describe('the trellis command as a process', () => {
  test('the system node on that PATH really is older than 24 (so the re-exec path is tested)', () => {
    const v = spawnSync('/usr/bin/env', ['-i', 'PATH=/usr/bin:/bin', 'node', '--version'], { encoding: 'utf8' });
    if (v.status !== 0) return; // no system node at all: the launcher's shebang would fail first
    assert.ok(Number(v.stdout.trim().replace(/^v/, '').split('.')[0]) < 24, v.stdout);
  });

  test('version, through the launcher exec-ing Node 24', async () => {
    const r = await trellis(['version']);
    assert.deepEqual([r.code, r.stderr], [0, '']);
    assert.equal(r.stdout, 'Trellis v0.1.0\nProtocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)\n');
  });

  test('an unknown agent flag: exit 1, Go\'s message, then usage', async () => {
    const r = await trellis(['agent', '-xyz']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^flag provided but not defined: -xyz\nUsage: trellis agent \[options\]\n/);
    assert.equal(r.stdout, '');
  });

  test('agent without -data-dir or -dev: exit 1 with what to do', async () => {
    const r = await trellis(['agent']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^==> data_dir cannot be empty: give -data-dir <path> \(state is kept there\) or run with -dev to keep state in memory\n$/);
  });

  test('kv put and get against an agent address from CONSUL_HTTP_ADDR, exiting promptly', async () => {
    const started = Date.now();
    const put = await trellis(['kv', 'put', 'proc/key', 'from a process'], { CONSUL_HTTP_ADDR: fake.addr });
    assert.deepEqual([put.code, put.stdout], [0, 'Success! Data written to: proc/key\n']);
    const get = await trellis(['kv', 'get', 'proc/key'], { CONSUL_HTTP_ADDR: `http://${fake.addr}` });
    assert.deepEqual([get.code, get.stdout], [0, 'from a process\n']);
    const missing = await trellis(['kv', 'get', 'proc/none'], { CONSUL_HTTP_ADDR: fake.addr });
    assert.deepEqual([missing.code, missing.stderr], [1, 'Error! No key exists at: proc/none\n']);
    assert.ok(Date.now() - started < 15_000);
  });

  test('agent -dev serves the CLI, runs until SIGTERM and removes its pid file', { skip: !fs.existsSync(agentModule) && 'src/agent.ts does not exist yet' }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-proc-'));
    const pidFile = path.join(dir, 'agent.pid');
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const child = spawn('/usr/bin/env', ['-i', 'PATH=/usr/bin:/bin', launcher, 'agent', '-dev', `-pid-file=${pidFile}`,
      `-http-port=${ports[0]}`, `-dns-port=${ports[1]}`, `-server-port=${ports[2]}`, `-serf-lan-port=${ports[3]}`, `-serf-wan-port=${ports[4]}`, '-grpc-port=-1'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      for (let i = 0; i < 300 && !out.includes('==> Trellis agent running!'); i++) {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(out, /==> Trellis agent running!/);
      assert.ok(fs.existsSync(pidFile), 'pid file written');
      // The pid is the Node 24 process the launcher exec'd, which must be alive.
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      assert.ok(Number.isInteger(pid) && pid > 0);
      assert.doesNotThrow(() => process.kill(pid, 0), 'the pid file names a live process');

      // The CLI against the real agent, each command its own process.
      const env = { CONSUL_HTTP_ADDR: `127.0.0.1:${ports[0]}` };
      const put = await trellis(['kv', 'put', 'e2e/greeting', 'hello'], env);
      assert.deepEqual([put.code, put.stdout, put.stderr], [0, 'Success! Data written to: e2e/greeting\n', '']);
      const get = await trellis(['kv', 'get', 'e2e/greeting'], env);
      assert.deepEqual([get.code, get.stdout], [0, 'hello\n']);
      const missing = await trellis(['kv', 'get', 'e2e/none'], env);
      assert.deepEqual([missing.code, missing.stderr], [1, 'Error! No key exists at: e2e/none\n']);
      const members = await trellis(['members'], env);
      assert.equal(members.code, 0, members.stderr);
      assert.match(members.stdout, /^Node +Address +Status +Type +Build +Protocol +DC +Partition +Segment\n\S+ +127\.0\.0\.1:\d+ +alive +server +/);
      child.kill('SIGTERM');
      assert.equal(await closed, 0, out);
      assert.equal(fs.existsSync(pidFile), false, 'pid file removed');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
