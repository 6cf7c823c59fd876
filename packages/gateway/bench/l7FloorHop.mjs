// The hops of l7Floor.ts (plain JavaScript: the launcher's --lite-mode has no WebAssembly, so no
// TypeScript stripping, as the proxies run a bundle). One hop per process:
//   node l7FloorHop.mjs <hop1|hop2> <l4|l7min|l7parse> <listen port> <next port> <cert dir>
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

const CRLF2 = Buffer.from('\r\n\r\n');

/** Content-Length of a head (latin1 text), 0 when absent; -1 for chunked (not used by the test app). */
function contentLength(head) {
  const lower = head.toLowerCase();
  if (lower.includes('\r\ntransfer-encoding:')) return -1;
  const i = lower.indexOf('\r\ncontent-length:');
  if (i < 0) return 0;
  return parseInt(head.slice(i + 17, head.indexOf('\r\n', i + 17)).trim(), 10);
}

/** l7parse: the head into an object and back into text, as a router's header handling does at least. */
function reparse(head) {
  const lines = head.split('\r\n');
  const headers = {};
  for (let i = 1; i < lines.length - 2; i++) {
    const l = lines[i];
    const c = l.indexOf(':');
    headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
  }
  let s = `${lines[0]}\r\n`;
  for (const k in headers) s += `${k}: ${headers[k]}\r\n`;
  return `${s}\r\n`;
}


/** An HTTP/1.1 hop: requests from `accept`'s sockets go to `dial()`'s pooled keep-alive connections. */
function h1Hop(parse, dial) {
  const idle = [];
  const respData = (u, d) => {
    const to = u.to;
    if (!to) { u.s.destroy(); return; }
    if (!u.headDone) {
      u.buf = u.buf.length === 0 ? d : Buffer.concat([u.buf, d]);
      const e = u.buf.indexOf(CRLF2);
      if (e < 0) return;
      u.headDone = true;
      const headText = u.buf.toString('latin1', 0, e + 4);
      const len = contentLength(headText);
      if (len < 0) throw new Error('chunked answers are not part of the floor');
      const out = parse ? Buffer.from(reparse(headText), 'latin1') : undefined;
      const rest = u.buf.subarray(e + 4);
      u.buf = Buffer.alloc(0);
      u.left = len - rest.length;
      to.s.write(out ? (rest.length > 0 ? Buffer.concat([out, rest]) : out) : d);
    } else {
      u.left -= d.length;
      to.s.write(d);
    }
    if (u.left <= 0) {
      u.to = undefined;
      u.headDone = false;
      idle.push(u);
      to.busy = false;
      if (to.buf.length > 0) next(to);
    }
  };
  const take = () => {
    while (idle.length > 0) {
      const u = idle.pop();
      if (!u.s.destroyed) return u;
    }
    const s = dial();
    s.setNoDelay(true);
    const u = { s, buf: Buffer.alloc(0), left: 0, to: undefined, headDone: false };
    s.on('data', (d) => respData(u, d));
    s.on('error', () => undefined);
    s.on('close', () => { const i = idle.indexOf(u); if (i >= 0) idle.splice(i, 1); u.to?.s.destroy(); });
    return u;
  };
  const next = (d) => {
    const e = d.buf.indexOf(CRLF2);
    if (e < 0) return;
    const headText = d.buf.toString('latin1', 0, e + 4);
    const len = contentLength(headText);
    if (len < 0 || d.buf.length < e + 4 + len) return; // (no chunked requests in the floor; bodies arrive whole here)
    const end = e + 4 + len;
    const req = parse ? Buffer.concat([Buffer.from(reparse(headText), 'latin1'), d.buf.subarray(e + 4, end)]) : d.buf.subarray(0, end);
    d.buf = d.buf.subarray(end);
    d.busy = true;
    const u = take();
    u.to = d;
    u.s.write(req);
  };
  return (s) => {
    s.setNoDelay(true);
    const d = { s, buf: Buffer.alloc(0), busy: false };
    s.on('data', (c) => {
      d.buf = d.buf.length === 0 ? c : Buffer.concat([d.buf, c]);
      if (!d.busy) next(d);
    });
    s.on('error', () => undefined);
  };
}

/** The byte pipe of the L4 path: a new upstream connection per downstream one. */
function pipeHop(dial) {
  return (s) => {
    s.setNoDelay(true);
    const u = dial();
    u.setNoDelay(true);
    s.pipe(u).pipe(s);
    s.on('error', () => u.destroy());
    u.on('error', () => s.destroy());
  };
}

function runHop(role, mode, listenPort, nextPort, certDir) {
  const pem = (n) => fs.readFileSync(path.join(certDir, n));
  const onConn = (dial) => (mode === 'l4' ? pipeHop(dial) : h1Hop(mode === 'l7parse', dial));
  let server;
  if (role === 'hop1') {
    const ctx = tls.createSecureContext({ key: pem('client.key'), cert: pem('client.crt'), ca: pem('ca.pem') });
    let session;
    const dial = () => {
      const s = tls.connect({ host: '127.0.0.1', port: nextPort, servername: 'payments', secureContext: ctx, session, checkServerIdentity: () => undefined });
      s.once('session', (x) => { session = x; });
      return s;
    };
    server = net.createServer(onConn(dial));
  } else {
    const dial = () => net.connect({ host: '127.0.0.1', port: nextPort });
    server = tls.createServer({ key: pem('server.key'), cert: pem('server.crt'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true }, onConn(dial));
  }
  server.listen(listenPort, '127.0.0.1', () => process.stdout.write('ready\n'));
  // Bounded: a hop never outlives the bench by more than its own limit.
  setTimeout(() => process.exit(0), 30 * 60_000).unref();
  }

const [role, mode, listen, next, certs] = process.argv.slice(2);
runHop(role, mode, Number(listen), Number(next), certs);
