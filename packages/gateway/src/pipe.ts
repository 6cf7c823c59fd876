// Joins two sockets byte for byte (L4) and accounts for the connection once it is over.

import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { M, type Metrics } from './metrics.ts';
import { HandleRelay, isStreamHandle, uvBinding, type Handle } from './uvHandles.ts';

/**
 * Joins `downstream` (the caller, paused until now) and `upstream` both ways and starts the flow. A
 * clean end of one side half-closes the other (HTTP clients that shut down their write side still
 * get their answer); an error destroys both. Metrics: active connections and bytes as seen by the
 * downstream socket.
 *
 * Where both are sockets over Node's stream handles (TCP, or TLS over TCP), the bytes go handle to
 * handle (HandleRelay, uvHandles.ts): each read written to the other side in its callback, no
 * Readable/Writable streams or pipe in between (the proxy runs in lite mode, which interprets all
 * that JavaScript per chunk). Else (`handles` false, another kind of stream, or TRELLIS_NO_UV_HANDLES
 * set), stream.pipe both ways.
 */
export function join(downstream: net.Socket, upstream: Duplex, metrics: Metrics, direction: string, handles = true): void {
  // TCP_NODELAY both ways, as Envoy and haproxy set it: a proxy forwards whatever arrived at once,
  // and with Nagle's algorithm a second small write (an app flushing its headers, then its body)
  // waits for the peer's delayed ACK: measured +41 ms p50 through the two sidecars (BENCHMARKS.md).
  downstream.setNoDelay(true);
  (upstream as Partial<net.Socket>).setNoDelay?.(true);
  downstream.on('close', () => {
    metrics.add(M.rxBytes[0], M.rxBytes[1], { direction }, downstream.bytesRead);
    metrics.add(M.txBytes[0], M.txBytes[1], { direction }, downstream.bytesWritten);
  });
  if (handles && relayable(downstream) && relayable(upstream as net.Socket)) {
    relaySockets(downstream, upstream as net.Socket);
    return;
  }
  pipeBoth(downstream, upstream);
  downstream.resume();
}

function relayable(s: net.Socket): boolean {
  return uvBinding() !== null && isStreamHandle((s as unknown as { _handle?: Handle })._handle) && !s.destroyed;
}

/** Bytes a paused socket has read already, and whether its end was among them. */
function drain(s: net.Socket): { chunks: Buffer[]; ended: boolean } {
  const chunks: Buffer[] = [];
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) chunks.push(c);
  return { chunks, ended: (s as unknown as { _readableState: { ended: boolean } })._readableState.ended };
}

/** join() on the handles: a HandleRelay once both are connected; the sockets only close them. */
function relaySockets(a: net.Socket, z: net.Socket): void {
  let relay: HandleRelay | undefined;
  let over = false;
  const destroyBoth = () => { over = true; a.destroy(); z.destroy(); };
  // Errors (a TLS alert, a reset seen by a write) and closes from outside (the proxy stopping) end both.
  a.on('error', () => { if (relay) relay.fail(); else destroyBoth(); });
  z.on('error', () => { if (relay) relay.fail(); else destroyBoth(); });
  a.once('close', () => { if (relay) relay.fail(); else if (!over) destroyBoth(); });
  z.once('close', () => { if (relay) relay.fail(); else if (!over) destroyBoth(); });
  const start = () => {
    if (over || a.destroyed || z.destroyed) { destroyBoth(); return; }
    const fromA = drain(a);
    const fromZ = drain(z);
    const ha = (a as unknown as { _handle?: Handle })._handle;
    const hz = (z as unknown as { _handle?: Handle })._handle;
    if (!isStreamHandle(ha) || !isStreamHandle(hz)) { destroyBoth(); return; }
    relay = new HandleRelay(uvBinding()!, ha, hz, { closeOnLastEnd: false, close: destroyBoth });
    relay.start(fromA.chunks, fromA.ended, fromZ.chunks, fromZ.ended);
  };
  // The app's connection may still be connecting (inbound dials it now): writes wait for it.
  if (z.connecting) z.once('connect', start);
  else start();
}

function pipeBoth(downstream: net.Socket, upstream: Duplex): void {
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  const fail = () => { downstream.destroy(); upstream.destroy(); };
  downstream.on('error', fail);
  upstream.on('error', fail);
  // Only a side not ended yet: end() on an ended stream makes (and drops) an
  // ERR_STREAM_ALREADY_FINISHED error, stack trace and all, for every connection.
  upstream.on('close', () => { if (!downstream.destroyed && !downstream.writableEnded) downstream.end(); });
  downstream.on('close', () => { if (!upstream.destroyed && !upstream.writableEnded) upstream.end(); });
}

/** Counts an accepted connection until it closes. */
export function track(socket: net.Socket, metrics: Metrics, direction: string): void {
  metrics.add(M.connsTotal[0], M.connsTotal[1], { direction });
  metrics.add(M.connsActive[0], M.connsActive[1], { direction }, 1, 'gauge');
  socket.once('close', () => metrics.add(M.connsActive[0], M.connsActive[1], { direction }, -1, 'gauge'));
}
