// Joins two sockets byte for byte (L4) and accounts for the connection once it is over.

import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { M, type Metrics } from './metrics.ts';

/**
 * Pipes `downstream` (the caller) and `upstream` both ways. A clean end of one side half-closes the
 * other (HTTP clients that shut down their write side still get their answer); an error destroys
 * both. Metrics: active connections and bytes as seen by the downstream socket.
 */
export function join(downstream: net.Socket, upstream: Duplex, metrics: Metrics, direction: string): void {
  // TCP_NODELAY both ways, as Envoy and haproxy set it: a proxy forwards whatever arrived at once,
  // and with Nagle's algorithm a second small write (an app flushing its headers, then its body)
  // waits for the peer's delayed ACK: measured +41 ms p50 through the two sidecars (BENCHMARKS.md).
  downstream.setNoDelay(true);
  (upstream as Partial<net.Socket>).setNoDelay?.(true);
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  const fail = () => { downstream.destroy(); upstream.destroy(); };
  downstream.on('error', fail);
  upstream.on('error', fail);
  // Only a side not ended yet: end() on an ended stream makes (and drops) an
  // ERR_STREAM_ALREADY_FINISHED error, stack trace and all, for every connection.
  upstream.on('close', () => { if (!downstream.destroyed && !downstream.writableEnded) downstream.end(); });
  downstream.on('close', () => {
    if (!upstream.destroyed && !upstream.writableEnded) upstream.end();
    metrics.add(M.rxBytes[0], M.rxBytes[1], { direction }, downstream.bytesRead);
    metrics.add(M.txBytes[0], M.txBytes[1], { direction }, downstream.bytesWritten);
  });
}

/** Counts an accepted connection until it closes. */
export function track(socket: net.Socket, metrics: Metrics, direction: string): void {
  metrics.add(M.connsTotal[0], M.connsTotal[1], { direction });
  metrics.add(M.connsActive[0], M.connsActive[1], { direction }, 1, 'gauge');
  socket.once('close', () => metrics.add(M.connsActive[0], M.connsActive[1], { direction }, -1, 'gauge'));
}
