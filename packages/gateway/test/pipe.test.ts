// pipe.ts's join: bytes both ways, a half-close passed on, and TCP_NODELAY on both sockets (a proxy
// must not hold a small second write back for the peer's delayed ACK: +41 ms p50 through two
// sidecars for an app that flushes its headers before its body, docs/BENCHMARKS.md). Both ways of
// joining: handle to handle (HandleRelay, the default) and stream.pipe (the fallback).
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from '../src/pipe.ts';
import { M, Metrics } from '../src/metrics.ts';
import { pump } from './support/pump.ts';

/** A connected loopback pair: [the accepted side, the dialling side]. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const dialled = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const a = await accepted;
  server.close();
  return [a, dialled];
}

for (const handles of [true, false]) describe(handles ? 'join on the handles' : 'join with stream.pipe', () => {
  test('join sets TCP_NODELAY on both sockets and pipes both ways, half-close included', { timeout: 20_000 }, async () => {
    const [downstream, client] = await pair();
    const [app, upstream] = await pair();
    const noDelay: unknown[] = [];
    for (const s of [downstream, upstream]) {
      const orig = s.setNoDelay.bind(s);
      s.setNoDelay = (v?: boolean) => { noDelay.push(s === downstream ? `down:${v}` : `up:${v}`); return orig(v); };
    }
    const metrics = new Metrics();
    join(downstream, upstream, metrics, 'test', handles);
    assert.deepEqual(noDelay.sort(), ['down:true', 'up:true']);

    const appGot: Buffer[] = [];
    app.on('data', (b: Buffer) => appGot.push(b));
    const appEnded = new Promise<void>((r) => app.once('end', () => r()));
    client.end('request bytes');
    await appEnded; // the client's half-close reached the app
    // Which way it joined: the relay marks the handles it drives (both still open: half-closed).
    assert.equal(Boolean((downstream as unknown as { _handle: { relay?: unknown } })._handle.relay), handles);
    assert.equal(Buffer.concat(appGot).toString(), 'request bytes');

    const clientGot: Buffer[] = [];
    client.on('data', (b: Buffer) => clientGot.push(b));
    const clientEnded = new Promise<void>((r) => client.once('end', () => r()));
    app.write('head;');
    app.end('body');
    await clientEnded;
    assert.equal(Buffer.concat(clientGot).toString(), 'head;body');
    const closed = new Promise((r) => { if (downstream.closed) r(undefined); else downstream.once('close', r); });
    for (const s of [client, app, downstream, upstream]) s.destroy();
    await closed;
    // Bytes as the caller's socket saw them, counted when it closed.
    assert.equal(metrics.get(M.rxBytes[0], { direction: 'test' }), 'request bytes'.length);
    assert.equal(metrics.get(M.txBytes[0], { direction: 'test' }), 'head;body'.length);
  });

  test('backpressure both ways: 24 MB each way, intact, through a reader that pauses', { timeout: 60_000 }, async () => {
    const [downstream, client] = await pair();
    const [app, upstream] = await pair();
    join(downstream, upstream, new Metrics(), 'test', handles);
    const total = 24 * 1024 * 1024;
    const send = (s: net.Socket) => {
      const hash = createHash('sha256');
      return { hash, written: pump(s, total, hash) };
    };
    const receive = (s: net.Socket) => new Promise<string>((resolve) => {
      const h = createHash('sha256');
      s.on('data', (c: Buffer) => h.update(c));
      s.once('end', () => resolve(h.digest('hex')));
    });
    // The app reads nothing for a while: the client must be held back, not buffered in the proxy.
    app.pause();
    const fromClient = send(client);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(fromClient.written() < total, 'the client was never held back');
    const appGot = receive(app);
    app.resume();
    const fromApp = send(app);
    const clientGot = receive(client);
    assert.equal(await appGot, fromClient.hash.digest('hex'));
    assert.equal(await clientGot, fromApp.hash.digest('hex'));
    for (const s of [client, app, downstream, upstream]) s.destroy();
  });

  test('a reset of one side closes the other', { timeout: 20_000 }, async () => {
    const [downstream, client] = await pair();
    const [app, upstream] = await pair();
    join(downstream, upstream, new Metrics(), 'test', handles);
    client.write('x');
    await new Promise((r) => app.once('data', r));
    const appDone = new Promise<void>((r) => { app.on('error', () => r()); app.once('end', () => r()); app.once('close', () => r()); app.resume(); });
    client.resetAndDestroy();
    await appDone;
    await new Promise((r) => setImmediate(r));
    assert.equal(upstream.destroyed, true);
    assert.equal(downstream.destroyed, true);
    app.destroy();
  });
});

test('stream.pipe join ends only a side not ended yet when the other closes (no ERR_STREAM_ALREADY_FINISHED made per connection)', async () => {
  const [downstream, client] = await pair();
  const [app, upstream] = await pair();
  const lateEnds: string[] = [];
  const orig = downstream.end.bind(downstream) as (...a: unknown[]) => net.Socket;
  downstream.end = ((...args: unknown[]) => { if (downstream.writableEnded) lateEnds.push('downstream'); return orig(...args); }) as typeof downstream.end;
  join(downstream, upstream, new Metrics(), 'test', false);
  client.on('data', () => undefined);
  // The app's answer is complete: the pipe ended the caller's side (its socket stays open, half-closed)...
  app.end('answer');
  await new Promise((r) => client.once('end', r));
  assert.equal(downstream.writableEnded, true);
  assert.equal(downstream.destroyed, false);
  // ... then the upstream connection closes: nothing is left to end on the caller's side.
  const upstreamClosed = new Promise((r) => upstream.once('close', r));
  upstream.destroy();
  await upstreamClosed;
  assert.deepEqual(lateEnds, []);
  for (const s of [client, app, downstream]) s.destroy();
});
