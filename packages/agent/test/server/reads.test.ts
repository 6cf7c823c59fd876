// Read barriers on a follower (server/reads.ts): reads share a request to the leader only when they
// arrived before it was sent; each waits for its index to be applied.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadBarrier } from '../../src/server/reads.ts';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

describe('ReadBarrier', () => {
  test('reads that arrive during a request to the leader wait for the next one', async () => {
    const fetches: Array<{ consistent: boolean; d: ReturnType<typeof deferred<number>> }> = [];
    const applied: number[] = [];
    const rb = new ReadBarrier({
      fetchIndex: (consistent) => { const d = deferred<number>(); fetches.push({ consistent, d }); return d.promise; },
      waitApplied: async (index) => { applied.push(index); },
    });
    const r1 = rb.wait(true);
    const r2 = rb.wait(true);
    await Promise.resolve();
    assert.equal(fetches.length, 1, 'two reads queued before the first request share it');
    const r3 = rb.wait(true); // arrives while the first request is in flight
    fetches[0]!.d.resolve(10);
    await Promise.all([r1, r2]);
    await new Promise((r) => setImmediate(r));
    assert.equal(fetches.length, 2, 'the later read gets its own request');
    fetches[1]!.d.resolve(12);
    await r3;
    assert.deepEqual(applied, [10, 10, 12]);
  });

  test('default and consistent reads use separate requests', async () => {
    const modes: boolean[] = [];
    const rb = new ReadBarrier({ fetchIndex: async (c) => { modes.push(c); return 1; }, waitApplied: async () => {} });
    await Promise.all([rb.wait(true), rb.wait(false)]);
    assert.deepEqual(modes.sort(), [false, true]);
  });

  test('a failed request fails every read waiting for it; the next read tries again', async () => {
    let n = 0;
    const rb = new ReadBarrier({
      fetchIndex: async () => { if (n++ === 0) throw Object.assign(new Error('No cluster leader'), { code: 'ERR_NO_LEADER' }); return 5; },
      waitApplied: async () => {},
    });
    const results = await Promise.allSettled([rb.wait(false), rb.wait(false)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    await rb.wait(false);
  });

  test('an aborted read leaves at once; the request is cancelled only when no read waits for it', async () => {
    let signalSeen: AbortSignal | undefined;
    const d = deferred<number>();
    const rb = new ReadBarrier({ fetchIndex: (_c, s) => { signalSeen = s; return d.promise; }, waitApplied: async () => {} });
    const a = new AbortController();
    const b = new AbortController();
    const pa = rb.wait(true, a.signal);
    const pb = rb.wait(true, b.signal);
    await Promise.resolve();
    a.abort();
    await assert.rejects(pa, 'the aborted read leaves before the request ends');
    assert.equal(signalSeen?.aborted, false, 'still wanted by the other read');
    b.abort();
    assert.equal(signalSeen?.aborted, true);
    await assert.rejects(pb);
    d.reject(new Error('cancelled'));
  });
});
