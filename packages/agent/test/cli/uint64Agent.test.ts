// `trellis lock`, `trellis lock -n` and 64-bit KV flags against a real `trellis agent -dev` process
// (not the fake agent): the recipes mark their keys with flags above 2^53, so every layer between
// the CLI and the state store must keep all 64 bits for these to work at all.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';

const root = path.resolve(import.meta.dirname, '../../../..');
const launcher = path.join(root, 'node_modules', '.bin', 'trellis');

const LOCK = '3304740253564472344'; // 0x2ddccbc058a50c18
const SEMAPHORE = '16210313421097356768'; // 0xe0f69a2baa414de0
const MAX = '18446744073709551615';

interface ProcResult { code: number | null; stdout: string; stderr: string }

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().on('error', reject).listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

// The child commands below rely on a POSIX shell; SHELL may name another one in a developer's env.
const env: NodeJS.ProcessEnv = { ...process.env, SHELL: '/bin/sh' };
for (const k of Object.keys(env)) if (k.startsWith('CONSUL_') || k.startsWith('TRELLIS_HTTP')) delete env[k];

let httpAddr = '';
let agent: ChildProcess | undefined;
let agentLog = '';
let tmp = '';

function trellis(args: string[], timeoutMs = 30_000): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(launcher, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => { stdout += b; });
    child.stderr.on('data', (b) => { stderr += b; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`trellis ${args.join(' ')} did not exit in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** The raw response text: JSON.parse here would round the very digits under test. */
async function get(p: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://${httpAddr}${p}`);
  return { status: res.status, text: await res.text() };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; agent log:\n${agentLog}`);
    await delay(50);
  }
}

/** A shell child that announces it runs (touches `mark`) and holds on until `release` exists (15 s at most). */
function holdUntil(mark: string, release: string, alsoWaitFor?: string): string {
  const wait = alsoWaitFor ? ` || [ ! -f ${alsoWaitFor} ]` : '';
  return `touch ${mark}; i=0; while { [ ! -f ${release} ]${wait}; } && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; [ -f ${release} ]`;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-uint64-'));
  const [httpPort, serverPort] = [await freePort(), await freePort()];
  httpAddr = `127.0.0.1:${httpPort}`;
  agent = spawn(launcher, ['agent', '-dev', '-http-port', String(httpPort), '-dns-port', '-1', '-server-port', String(serverPort), '-serf-wan-port', '-1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (b) => { agentLog += b; });
  agent.stderr!.on('data', (b) => { agentLog += b; });
  let exited = false;
  agent.on('exit', () => { exited = true; });
  await until(async () => {
    if (exited) throw new Error(`the agent exited during start:\n${agentLog}`);
    try {
      return /^"[^"]+"$/.test((await get('/v1/status/leader')).text.trim());
    } catch {
      return false; // not listening yet
    }
  }, 'the agent to elect itself', 30_000);
});

after(async () => {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    const gone = new Promise((resolve) => agent!.once('exit', resolve));
    agent.kill('SIGTERM');
    const killed = await Promise.race([gone.then(() => true), delay(10_000).then(() => false)]);
    if (!killed) agent.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('against a real trellis agent -dev', () => {
  test('trellis lock <prefix> -- true: acquires, runs, releases, cleans up, exits 0', async () => {
    const r = await trellis(['lock', '-http-addr', httpAddr, 'locks/x', '--', 'true']);
    assert.deepEqual([r.code, r.stderr], [0, ''], agentLog);
    assert.equal((await get('/v1/kv/locks/x/.lock')).status, 404, 'the lock key is destroyed after use');
    assert.equal((await get('/v1/session/list')).text, '[]');
  });

  test('while held, the lock key carries the exact lock marker (raw JSON and kv get -detailed)', async () => {
    const [mark, release] = [path.join(tmp, 'held'), path.join(tmp, 'release')];
    const run = trellis(['lock', '-http-addr', httpAddr, 'locks/y', holdUntil(mark, release)]);
    try {
      await until(() => fs.existsSync(mark), 'the child to run under the lock');
      const raw = await get('/v1/kv/locks/y/.lock');
      assert.match(raw.text, new RegExp(`^\\[\\{"LockIndex":1,"Key":"locks/y/\\.lock","Flags":${LOCK},"Value":null,"Session":"[0-9a-f-]{36}",`));
      const detailed = await trellis(['kv', 'get', '-http-addr', httpAddr, '-detailed', 'locks/y/.lock']);
      assert.equal(detailed.code, 0, detailed.stderr);
      assert.match(detailed.stdout, new RegExp(`^Flags {12}${LOCK}$`, 'm'));
      // A second locker on the same prefix times out instead of acquiring.
      const second = await trellis(['lock', '-http-addr', httpAddr, '-timeout', '300ms', 'locks/y', 'true']);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /Shutdown triggered or timeout during lock acquisition/);
    } finally {
      fs.writeFileSync(release, '');
    }
    const r = await run;
    assert.deepEqual([r.code, r.stderr], [0, '']);
  });

  test('trellis lock -n 2: two holders at once, the semaphore key carries the exact marker', async () => {
    const [a, b, release] = [path.join(tmp, 'sem-a'), path.join(tmp, 'sem-b'), path.join(tmp, 'sem-release')];
    // Each child waits until the other also runs: both must hold a slot at the same time.
    const runs = [
      trellis(['lock', '-http-addr', httpAddr, '-n', '2', 'sem', '--', holdUntil(a, release, b)]),
      trellis(['lock', '-http-addr', httpAddr, '-n', '2', 'sem', '--', holdUntil(b, release, a)]),
    ];
    try {
      await until(() => fs.existsSync(a) && fs.existsSync(b), 'both holders to run');
      const raw = await get('/v1/kv/sem/.lock');
      assert.match(raw.text, new RegExp(`"Key":"sem/\\.lock","Flags":${SEMAPHORE},`));
      const value = JSON.parse(Buffer.from(JSON.parse(raw.text)[0].Value, 'base64').toString()) as { Limit: number; Holders: Record<string, boolean> };
      assert.equal(value.Limit, 2);
      assert.equal(Object.keys(value.Holders).length, 2);
    } finally {
      fs.writeFileSync(release, '');
    }
    const results = await Promise.all(runs);
    assert.deepEqual(results.map((r) => [r.code, r.stderr]), [[0, ''], [0, '']]);
    assert.equal((await get('/v1/kv/sem/?recurse')).status, 404, 'contender keys and the semaphore key are cleaned up');
  });

  test('kv put -flags 2^64-1, get -detailed, export, delete, import: exact all the way', async () => {
    const put = await trellis(['kv', 'put', '-http-addr', httpAddr, `-flags=${MAX}`, 'big/k', 'v']);
    assert.equal(put.code, 0, put.stderr);
    assert.match((await get('/v1/kv/big/k')).text, new RegExp(`"Flags":${MAX},"Value":"dg==",`));
    const detailed = await trellis(['kv', 'get', '-http-addr', httpAddr, '-detailed', 'big/k']);
    assert.match(detailed.stdout, new RegExp(`^Flags {12}${MAX}$`, 'm'));
    const exported = await trellis(['kv', 'export', '-http-addr', httpAddr, 'big/']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(exported.stdout, `[\n\t{\n\t\t"key": "big/k",\n\t\t"flags": ${MAX},\n\t\t"value": "dg=="\n\t}\n]\n`);
    const file = path.join(tmp, 'export.json');
    fs.writeFileSync(file, exported.stdout);
    assert.equal((await trellis(['kv', 'delete', '-http-addr', httpAddr, '-recurse', 'big/'])).code, 0);
    assert.equal((await get('/v1/kv/big/k')).status, 404);
    const imported = await trellis(['kv', 'import', '-http-addr', httpAddr, `@${file}`]);
    assert.deepEqual([imported.code, imported.stdout], [0, 'Imported: big/k\n'], imported.stderr);
    assert.match((await get('/v1/kv/big/k')).text, new RegExp(`"Flags":${MAX},"Value":"dg==",`));
  });
});
