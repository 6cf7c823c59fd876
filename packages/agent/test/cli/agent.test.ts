// `trellis agent` with a stand-in for ../agent.ts: the config it is given, the pid file's life,
// and what signals do.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { captureIO } from './harness.ts';
import { runCli } from '../../src/cli/run.ts';
import type { AgentModule, AgentHandle } from '../../src/cli/command.ts';
import type { RuntimeConfig } from '../../src/config/runtime.ts';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-agent-cli-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Fake {
  module: AgentModule;
  started: RuntimeConfig[];
  stops: number;
  /** The `leave` option of each stop. */
  leaves: Array<boolean | undefined>;
  reloads: RuntimeConfig[];
  running: Promise<void>;
}

function fakeAgent(opts: { startError?: Error; stopError?: Error; stopDelayMs?: number; reload?: boolean } = {}): Fake {
  let markRunning!: () => void;
  const f: Fake = {
    started: [], stops: 0, leaves: [], reloads: [],
    running: new Promise<void>((r) => { markRunning = r; }),
    module: {
      async startAgent(config) {
        f.started.push(config);
        if (opts.startError) throw opts.startError;
        markRunning();
        const handle: AgentHandle = {
          async stop(o) {
            f.stops++;
            f.leaves.push(o?.leave);
            // Unref: a stop that never finishes must not hold the test process open.
            if (opts.stopDelayMs) await delay(opts.stopDelayMs, undefined, { ref: false });
            if (opts.stopError) throw opts.stopError;
          },
        };
        if (opts.reload) handle.reload = async (c) => { f.reloads.push(c); };
        return handle;
      },
    },
  };
  return f;
}

/** Polls until `cond` holds (every 5 ms, up to 5 s), failing with `what`. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await delay(5);
  assert.ok(cond(), `timed out waiting for ${what}`);
}

/** The CLI has the agent's handle and waits for signals once it has printed this line. */
const agentRunning = (cap: { stdout(): string }) => until('==> Trellis agent running!', () => cap.stdout().includes('==> Trellis agent running!\n'));

function startCli(args: string[], fake: Fake) {
  const cap = captureIO();
  let loads = 0;
  const done = runCli(['agent', ...args], cap.io, { loadAgent: async () => { loads++; return fake.module; } });
  return { cap, done, loads: () => loads };
}

describe('trellis agent', () => {
  test('which signals leave the cluster: Consul\'s leave_on_terminate and skip_leave_on_interrupt defaults', async () => {
    const cases: Array<{ args: string[]; sig: 'SIGINT' | 'SIGTERM'; leave: boolean }> = [
      { args: ['-server', '-bootstrap'], sig: 'SIGTERM', leave: false },
      { args: ['-server', '-bootstrap'], sig: 'SIGINT', leave: false },
      { args: [], sig: 'SIGTERM', leave: true },
      { args: [], sig: 'SIGINT', leave: true },
    ];
    for (const c of cases) {
      const fake = fakeAgent();
      // -bind: without it the agent picks the machine's one private IPv4 address, and refuses to
      // start when there are several (Consul's rule), as while a network-namespace test runs.
      const { cap, done } = startCli([...c.args, `-data-dir=${tmp}/d`, '-http-port=18501', '-bind=127.0.0.1'], fake);
      await agentRunning(cap);
      cap.signals.emit(c.sig);
      assert.equal(await done, 0);
      assert.deepEqual(fake.leaves, [c.leave], `${c.args.join(' ') || 'client'} on ${c.sig}`);
    }
  });

  test('starts with the built config, keeps the pid file while running, stops on SIGTERM', async () => {
    const pidFile = path.join(tmp, 'agent.pid');
    const fake = fakeAgent();
    const { cap, done } = startCli(['-dev', '-node=n1', '-http-port=18500', `-pid-file=${pidFile}`], fake);
    await fake.running;
    assert.equal(fake.started[0]!.nodeName, 'n1');
    assert.equal(fake.started[0]!.ports.http, 18500);
    assert.equal(fake.started[0]!.devMode, true);
    assert.equal(fs.readFileSync(pidFile, 'utf8'), String(process.pid));
    await agentRunning(cap);
    cap.signals.emit('SIGTERM');
    assert.equal(await done, 0);
    assert.equal(fake.stops, 1);
    assert.equal(fs.existsSync(pidFile), false, 'the pid file is removed on exit');
    const out = cap.stdout();
    assert.match(out, /^==> Starting Trellis agent\.\.\.\n/);
    assert.match(out, /^ +Node name: 'n1'$/m);
    assert.match(out, /^ +Client Addr: \[127\.0\.0\.1\] \(HTTP: 18500, HTTPS: -1, gRPC: 8502, DNS: 8600\)$/m);
    assert.match(out, /==> Trellis agent running!\n/);
    assert.match(out, /==> Caught signal: terminated\n==> Gracefully shutting down agent\.\.\.\n==> Agent stopped\n$/);
  });

  test('a configuration error is one "==> " line, exit 1, and the agent is never loaded', async () => {
    const fake = fakeAgent();
    const { cap, done, loads } = startCli(['-server'], fake);
    assert.equal(await done, 1);
    assert.match(cap.stderr(), /^==> data_dir cannot be empty: give -data-dir <path>/);
    assert.equal(loads(), 0);
  });

  test('a malformed -hcl fragment is one "==> " line naming it, exit 1', async () => {
    const { cap, done } = startCli(['-dev', '-hcl', 'datacenter = '], fakeAgent());
    assert.equal(await done, 1);
    assert.match(cap.stderr(), /^==> config: flags-0\.hcl: invalid HCL at line 1, column 14: expected a value, got end of file/);
  });

  test('an unknown flag: Go\'s message and the agent usage, exit 1', async () => {
    const { cap, done } = startCli(['-dev', '-xyz'], fakeAgent());
    assert.equal(await done, 1);
    assert.match(cap.stderr(), /^flag provided but not defined: -xyz\nUsage: trellis agent \[options\]/);
  });

  test('a start failure is reported, exit 1, pid file removed', async () => {
    const pidFile = path.join(tmp, 'fail.pid');
    const { cap, done } = startCli(['-dev', `-pid-file=${pidFile}`], fakeAgent({ startError: new Error('listen EADDRINUSE: address already in use 127.0.0.1:8500') }));
    assert.equal(await done, 1);
    assert.match(cap.stderr(), /^==> Error starting agent: listen EADDRINUSE: address already in use 127\.0\.0\.1:8500$/m);
    assert.equal(fs.existsSync(pidFile), false);
  });

  test('a pid file that cannot be written stops the start', async () => {
    const fake = fakeAgent();
    const { cap, done, loads } = startCli(['-dev', `-pid-file=${path.join(tmp, 'no', 'such', 'dir', 'x.pid')}`], fake);
    assert.equal(await done, 1);
    assert.match(cap.stderr(), /^==> Could not write pid file .*x\.pid: ENOENT/m);
    assert.equal(loads(), 0);
  });

  test('a failing stop exits 1', async () => {
    const fake = fakeAgent({ stopError: new Error('raft: shutdown timed out') });
    const { cap, done } = startCli(['-dev'], fake);
    await agentRunning(cap);
    cap.signals.emit('SIGINT');
    assert.equal(await done, 1);
    assert.match(cap.stdout(), /==> Caught signal: interrupt\n/);
    assert.match(cap.stderr(), /==> Error during shutdown: raft: shutdown timed out\n/);
  });

  test('a second signal during a slow stop exits at once', async () => {
    const fake = fakeAgent({ stopDelayMs: 10_000 });
    const { cap, done } = startCli(['-dev'], fake);
    await agentRunning(cap);
    cap.signals.emit('SIGINT');
    // The same signal again at once is the launcher's forwarded copy of a terminal Ctrl-C: ignored.
    cap.signals.emit('SIGINT');
    // Not a wait for a condition: a signal counts as the user's second one only when it comes
    // later than the duplicate window (250 ms), so the pause is part of what is tested.
    await delay(300);
    assert.doesNotMatch(cap.stderr(), /second signal/);
    cap.signals.emit('SIGINT');
    const started = Date.now();
    assert.equal(await done, 1);
    assert.ok(Date.now() - started < 2000);
    assert.match(cap.stderr(), /==> Caught second signal interrupt\. Exiting\n/);
  });

  test('SIGHUP reloads the configuration from the same flags and files', async () => {
    const file = path.join(tmp, 'reload.json');
    fs.writeFileSync(file, JSON.stringify({ log_level: 'info' }));
    const fake = fakeAgent({ reload: true });
    const { cap, done } = startCli(['-dev', `-config-file=${file}`], fake);
    await agentRunning(cap);
    fs.writeFileSync(file, JSON.stringify({ log_level: 'warn' }));
    cap.signals.emit('SIGHUP');
    await until('the reload', () => fake.reloads.length > 0);
    assert.equal(fake.reloads[0]?.logLevel, 'WARN');
    fs.writeFileSync(file, '{"log_level": 5}');
    cap.signals.emit('SIGHUP');
    await until('the refused reload', () => cap.stderr().includes('==> Failed to reload configs'));
    assert.match(cap.stderr(), /==> Failed to reload configs: config: .*reload\.json: field "log_level" must be a string, got number 5/);
    assert.equal(fake.reloads.length, 1, 'a broken file is not applied');
    cap.signals.emit('SIGTERM');
    assert.equal(await done, 0);
  });
});
