// deploy/local-cluster.sh as a user runs it: start a small datacenter (1 server, 1 client) on free
// loopback ports, see both members through the client, stop it, and find every agent gone.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, repoRoot, request, reservePort, trellisEnv } from '../support/index.ts';

const run = promisify(execFile);
const script = path.join(repoRoot, 'deploy', 'local-cluster.sh');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-local-cluster-'));
let ok = false;

after(async () => {
  await run('bash', [script, 'stop', '--dir', dir], { env: trellisEnv() }).catch(() => undefined);
  if (ok) fs.rmSync(dir, { recursive: true, force: true });
  else for (const n of ['server1', 'client1']) console.log(`---- ${n}\n${fs.readFileSync(path.join(dir, n, 'agent.log'), 'utf8').slice(-3000)}`);
});

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A base port whose block (two agents × HTTP, DNS, RPC, serf at base + 10·i + 0..3) is free. */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await freePort();
    if (base + 20 > 32_767) continue;
    let free = true;
    for (const off of [1, 2, 3, 10, 11, 12, 13]) free &&= reservePort(base + off) && await isFree(base + off);
    if (free) return base;
  }
  throw new Error('no free block of ports');
}

test('local-cluster.sh starts a datacenter, lists its agents, and stops it', { timeout: 120_000 }, async () => {
  const base = await freeBase();
  const started = await run('bash', [script, 'start', '--servers', '1', '--clients', '1', '--dir', dir, '--base-port', String(base)], { env: trellisEnv(), timeout: 90_000 });
  assert.match(started.stdout, /leader "127\.0\.0\.1:\d+"/);
  assert.match(started.stdout, /server1\s+server\s+\d+\s+127\.0\.0\.1:\d+\s+running/);
  assert.match(started.stdout, /client1\s+client\s+\d+\s+127\.0\.0\.1:\d+\s+running/);
  // The client answers for the datacenter once it has joined.
  let names: string[] = [];
  for (let i = 0; i < 100 && names.length < 2; i++) {
    const r = await request(`http://127.0.0.1:${base + 10}`, 'GET', '/v1/agent/members').catch(() => undefined);
    names = r?.status === 200 ? r.json<Array<{ Name: string; Status: number }>>().filter((m) => m.Status === 1).map((m) => m.Name).sort() : [];
    if (names.length < 2) await new Promise((res) => setTimeout(res, 200));
  }
  assert.deepEqual(names, ['client1', 'server1']);
  const again = await run('bash', [script, 'start', '--dir', dir], { env: trellisEnv() }).then(() => 'started', (e: { stderr: string }) => e.stderr);
  assert.match(again, /already holds a cluster/);

  const stopped = await run('bash', [script, 'stop', '--dir', dir], { env: trellisEnv(), timeout: 60_000 });
  assert.match(stopped.stdout, /stopped 2 agent\(s\)/);
  const status = await run('bash', [script, 'status', '--dir', dir], { env: trellisEnv() });
  assert.equal((status.stdout.match(/stopped/g) ?? []).length, 2);
  ok = true;
});
