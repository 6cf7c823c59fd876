// Request-body helpers shared by the L7 listeners (l7Upstream.ts, l7Inbound.ts). A module of its
// own so the inbound side does not load the upstream's chain evaluator just for them.

import type http from 'node:http';

/** Whether a request carries a body (RFC 9112 §6.3: Transfer-Encoding, else a non-zero Content-Length). */
export function hasBody(req: http.IncomingMessage): boolean {
  const h = req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/**
 * The whole body, with plain listeners (no async iterator: in the proxy's lite mode, without a JIT,
 * its objects and promise turns showed in the L7 upstream's CPU profile, ~2%); 'too large' past
 * `max` bytes; undefined if the caller went away first.
 */
export function readBody(req: http.IncomingMessage, max: number): Promise<Buffer | 'too large' | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (v: Buffer | 'too large' | undefined) => {
      req.off('data', onData); req.off('end', onEnd); req.off('error', onGone); req.off('close', onClose);
      resolve(v);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) { req.pause(); done('too large'); return; }
      chunks.push(c);
    };
    const onEnd = () => done(Buffer.concat(chunks, size));
    const onGone = () => done(undefined);
    const onClose = () => { if (!req.complete) done(undefined); };
    req.on('data', onData); req.once('end', onEnd); req.once('error', onGone); req.once('close', onClose);
  });
}
