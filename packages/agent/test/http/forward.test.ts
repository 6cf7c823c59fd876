// The server half of a client agent's forwarded request (http/forward.ts): a request runs through
// the server's own HTTP API exactly as if it had arrived there, and a caller that gives up ends it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { injectForwarded } from '../../src/http/forward.ts';
import { harness } from './helpers.ts';

const h = harness();
after(() => h.close());

test('a forwarded write and read answer as the server itself would, headers and errors included', async () => {
  const ac = new AbortController();
  const put = await injectForwarded(h.server.app, { method: 'PUT', url: '/v1/kv/fwd/a?flags=7', headers: {}, body: Buffer.from('v1') }, ac.signal);
  assert.equal(put.status, 200);
  assert.equal(put.body.toString(), 'true');
  const get = await injectForwarded(h.server.app, { method: 'GET', url: '/v1/kv/fwd/a', headers: {}, body: Buffer.alloc(0) }, ac.signal);
  assert.equal(get.status, 200);
  assert.ok(Number(get.headers['x-consul-index']) > 0);
  assert.equal(get.headers['content-length'], undefined, 'hop-by-hop headers are not copied');
  const [row] = JSON.parse(get.body.toString()) as Array<{ Flags: number; Value: string }>;
  assert.equal(row!.Flags, 7);
  assert.equal(Buffer.from(row!.Value, 'base64').toString(), 'v1');
  const bad = await injectForwarded(h.server.app, { method: 'PUT', url: '/v1/kv/fwd/a?cas=x', headers: {}, body: Buffer.from('v') }, ac.signal);
  assert.equal(bad.status, 400);
  assert.match(bad.body.toString(), /cas/);
});

test('when the caller gives up, a forwarded blocking query stops waiting on the server', async () => {
  const ac = new AbortController();
  const first = await injectForwarded(h.server.app, { method: 'GET', url: '/v1/kv/fwd/a', headers: {}, body: Buffer.alloc(0) }, ac.signal);
  const index = first.headers['x-consul-index'];
  const before = h.store.watchListenerCount();
  const pending = injectForwarded(h.server.app, { method: 'GET', url: `/v1/kv/fwd/a?index=${index}&wait=30s`, headers: {}, body: Buffer.alloc(0) }, ac.signal)
    .then(() => 'answered', () => 'aborted');
  for (let i = 0; i < 1000 && h.store.watchListenerCount() === before; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(h.store.watchListenerCount() > before, 'the blocking query is waiting');
  ac.abort();
  assert.equal(await pending, 'aborted');
  for (let i = 0; i < 1000 && h.store.watchListenerCount() !== before; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(h.store.watchListenerCount(), before, 'no watcher left behind');
});
