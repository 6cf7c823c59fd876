// Backups: `trellis snapshot save FILE` against one agent, `trellis snapshot restore FILE` into a
// fresh agent, and the fresh agent answers the same KV and catalog, also after its own restart.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets } from '../support/index.ts';

let source: AgentProcess | undefined;
let target: AgentProcess | undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-snapshot-'));
after(async () => {
  await source?.dispose();
  await target?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, source, target));

interface KvEntry { Key: string; Value: string | null; Flags: number; CreateIndex: number; ModifyIndex: number; Session?: string }

async function ok(agent: AgentProcess, method: string, p: string, body?: unknown): Promise<string> {
  const r = await agent.request(method, p, { body });
  assert.equal(r.status, 200, `${method} ${p}: ${r.status} ${r.text}`);
  return r.text;
}

/** What a restore must reproduce: every KV entry as stored, and the catalog of the external node. */
async function state(agent: AgentProcess) {
  const kv = (await agent.request('GET', '/v1/kv/?recurse')).json<KvEntry[]>()
    .filter((e) => e.Session === undefined); // sessions belong to the source's node, see below
  const node = (await agent.request('GET', '/v1/catalog/node/ext-1')).json<unknown>();
  const svc = (await agent.request('GET', '/v1/catalog/service/billing')).json<unknown>();
  const checks = (await agent.request('GET', '/v1/health/checks/billing')).json<unknown>();
  const services = (await agent.request('GET', '/v1/catalog/services')).json<Record<string, string[]>>();
  return { kv, node, svc, checks, billingTags: services.billing };
}

test('snapshot save, then restore into a fresh agent, reproduces KV and catalog', async () => {
  source = await AgentProcess.start({ name: 'snap-source' });
  for (let i = 0; i < 50; i++) await ok(source, 'PUT', `/v1/kv/app/${i}`, `value-${i}`);
  await ok(source, 'PUT', '/v1/kv/bin?flags=7', Buffer.from([0, 1, 2, 255]));
  await ok(source, 'PUT', '/v1/kv/empty', '');
  await ok(source, 'DELETE', '/v1/kv/app/13');
  await ok(source, 'PUT', '/v1/catalog/register', {
    Node: 'ext-1', Address: '10.3.3.3', NodeMeta: { rack: 'r1' },
    Service: { ID: 'billing-1', Service: 'billing', Port: 7000, Tags: ['v1'], Meta: { owner: 'fin' } },
    Checks: [{ CheckID: 'billing-http', Name: 'billing http', Status: 'passing', ServiceID: 'billing-1' }],
  });
  const before = await state(source);
  assert.equal(before.kv.length, 51);

  const file = path.join(tmp, 'backup.snap');
  const env = { CONSUL_HTTP_ADDR: source.httpAddr };
  const save = await runTrellis(['snapshot', 'save', file], { env });
  assert.equal(save.code, 0, `snapshot save: ${save.stderr}`);
  assert.match(save.stdout, /^Saved and verified snapshot to index \d+\n$/);
  assert.ok(fs.statSync(file).size > 0);
  assert.ok(!fs.existsSync(`${file}.unverified`));

  // A server agent with a data dir, so the restore must also reach its disk.
  target = await AgentProcess.start({ name: 'snap-target', mode: 'server' });
  await ok(target, 'PUT', '/v1/kv/only-on-target', 'gone after restore');
  const restore = await runTrellis(['snapshot', 'restore', file], { env: { CONSUL_HTTP_ADDR: target.httpAddr } });
  assert.equal(restore.code, 0, `snapshot restore: ${restore.stderr}`);
  assert.equal(restore.stdout, 'Restored snapshot\n');

  assert.deepEqual(await state(target), before);
  assert.equal((await target.request('GET', '/v1/kv/only-on-target')).status, 404, 'a restore replaces the state, it does not merge');
  assert.equal((await target.request('GET', '/v1/kv/bin?raw')).body.toString('hex'), '000102ff');

  // The restored state is durable: it survives a restart of the target.
  await target.stop();
  await target.restart();
  assert.deepEqual(await state(target), before);
  // And the agent keeps working above the restored indexes.
  await ok(target, 'PUT', '/v1/kv/after', 'x');
  const [e] = (await target.request('GET', '/v1/kv/after')).json<KvEntry[]>();
  assert.ok(e!.ModifyIndex > Math.max(...before.kv.map((k) => k.ModifyIndex)));
});

test('restore refuses a file that is not a snapshot and changes nothing', async () => {
  target ??= await AgentProcess.start({ name: 'snap-target', mode: 'server' });
  await ok(target, 'PUT', '/v1/kv/keep-me', 'still here');
  const before = (await target.request('GET', '/v1/kv/?recurse')).text;
  const junk = path.join(tmp, 'junk.snap');
  fs.writeFileSync(junk, 'this is not a snapshot\n'.repeat(100));
  const r = await runTrellis(['snapshot', 'restore', junk], { env: { CONSUL_HTTP_ADDR: target.httpAddr } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error restoring snapshot: /);
  assert.doesNotMatch(r.stderr, /404|405/);
  assert.equal((await target.request('GET', '/v1/kv/?recurse')).text, before);
});
