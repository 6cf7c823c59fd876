// `trellis agent` as an operator starts and stops it: the launcher, flags, config files, the pid
// file and signals. Mistakes in flags or config files exit 1 with a message naming the flag, or the
// file and the key, before anything is started.
import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, runTrellis, closeIdleSockets, waitFor } from '../support/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-e2e-startup-'));
let agent: AgentProcess | undefined;
/** Every agent started here: each test starts its own, and all are disposed at the end. */
const started: AgentProcess[] = [];
async function startAgent(...args: Parameters<typeof AgentProcess.start>): Promise<AgentProcess> {
  agent = await AgentProcess.start(...args);
  started.push(agent);
  return agent;
}
after(async () => {
  for (const a of started) await a.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  closeIdleSockets();
});
afterEach((t) => printLogsIfFailed(t, agent));

function configFile(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('refused before start', () => {
  test('an unknown flag: exit 1, the message names the flag', async () => {
    const r = await runTrellis(['agent', '-dev', '-http-prot', '8500']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^flag provided but not defined: -http-prot\n/);
    assert.doesNotMatch(r.stdout, /agent running/i);
  });

  test('a flag without its value: exit 1, names the flag', async () => {
    const r = await runTrellis(['agent', '-dev', '-http-port']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /-http-port/);
  });

  test('a flag value of the wrong type: exit 1, names the flag and the value', async () => {
    const r = await runTrellis(['agent', '-dev', '-http-port', 'eighty']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /-http-port/);
    assert.match(r.stderr, /eighty/);
  });

  const broken: Array<{ name: string; file: string; text: string; says: RegExp }> = [
    { name: 'an unknown key', file: 'unknown.json', text: '{"datacenter": "dc1", "bogus_key": 1}', says: /unknown field "bogus_key"/ },
    { name: 'an unknown nested key', file: 'nested.json', text: '{"ports": {"htp": 8500}}', says: /ports\.htp/ },
    { name: 'invalid JSON', file: 'broken.json', text: '{"datacenter": ', says: /invalid JSON/ },
    { name: 'a wrong type', file: 'type.json', text: '{"ports": {"http": "x"}}', says: /"ports\.http" must be an integer/ },
    { name: 'an HCL syntax error', file: 'agent.hcl', text: 'datacenter = "dc1"\nports {\n  http = \n}\n', says: /invalid HCL at line 4, column 1: expected a value/ },
    { name: 'legacy (pre-1.4) ACLs turned on (not enforced: refused, never ignored)', file: 'acl.hcl', text: 'acl_datacenter = "dc1"\n', says: /acl_datacenter/ },
  ];
  for (const b of broken) {
    test(`a config file with ${b.name}: exit 1, names the file and what is wrong`, async () => {
      const file = configFile(b.file, b.text);
      const r = await runTrellis(['agent', '-dev', '-config-file', file]);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(file), `names the file ${file}: ${r.stderr}`);
      assert.match(r.stderr, b.says);
      assert.doesNotMatch(r.stdout, /agent running/i);
    });
  }

  test('a config dir with one broken file among good ones names the broken one', async () => {
    const dir = path.join(tmp, 'conf.d');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '10-good.json'), '{"datacenter": "dc1"}');
    fs.writeFileSync(path.join(dir, '20-bad.json'), '{"log_level": 3}');
    const r = await runTrellis(['agent', '-dev', '-config-dir', dir]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(path.join(dir, '20-bad.json')), r.stderr);
    assert.match(r.stderr, /log_level/);
  });

  test('a missing config file: exit 1, names it', async () => {
    const file = path.join(tmp, 'nope.json');
    const r = await runTrellis(['agent', '-dev', '-config-file', file]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(file), r.stderr);
  });

  test('without -dev or -data-dir: exit 1 with what to do', async () => {
    const r = await runTrellis(['agent', '-server']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /data_dir|-data-dir/);
  });
});

describe('running', () => {
  test('`trellis agent -dev` on custom ports answers; SIGTERM exits 0 and removes the pid file', async () => {
    // How fast it starts is a benchmark figure (bench:kv's startup row), not a test limit.
    const agent = await startAgent({ name: 'startup', args: ['-log-level', 'info'] });
    assert.equal(fs.readFileSync(agent.pidFile, 'utf8').trim(), String(agent.pid), 'the pid file holds the agent\'s own pid');
    const w = await agent.request('PUT', '/v1/kv/hello', { body: 'world' });
    assert.equal(w.text, 'true');
    // The config given by flags is what the agent reports.
    const self = (await agent.request('GET', '/v1/agent/self')).json<{ Config: { NodeName: string; Datacenter: string } }>();
    assert.deepEqual([self.Config.NodeName, self.Config.Datacenter], ['startup', 'dc1']);

    const exit = await agent.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(fs.existsSync(agent.pidFile), false, 'the pid file is removed');
    assert.match(agent.logTail(20), /Caught signal: terminated/);
    assert.match(agent.logTail(20), /Agent stopped/);
    await assert.rejects(agent.request('GET', '/v1/status/leader', { timeoutMs: 1000 }), 'the HTTP port is closed');
  });

  test('Consul\'s start-up order: the data dir and its parents are made before the pid file is written into one of them', async () => {
    // Neither <tmp>/order nor <tmp>/order/node1 exists: -pid-file names a file in the data dir's parent.
    const base = path.join(tmp, 'order', 'node1');
    const pidFile = path.join(base, 'pid');
    const agent = await startAgent({ name: 'order', mode: 'server', args: ['-data-dir', path.join(base, 'data'), '-pid-file', pidFile] });
    assert.ok(fs.statSync(path.join(base, 'data')).isDirectory(), 'the data dir was created with its parents');
    assert.equal(fs.readFileSync(pidFile, 'utf8').trim(), String(agent.pid), 'the pid file holds the agent\'s pid');
    assert.equal((await agent.request('PUT', '/v1/kv/order', { body: 'x' })).text, 'true');
    assert.deepEqual(await agent.stop(), { code: 0, signal: null });
    assert.equal(fs.existsSync(pidFile), false, 'the pid file is removed at exit');
  });

  test('SIGINT stops it gracefully too; a config file sets what flags do not', async () => {
    const file = configFile('dc.json', JSON.stringify({ datacenter: 'east', node_meta: { rack: 'r7' } }));
    const agent = await startAgent({ name: 'startup-int', args: ['-config-file', file] });
    const self = (await agent.request('GET', '/v1/agent/self')).json<{ Config: { Datacenter: string } }>();
    assert.equal(self.Config.Datacenter, 'east');
    // The leader registers its own node just after it is elected (readiness is "a leader is known").
    const node = await waitFor('the agent\'s node in the catalog', async () =>
      (await agent.request('GET', '/v1/catalog/nodes')).json<Array<{ Node: string; Meta: Record<string, string> }>>().find((n) => n.Node === 'startup-int'));
    assert.equal(node.Meta.rack, 'r7');
    agent.signal('SIGINT');
    const exit = await agent.waitExit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(fs.existsSync(agent.pidFile), false);
  });
});
