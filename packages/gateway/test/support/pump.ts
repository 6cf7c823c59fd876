// A writer for large-transfer tests (backpressure, byte-exact forwarding) through the gateway and
// the proxy's join.
import type { createHash } from 'node:crypto';
import type net from 'node:net';

/**
 * Writes `total` bytes of a known pattern to `s` in 64 KB chunks (into `hash` as well), only as fast
 * as `s` drains, then ends it. Returns how many bytes it has written so far.
 */
export function pump(s: net.Socket, total: number, hash: ReturnType<typeof createHash>): () => number {
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  const more = () => {
    while (written < total) {
      chunk.fill((written / chunk.length) % 251);
      hash.update(chunk);
      written += chunk.length;
      if (!s.write(chunk)) return;
    }
    s.end();
  };
  s.on('drain', more);
  more();
  return () => written;
}
