// Anti-entropy's scheduler on a fake clock and fixed randomness: when full syncs run, with no timers
// and no sockets.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AntiEntropy, scaleFactor, type AntiEntropyClock } from '../../src/local/antiEntropy.ts';

/** A fake clock: timers fire in time order when advance() moves time past them. */
class FakeClock implements AntiEntropyClock {
  t = 0;
  #next = 1;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.pending.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void { this.pending.delete(h as number); }
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= until && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.pending.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
      // Let the sync's promise settle before the next timer.
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
    this.t = until;
  }
}

function setup(opts: { random?: number; nodes?: number; interval?: number } = {}) {
  const clock = new FakeClock();
  const runs: number[] = [];
  let outOfSync = false;
  let fail: Error | undefined;
  let release: (() => void) | undefined;
  let hold = false;
  const errors: unknown[] = [];
  const ae = new AntiEntropy({
    sync: async () => {
      runs.push(clock.t);
      if (hold) await new Promise<void>((r) => { release = r; });
      if (fail) throw fail;
      return 0;
    },
    outOfSync: () => outOfSync,
    clusterSize: () => opts.nodes ?? 3,
    intervalMs: opts.interval ?? 60_000,
    clock,
    random: () => opts.random ?? 0.5,
    onError: (e) => errors.push(e),
  });
  return {
    clock, runs, ae, errors,
    setOutOfSync: (v: boolean) => { outOfSync = v; },
    setFail: (e: Error | undefined) => { fail = e; },
    setHold: (v: boolean) => { hold = v; },
    release: () => release?.(),
  };
}

describe('anti-entropy scheduler', () => {
  test('Consul\'s scale factor: 1 up to 128 nodes, then log2 steps', () => {
    for (const [nodes, want] of [[1, 1], [128, 1], [129, 2], [256, 2], [257, 3], [1024, 4], [8192, 7]] as const) {
      assert.equal(scaleFactor(nodes), want, `${nodes} nodes`);
    }
  });

  test('the first sync comes after half to one interval, then every interval plus a sixteenth of stagger', async () => {
    const s = setup({ random: 0.5 });
    s.ae.start();
    // 60 s × (0.5 + 0.5/2) = 45 s
    await s.clock.advance(44_999);
    assert.deepEqual(s.runs, []);
    await s.clock.advance(1);
    assert.deepEqual(s.runs, [45_000]);
    // next: 60 s + 0.5 × 60 s / 16 = 61.875 s later
    await s.clock.advance(61_875);
    assert.deepEqual(s.runs, [45_000, 106_875]);
    s.ae.stop();
  });

  test('the interval scales with the cluster size', async () => {
    const s = setup({ random: 0, nodes: 300 });
    s.ae.start();
    await s.clock.advance(30_000);
    assert.deepEqual(s.runs, [30_000]);
    // 300 nodes: scale 3, so 180 s (random 0 adds no stagger)
    await s.clock.advance(179_999);
    assert.equal(s.runs.length, 1);
    await s.clock.advance(1);
    assert.deepEqual(s.runs, [30_000, 210_000]);
    s.ae.stop();
  });

  test('soon() brings a distant sync forward to 1-3 s, and leaves a nearer one alone', async () => {
    const s = setup({ random: 0.5 });
    s.ae.start();
    s.ae.soon();
    assert.equal(s.ae.nextAt, 2_000);
    await s.clock.advance(1_500);
    s.ae.soon(); // due in 0.5 s: unchanged
    assert.equal(s.ae.nextAt, 2_000);
    await s.clock.advance(500);
    assert.deepEqual(s.runs, [2_000]);
    s.ae.stop();
  });

  test('while a kept change is unwritten, syncs come every 5-6 s until it is written', async () => {
    const s = setup({ random: 0.5 });
    s.setOutOfSync(true);
    s.setFail(Object.assign(new Error('No known Consul servers'), { code: 'ERR_NO_SERVERS' }));
    s.ae.start();
    await s.clock.advance(45_000);
    await s.clock.advance(5_500 * 2);
    assert.deepEqual(s.runs, [45_000, 50_500, 56_000]);
    assert.equal(s.errors.length, 3);
    s.setFail(undefined);
    s.setOutOfSync(false); // the next sync writes it
    await s.clock.advance(5_500);
    assert.deepEqual(s.runs, [45_000, 50_500, 56_000, 61_500]);
    // back to the interval
    await s.clock.advance(61_874);
    assert.equal(s.runs.length, 4);
    await s.clock.advance(1);
    assert.equal(s.runs.length, 5);
    s.ae.stop();
  });

  test('a failed sync with nothing kept locally waits for the next interval', async () => {
    const s = setup({ random: 0 });
    s.setFail(new Error('No cluster leader'));
    s.ae.start();
    await s.clock.advance(30_000);
    assert.deepEqual(s.runs, [30_000]);
    assert.equal(s.ae.nextAt, 90_000);
    s.ae.stop();
  });

  test('syncs never overlap; a sync asked for while one runs follows it at once', async () => {
    const s = setup({ random: 0 });
    s.setHold(true);
    s.ae.start();
    await s.clock.advance(30_000);
    assert.deepEqual(s.runs, [30_000]);
    s.ae.soon();
    await s.clock.advance(1_000);
    assert.deepEqual(s.runs, [30_000], 'no second sync while the first runs');
    s.setHold(false);
    s.release();
    for (let i = 0; i < 10; i++) await Promise.resolve(); // the first sync ends
    await s.clock.advance(0);
    assert.deepEqual(s.runs, [30_000, 31_000], 'the one asked for runs when the first ends');
    s.ae.stop();
  });

  test('stop() cancels the timer and later soon() calls', async () => {
    const s = setup();
    s.ae.start();
    s.ae.stop();
    s.ae.soon();
    assert.equal(s.clock.pending.size, 0);
    await s.clock.advance(600_000);
    assert.deepEqual(s.runs, []);
  });
});
