// The common machinery: which kinds run, what is refused, the StatusHandler's thresholds, the
// first-run stagger, the minimum interval and stop().
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { isActiveCheck, startCheckRunner, StatusHandler, truncateOutput, OutputCapture } from '../../src/checks/index.ts';
import type { CheckStatus } from '../../src/state/types.ts';
import { context, MS, nthReport, silentLogger, sleep, waitFor } from './helpers.ts';

test('isActiveCheck: HTTP, TCP, UDP, gRPC, script and alias; not TTL or unsupported kinds', () => {
  for (const ct of [{ HTTP: 'http://x' }, { TCP: 'x:1' }, { UDP: 'x:1' }, { GRPC: 'x:1' }, { ScriptArgs: ['true'] }, { AliasService: 'web' }, { AliasNode: 'n' }]) {
    assert.equal(isActiveCheck(ct), true, JSON.stringify(ct));
  }
  for (const ct of [{ TTLNs: 1e9 }, { H2PING: 'x:1' }, { DockerContainerID: 'c', ScriptArgs: ['true'] }, { OSService: 'sshd' }, {}]) {
    assert.equal(isActiveCheck(ct), false, JSON.stringify(ct));
  }
});

test('startCheckRunner refuses what it cannot run, naming the check', () => {
  const ctx = context({ checkId: 'web-health' });
  assert.throws(() => startCheckRunner({ TTLNs: 10e9 }, ctx), /^Error: check "web-health" is a TTL check/);
  assert.throws(() => startCheckRunner({}, ctx), /check "web-health" has nothing to run/);
  assert.throws(() => startCheckRunner({ H2PING: 'x:1', IntervalNs: 1e9 }, ctx), /check "web-health": h2ping checks are not supported/);
  assert.throws(() => startCheckRunner({ HTTP: 'http://x' }, ctx), /check "web-health": Interval must be > 0/);
  assert.deepEqual(ctx.reports, []);
});

test('output limits match local.ts: the first N bytes, then the count', () => {
  assert.equal(truncateOutput('hello', 5), 'hello');
  assert.equal(truncateOutput('hello!', 5), 'hello ... (captured 5 of 6 bytes)');
  const cap = new OutputCapture(4);
  cap.write(Buffer.from('ab'));
  cap.write(Buffer.from('cdef'));
  cap.write(Buffer.from('gh'));
  assert.equal(cap.text(), truncateOutput('abcdefgh', 4));
  assert.equal(cap.total, 8);
});

describe('StatusHandler', () => {
  function handler(opts: { successBeforePassing?: number; failuresBeforeWarning?: number; failuresBeforeCritical?: number }) {
    const out: string[] = [];
    const h = new StatusHandler({ checkId: 'c', logger: silentLogger, report: (s, o) => out.push(`${s}:${o}`), ...opts });
    return { run: (s: CheckStatus, o: string = s) => h.update(s, o), out };
  }

  test('without thresholds every result is reported', () => {
    const h = handler({});
    h.run('passing'); h.run('critical'); h.run('warning');
    assert.deepEqual(h.out, ['passing:passing', 'critical:critical', 'warning:warning']);
  });

  test('SuccessBeforePassing: the first result is reported, later passes need N in a row', () => {
    const h = handler({ successBeforePassing: 2 });
    h.run('passing', 'p1');
    h.run('critical', 'c1');
    h.run('passing', 'p2');
    assert.deepEqual(h.out, ['passing:p1', 'critical:c1']);
    h.run('passing', 'p3');
    assert.deepEqual(h.out, ['passing:p1', 'critical:c1', 'passing:p3']);
    // A warning run counts as a success too.
    h.run('critical', 'c2'); h.run('warning', 'w1'); h.run('warning', 'w2');
    assert.deepEqual(h.out.slice(3), ['critical:c2', 'warning:w2']);
  });

  test('FailuresBeforeCritical: N failures in a row, reset by a success; FailuresBeforeWarning defaults to it', () => {
    const h = handler({ failuresBeforeCritical: 3 });
    h.run('critical', 'c1'); // the first result is reported as it is
    h.run('passing', 'p1');
    h.run('critical', 'c2'); h.run('critical', 'c3');
    h.run('passing', 'p2');
    h.run('critical', 'c4'); h.run('critical', 'c5');
    assert.deepEqual(h.out, ['critical:c1', 'passing:p1', 'passing:p2']);
    h.run('critical', 'c6');
    assert.deepEqual(h.out.slice(3), ['critical:c6']);
  });

  test('FailuresBeforeWarning below FailuresBeforeCritical reports warning first, with the failure output', () => {
    const h = handler({ failuresBeforeWarning: 1, failuresBeforeCritical: 3 });
    h.run('passing', 'p1');
    h.run('critical', 'c1'); h.run('critical', 'c2'); h.run('critical', 'c3');
    assert.deepEqual(h.out, ['passing:p1', 'warning:c1', 'warning:c2', 'critical:c3']);
  });
});

describe('interval runs', () => {
  let server: net.Server;
  let addr: string;
  const accepted: number[] = [];
  let web: http.Server;
  let webUrl: string;
  let webStatus = 200;
  const webHits: number[] = [];

  before(async () => {
    server = net.createServer((s) => {
      accepted.push(Date.now());
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    web = http.createServer((_req, res) => {
      webHits.push(webStatus);
      res.writeHead(webStatus).end(String(webStatus));
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}/`;
  });

  after(() => {
    server.close();
    web.closeAllConnections();
    web.close();
  });

  test('FailuresBeforeCritical over real runs: critical only at the Nth failing run in a row', async () => {
    webStatus = 200;
    webHits.length = 0;
    const ctx = context();
    // How many failing runs the server had answered when each report came.
    const failedBefore: number[] = [];
    const record = ctx.report;
    ctx.report = (status, output) => {
      failedBefore.push(webHits.filter((s) => s === 503).length);
      record(status, output);
    };
    const runner = startCheckRunner({ HTTP: webUrl, IntervalNs: 30 * MS, FailuresBeforeCritical: 3 }, ctx);
    await nthReport(ctx, 0);
    webStatus = 503;
    await waitFor('a critical report', () => ctx.reports.some((r) => r.status === 'critical'));
    runner.stop();
    const afterFailing = ctx.reports.filter((_r, i) => failedBefore[i]! > 0);
    assert.deepEqual(afterFailing.map((r) => r.status), ['critical']);
    assert.equal(failedBefore[ctx.reports.indexOf(afterFailing[0]!)], 3);
    assert.equal(afterFailing[0]!.output, `HTTP GET ${webUrl}: 503 Service Unavailable Output: 503`);
  });

  test('the first run waits a random stagger within the interval', async () => {
    const started = Date.now();
    const before = accepted.length;
    const ctx = context({ random: () => 0.5 });
    const runner = startCheckRunner({ TCP: addr, IntervalNs: 300 * MS }, ctx);
    await waitFor('the first run', () => accepted.length > before);
    runner.stop();
    assert.ok(accepted[before]! - started >= 140, `first run after ${accepted[before]! - started} ms`);
  });

  test('an interval below the minimum is raised to it', async () => {
    const ctx = context({ minIntervalMs: 150 });
    const runner = startCheckRunner({ TCP: addr, IntervalNs: 1 * MS }, ctx);
    await nthReport(ctx, 1);
    runner.stop();
    assert.ok(ctx.reports[1]!.at - ctx.reports[0]!.at >= 140, `gap ${ctx.reports[1]!.at - ctx.reports[0]!.at} ms`);
  });

  test('a report callback that throws does not stop the check', async () => {
    let calls = 0;
    const ctx = context({ report: () => { calls++; throw new Error('store closed'); } });
    const runner = startCheckRunner({ TCP: addr, IntervalNs: 20 * MS }, ctx);
    await waitFor('three reports', () => calls >= 3);
    runner.stop();
  });

  test('stop() between runs clears the timer; nothing is reported after it', async () => {
    const ctx = context();
    const runner = startCheckRunner({ TCP: addr, IntervalNs: 50 * MS }, ctx);
    await nthReport(ctx, 0);
    assert.equal(ctx.timers.pending.size, 1, 'the next run is scheduled');
    runner.stop();
    runner.stop();
    assert.equal(ctx.timers.pending.size, 0);
    // Proves a negative (no run after stop): ten intervals pass, and no second report comes.
    await sleep(500);
    assert.equal(ctx.reports.length, 1);
  });
});
