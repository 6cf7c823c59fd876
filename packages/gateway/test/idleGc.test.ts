// The idle collection runs once traffic has stopped, never while it flows: for the L4 listeners,
// which touch it per new connection only, traffic on kept-alive connections is seen through the
// bytes their sockets moved (a last-resort GC in the middle of keep-alive traffic showed up as the
// L4 row's p99 in bench:proxy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdleGc } from '../src/idleGc.ts';

test('no collection while the activity figure keeps changing; one once it stops', async () => {
  let collections = 0;
  let bytes = 0;
  const gc = new IdleGc(60, () => { collections++; }, () => bytes);
  gc.touch(); // a new connection
  const flowing = setInterval(() => { bytes += 100; }, 10);
  try {
    await sleep(400);
    assert.equal(collections, 0, 'collected while bytes were still moving');
  } finally {
    clearInterval(flowing);
  }
  await sleep(300);
  assert.equal(collections, 1, 'no collection after the traffic stopped');
  await sleep(200);
  assert.equal(collections, 1, 'collected again with no traffic in between');
  gc.stop();
});

test('without an activity figure, a collection follows the last touch', async () => {
  let collections = 0;
  const gc = new IdleGc(60, () => { collections++; });
  for (let i = 0; i < 5; i++) { gc.touch(); await sleep(20); }
  assert.equal(collections, 0);
  await sleep(200);
  assert.equal(collections, 1);
  gc.stop();
});
