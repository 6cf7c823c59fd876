// Alias checks against a fake AliasSource.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { aliasResult, startCheckRunner, type AliasCheckState, type AliasSource, type AliasTarget } from '../../src/checks/index.ts';
import { context, nthReport, sleep, waitFor } from './helpers.ts';

/** A mutable target; `notify()` tells subscribers, `target()` calls are counted. */
class FakeSource implements AliasSource {
  state: AliasTarget = { found: true, checks: [] };
  error: Error | undefined;
  reads = 0;
  readonly asked: [string | undefined, string | undefined][] = [];
  readonly subscribers = new Set<() => void>();

  target(node: string | undefined, serviceId: string | undefined): AliasTarget {
    this.reads++;
    this.asked.push([node, serviceId]);
    if (this.error) throw this.error;
    return this.state;
  }

  subscribe(fn: () => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  set(state: AliasTarget): void {
    this.state = state;
    for (const fn of this.subscribers) fn();
  }
}

const check = (Name: string, Status: AliasCheckState['Status'], Output = ''): AliasCheckState => ({ Name, Status, Output });

test('aliasResult: the first critical wins, else the last warning, else passing', () => {
  assert.deepEqual(aliasResult({ found: true, checks: [] }, undefined, 'web'), { status: 'passing', output: 'No checks found.' });
  assert.deepEqual(aliasResult({ found: true, checks: [check('a', 'passing')] }, undefined, 'web'), { status: 'passing', output: 'All checks passing.' });
  assert.deepEqual(aliasResult({
    found: true, checks: [check('w1', 'warning', 'slow'), check('c1', 'critical', 'down'), check('c2', 'critical', 'also down'), check('w2', 'warning')],
  }, undefined, 'web'), { status: 'critical', output: 'Aliased check "c1" failing: down' });
  assert.deepEqual(aliasResult({ found: true, checks: [check('w1', 'warning', 'a'), check('p', 'passing'), check('w2', 'warning', 'b')] }, undefined, 'web'),
    { status: 'warning', output: 'Aliased check "w2" failing: b' });
  assert.deepEqual(aliasResult({ found: false, checks: [] }, 'n2', 'web'), { status: 'critical', output: 'Service web could not be found on node n2' });
});

describe('alias runner', () => {
  test('mirrors the target at once and on every change; stop() unsubscribes and clears its timers', async () => {
    const src = new FakeSource();
    src.state = { found: true, checks: [check('db', 'passing')] };
    const ctx = context({ alias: src });
    const runner = startCheckRunner({ AliasService: 'web', AliasNode: 'n2' }, ctx);
    const first = await nthReport(ctx, 0);
    assert.deepEqual([first.status, first.output], ['passing', 'All checks passing.']);
    assert.deepEqual(src.asked[0], ['n2', 'web']);

    src.set({ found: true, checks: [check('db', 'warning', 'replication lag 5s')] });
    assert.equal((await nthReport(ctx, 1)).output, 'Aliased check "db" failing: replication lag 5s');
    assert.equal(ctx.reports[1]!.status, 'warning');
    src.set({ found: true, checks: [] });
    assert.deepEqual([(await nthReport(ctx, 2)).status, ctx.reports[2]!.output], ['passing', 'No checks found.']);
    src.set({ found: false, checks: [] });
    assert.deepEqual([(await nthReport(ctx, 3)).status, ctx.reports[3]!.output], ['critical', 'Service web could not be found on node n2']);

    runner.stop();
    assert.equal(src.subscribers.size, 0);
    assert.equal(ctx.timers.pending.size, 0);
  });

  test('notifications without a change report nothing new', async () => {
    const src = new FakeSource();
    const ctx = context({ alias: src });
    const runner = startCheckRunner({ AliasService: 'web' }, ctx);
    await nthReport(ctx, 0);
    for (let i = 0; i < 3; i++) src.set(src.state);
    await waitFor('the notified readings', () => src.reads >= 2);
    // Proves a negative (an unchanged reading reports nothing): a report would follow a reading
    // within a tick, so a generous pause with none is the evidence.
    await sleep(300);
    runner.stop();
    assert.equal(ctx.reports.length, 1);
  });

  test('re-reads every refresh period even without notifications, and reports again', async () => {
    const src = new FakeSource();
    const ctx = context({ alias: src, aliasRefreshMs: 40 });
    const runner = startCheckRunner({ AliasService: 'web' }, ctx);
    await nthReport(ctx, 0);
    src.state = { found: true, checks: [check('db', 'critical', 'gone')] }; // no notification
    const r = await nthReport(ctx, 1);
    assert.deepEqual([r.status, r.output], ['critical', 'Aliased check "db" failing: gone']);
    await nthReport(ctx, 2); // the same value again, from the next refresh
    runner.stop();
    assert.equal(ctx.timers.pending.size, 0);
  });

  test('a failing source is critical', async () => {
    const src = new FakeSource();
    src.error = new Error('no leader');
    const ctx = context({ alias: src });
    const runner = startCheckRunner({ AliasNode: 'n2' }, ctx);
    const r = await nthReport(ctx, 0);
    runner.stop();
    assert.deepEqual([r.status, r.output], ['critical', 'Failure checking aliased node or service: no leader']);
    assert.deepEqual(src.asked[0], ['n2', undefined]);
  });

  test('an alias check needs a source', () => {
    assert.throws(() => startCheckRunner({ AliasService: 'web' }, context({ checkId: 'web-alias' })),
      /check "web-alias": alias checks need an alias source/);
  });
});
