// The L7 fast path's HTTP/1.1 pieces: the head and chunk parsers (h1Parse.ts) as table tests, and
// the server connection (h1Server.ts) over real loopback sockets: a head split across reads, chunked
// bodies, pipelined requests answered in order, 431 for an oversized head, 400 for malformed ones,
// and what it hands to node:http (HTTP/1.0, Upgrade).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { ChunkedScanner, HttpParseError, parseRequestHead, parseResponseHead, headEnd } from '../src/h1Parse.ts';
import { H1Pool } from '../src/h1Client.ts';
import { forwardHeaders, forwardRequestHead, H1ServerConn, HOP_HEADERS, requestHead, type H1Request } from '../src/h1Server.ts';
import { waitFor } from '../../../test/support/index.ts';

const closers: Array<() => void | Promise<void>> = [];
after(async () => { for (const c of closers.reverse()) await c(); });

function reqHead(text: string) {
  const b = Buffer.from(text, 'latin1');
  const end = headEnd(b, 0);
  assert.ok(end > 0, 'complete head');
  return parseRequestHead(b, 0, end);
}
function parseStatus(text: string): number {
  try { reqHead(text); return 0; } catch (err) { assert.ok(err instanceof HttpParseError, String(err)); return err.status; }
}

test('request heads: fields as node:http gives them, framing, keep-alive', () => {
  const h = reqHead('POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 5\r\nX-Pad:   v  \r\n\r\n');
  assert.equal(h.method, 'POST');
  assert.equal(h.target, '/a?b=1');
  assert.deepEqual(h.headers, { host: 'x', 'x-a': '1, 2', 'set-cookie': ['a', 'b'], 'content-length': '5', 'x-pad': 'v' });
  assert.equal(h.body, 5);
  assert.equal(h.keepAlive, true);
  assert.equal(h.fallback, undefined);
  assert.equal(reqHead('GET / HTTP/1.1\r\nConnection: close\r\n\r\n').keepAlive, false);
  assert.equal(reqHead('GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n').body, 'chunked');
  assert.equal(reqHead('GET / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n').body, 7);
  assert.equal(reqHead('GET / HTTP/1.1\r\n\r\n').body, 0);
});

test('request heads the fast path hands to node:http', () => {
  const cases: Array<[string, string]> = [
    ['GET / HTTP/1.0\r\n\r\n', 'HTTP/1.0'],
    ['GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', 'Upgrade'],
    ['GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n', 'Upgrade'],
    ['POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n', 'Expect'],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'Transfer-Encoding gzip, chunked'],
    ['GET http://a/b HTTP/1.1\r\n\r\n', 'request target not in origin form'],
    ['OPTIONS * HTTP/1.1\r\n\r\n', 'request target not in origin form'],
  ];
  for (const [text, why] of cases) assert.equal(reqHead(text).fallback, why, JSON.stringify(text));
});

test('malformed request heads are 400 (and never a fallback)', () => {
  const bad = [
    'GET /\r\n\r\n',
    'GET  / HTTP/1.1\r\n\r\n',
    'G(T / HTTP/1.1\r\n\r\n',
    'GET / HTTP/1.1\r\nX-A : 1\r\n\r\n',
    'GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n',
    'GET / HTTP/1.1\r\nno colon\r\n\r\n',
    'GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n',
  ];
  for (const text of bad) assert.equal(parseStatus(text), 400, JSON.stringify(text));
  assert.throws(() => headEnd(Buffer.from('GET / HTTP/1.1\nHost: a\n\n'), 0), /CRLF/);
});

test('response heads: framing by status, method, Content-Length, chunked, or the connection', () => {
  const res = (text: string, method = 'GET') => { const b = Buffer.from(text); return parseResponseHead(b, 0, headEnd(b, 0), method); };
  assert.deepEqual(res('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n'), { status: 200, reason: 'OK', headers: { 'content-length': '3' }, body: 3, keepAlive: true });
  assert.equal(res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n').body, 'chunked');
  assert.equal(res('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD').body, 0);
  assert.equal(res('HTTP/1.1 204 No Content\r\n\r\n').body, 0);
  assert.equal(res('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n').body, 0);
  const close = res('HTTP/1.1 200 OK\r\n\r\n');
  assert.equal(close.body, 'close');
  assert.equal(close.keepAlive, false);
  assert.equal(res('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(res('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(res('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n').reason, '');
});

test('chunked bodies: decoded across any split, extensions and trailers skipped, the end found exactly', () => {
  const wire = Buffer.from('5;ext=1\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT');
  for (let step = 1; step <= wire.length; step++) {
    const sc = new ChunkedScanner(true);
    let end = -1;
    for (let at = 0; at < wire.length && end < 0; at += step) {
      const piece = wire.subarray(at, Math.min(wire.length, at + step));
      const r = sc.feed(piece, 0);
      if (r >= 0) end = at + r;
    }
    assert.equal(end, wire.length - 4, `step ${step}`);
    assert.equal(Buffer.concat(sc.parts).toString(), 'hello world', `step ${step}`);
  }
  for (const bad of ['x\r\n', '5\r\nhelloXX', '\r\n', '5\nhello\r\n', '1000000000000\r\n']) {
    assert.throws(() => new ChunkedScanner(true).feed(Buffer.from(bad), 0), HttpParseError, JSON.stringify(bad));
  }
});

// --- the server connection over real sockets --------------------------------------------------

interface Served { head: H1Request['head']; body: string }

/** An H1ServerConn server answering each request with its method, target and body (JSON), after `delay(i)` ms. */
async function startEcho(delay: (i: number) => number = () => 0, maxBody = 1024): Promise<{ port: number; served: Served[]; reads: () => number; fallbacks: string[] }> {
  const served: Served[] = [];
  const fallbacks: string[] = [];
  let reads = 0;
  const fallback = http.createServer((req, res) => {
    fallbacks.push(`${req.method} ${req.url} HTTP/${req.httpVersion}`);
    res.end('from node:http');
  });
  const server = net.createServer((socket) => {
    socket.on('data', () => { reads++; });
    new H1ServerConn(socket, {
      maxBody, large: 'reject',
      handle: (req, conn) => {
        const i = served.length;
        served.push({ head: req.head, body: req.body.toString() });
        setTimeout(() => {
          const body = Buffer.from(JSON.stringify({ i, method: req.head.method, target: req.head.target, body: req.body.toString() }));
          conn.writeHead(200, 'OK', { 'content-type': 'application/json', 'content-length': body.length });
          conn.write(body);
          conn.finish();
        }, delay(i));
      },
      fallback: (s) => { fallback.emit('connection', s); s.resume(); },
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { fallback.closeAllConnections(); server.close(); });
  return { port: (server.address() as net.AddressInfo).port, served, reads: () => reads, fallbacks };
}

/** Connects, sends `pieces` one read apart (each waits until the server has read the one before), collects everything until the server closes. */
async function exchange(port: number, pieces: string[], reads?: () => number): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  for (const p of pieces) {
    const before = reads?.() ?? 0;
    s.write(p);
    if (reads) await waitFor('the server read the piece', () => reads() > before, 5000, 5);
  }
  await closed;
  return got;
}

/** The JSON bodies of the answers in a byte stream of keep-alive responses with Content-Length. */
function answers(raw: string): Array<{ status: number; json?: Record<string, unknown>; text: string }> {
  const out: Array<{ status: number; json?: Record<string, unknown>; text: string }> = [];
  let rest = raw;
  while (rest.length > 0) {
    const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(rest);
    assert.ok(m, `a response head at ${JSON.stringify(rest.slice(0, 40))}`);
    const len = Number(/content-length: (\d+)/i.exec(m[2]!)?.[1] ?? NaN);
    const text = rest.slice(m[0].length, m[0].length + len);
    out.push({ status: Number(m[1]), text, json: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : undefined });
    rest = rest.slice(m[0].length + len);
  }
  return out;
}

test('a request head split across reads, byte by byte, is parsed once whole', async () => {
  const echo = await startEcho();
  const req = 'GET /split?x=1 HTTP/1.1\r\nHost: a\r\nX-Long: ' + 'v'.repeat(50) + '\r\nConnection: close\r\n\r\n';
  const pieces = [...req.slice(0, 30)].concat(req.slice(30, 60), req.slice(60));
  const raw = await exchange(echo.port, pieces, echo.reads);
  assert.deepEqual(answers(raw).map((a) => a.json), [{ i: 0, method: 'GET', target: '/split?x=1', body: '' }]);
  assert.equal(echo.served[0]!.head.headers['x-long'], 'v'.repeat(50));
});

test('Content-Length and chunked bodies arriving in pieces are whole when the request is served', async () => {
  const echo = await startEcho();
  const raw = await exchange(echo.port, [
    'POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel', 'lo wo', 'rld',
    'POST /ch HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhe', 'llo\r\n6;e=1\r\n worl', 'd\r\n0\r\nT: 1\r\n', '\r\n',
  ], echo.reads);
  assert.deepEqual(answers(raw).map((a) => a.json), [
    { i: 0, method: 'POST', target: '/cl', body: 'hello world' },
    { i: 1, method: 'POST', target: '/ch', body: 'hello world' },
  ]);
});

test('pipelined requests in one write are answered in order, even when the first answer is the slowest', async () => {
  const echo = await startEcho((i) => (i === 0 ? 150 : 0));
  const reqs = ['GET /1 HTTP/1.1\r\nHost: a\r\n\r\n', 'POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc', 'POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n', 'GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'];
  const raw = await exchange(echo.port, [reqs.join('')]);
  assert.deepEqual(answers(raw).map((a) => a.json), [
    { i: 0, method: 'GET', target: '/1', body: '' },
    { i: 1, method: 'POST', target: '/2', body: 'abc' },
    { i: 2, method: 'POST', target: '/3', body: 'z' },
    { i: 3, method: 'GET', target: '/4', body: '' },
  ]);
  // Keep-alive answers tell the client how long an idle connection stays (the sweep's 30 s); the last one closes it.
  assert.equal(raw.match(/\r\nkeep-alive: timeout=30\r\n/g)?.length, 3);
  assert.equal(raw.match(/\r\nconnection: close\r\n/g)?.length, 1);
});

test('a head over 16 KiB gets 431 and the connection closes; a malformed one gets 400', async () => {
  const echo = await startEcho();
  const big = await exchange(echo.port, [`GET / HTTP/1.1\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`]);
  assert.match(big, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.match(big, /connection: close/);
  // Never completed: the limit holds while the head is still arriving too.
  const endless = await exchange(echo.port, [`GET / HTTP/1.1\r\nX-Big: ${'b'.repeat(17 * 1024)}`]);
  assert.match(endless, /^HTTP\/1\.1 431 /);
  const bad = await exchange(echo.port, ['GET / HTTP/1.1\r\nX-A : 1\r\n\r\nGET /never HTTP/1.1\r\n\r\n']);
  const a = answers(bad);
  assert.equal(a.length, 1);
  assert.equal(a[0]!.status, 400);
  assert.match(a[0]!.text, /malformed header line/);
  const smuggle = answers(await exchange(echo.port, ['POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n']));
  assert.equal(smuggle[0]!.status, 400);
  const chunkBad = answers(await exchange(echo.port, ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']));
  assert.equal(chunkBad[0]!.status, 400);
  assert.equal(echo.served.length, 0, 'nothing was served');
});

test('a body over the limit gets 413', async () => {
  const echo = await startEcho(() => 0, 10);
  assert.match(await exchange(echo.port, ['POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world']), /^HTTP\/1\.1 413 /);
  assert.match(await exchange(echo.port, ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n']), /^HTTP\/1\.1 413 /);
  assert.equal(echo.served.length, 0);
});

test('HTTP/1.0 and Upgrade go to node:http, after the requests served before them on the connection', async () => {
  const echo = await startEcho();
  const raw = await exchange(echo.port, ['GET /fast HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /old HTTP/1.0\r\n\r\n'], echo.reads);
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"target":"\/fast"[\s\S]*HTTP\/1\.1 200 OK\r\n[\s\S]*from node:http$/);
  assert.deepEqual(echo.fallbacks, ['GET /old HTTP/1.0']);
  const up = await exchange(echo.port, ['GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\r\n']);
  assert.match(up, /from node:http$/);
  assert.deepEqual(echo.fallbacks, ['GET /old HTTP/1.0', 'GET /ws HTTP/1.1']);
});

test('the client pool: chunked and close-delimited answers are relayed whole; the connection is reused after a framed one', async () => {
  let conns = 0;
  const app = net.createServer((s) => {
    conns++;
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        const line = buf.slice(0, buf.indexOf('\r\n'));
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        if (line.startsWith('GET /chunked')) s.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
        else if (line.startsWith('GET /close')) s.end('HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\nuntil the end');
        else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.close(); });
  const appPort = (app.address() as net.AddressInfo).port;
  const pool = new H1Pool((host, port) => ({ socket: net.connect({ host, port }), ready: 'connect' }), { connectMs: 5000, what: 'connection' });
  closers.push(() => pool.close());
  // A front server relaying each request to the app through the pool.
  const front = net.createServer((socket) => new H1ServerConn(socket, {
    maxBody: 1024, large: 'reject', fallback: () => socket.destroy(),
    handle: (req, conn) => {
      void pool.request('127.0.0.1', appPort, req.head.method, requestHead(req.head.method, req.head.target, { host: 'app' }), req.body, 5000).then((out) => {
        if (out.kind === 'error') { conn.reply(503, out.error.message); return; }
        conn.writeHead(out.res.head.status, out.res.head.reason, forwardHeaders(conn, out.res.head));
        out.res.relay(conn);
      });
    },
  }));
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { front.close(); });
  const frontPort = (front.address() as net.AddressInfo).port;
  const get = (path: string) => new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: frontPort, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    }).on('error', reject);
  });
  assert.deepEqual(await get('/a').then((r) => [r.status, r.body]), [200, 'ok']);
  const chunked = await get('/chunked');
  assert.deepEqual([chunked.status, chunked.body, chunked.headers['transfer-encoding']], [200, 'abc', 'chunked']);
  assert.equal(conns, 1, 'the framed answers left the app connection pooled');
  const closing = await get('/close');
  assert.deepEqual([closing.status, closing.body, closing.headers['x-kind'], closing.headers.connection], [200, 'until the end', 'close', 'close']);
  assert.deepEqual(await get('/b').then((r) => [r.status, r.body]), [200, 'ok']);
  assert.equal(conns, 2, 'a close-delimited answer used up its connection');
});

test('the idle sweep drops an item not used for a whole period and keeps one in use', async () => {
  const { IdleSweep } = await import('../src/idleSweep.ts');
  const state = new Map<string, { used: boolean; dropped: boolean }>([['idle', { used: false, dropped: false }], ['busy', { used: true, dropped: false }]]);
  const sweep = new IdleSweep<string>(200, (k) => {
    const s = state.get(k)!;
    if (s.used) { s.used = false; return false; }
    s.dropped = true;
    return true;
  });
  sweep.add('idle');
  sweep.add('busy');
  // Timers fire in order of expiry: the 10 ms one always runs between two sweeps, even on a stalled loop.
  const keepBusy = setInterval(() => { state.get('busy')!.used = true; }, 10);
  try {
    await waitFor('the idle item dropped', () => state.get('idle')!.dropped, 5000, 10);
    // The busy item has seen several sweeps by now and is still there.
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(state.get('busy')!.dropped, false);
  } finally {
    clearInterval(keepBusy);
  }
  await waitFor('the busy item dropped once it stops being used', () => state.get('busy')!.dropped, 5000, 10);
});

test('a client that goes away in the middle of a relayed answer closes the connection to the peer', async () => {
  let peerClosed = false;
  // The peer announces 10 MB and sends 64 KB: the relay waits for the rest (or the client) for ever.
  const app = net.createServer((s) => {
    s.once('data', () => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n${'x'.repeat(64 * 1024)}`));
    s.on('close', () => { peerClosed = true; });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.close(); });
  const appPort = (app.address() as net.AddressInfo).port;
  const pool = new H1Pool((host, port) => ({ socket: net.connect({ host, port }), ready: 'connect' }), { connectMs: 5000, what: 'connection' });
  closers.push(() => pool.close());
  const front = net.createServer((socket) => new H1ServerConn(socket, {
    maxBody: 1024, large: 'reject', fallback: () => socket.destroy(),
    handle: (req, conn) => {
      void pool.request('127.0.0.1', appPort, 'GET', requestHead('GET', req.head.target, { host: 'app' }), req.body, 5000).then((out) => {
        if (out.kind === 'error') { conn.reply(503, out.error.message); return; }
        conn.writeHead(out.res.head.status, out.res.head.reason, forwardHeaders(conn, out.res.head));
        out.res.relay(conn);
      });
    },
  }));
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { front.close(); });
  const client = net.connect((front.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  let got = 0;
  await new Promise<void>((resolve) => {
    client.on('data', (d: Buffer) => { got += d.length; if (got > 1024) resolve(); });
    client.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
  });
  // Not reading any more (the relay may be paused on this client's full buffer), then gone.
  client.pause();
  client.destroy();
  await waitFor('the peer connection closed', () => peerClosed, 5000, 20);
});

test("the client pool does not reuse a connection past the peer's announced Keep-Alive timeout", async () => {
  let conns = 0;
  // Announces timeout=1 and (unlike a real server) never closes: only the pool's own rule keeps it from reusing the socket.
  const app = net.createServer((s) => {
    conns++;
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.close(); });
  const appPort = (app.address() as net.AddressInfo).port;
  const pool = new H1Pool((host, port) => ({ socket: net.connect({ host, port }), ready: 'connect' }), { connectMs: 5000, what: 'connection' });
  closers.push(() => pool.close());
  const post = async () => {
    const out = await pool.request('127.0.0.1', appPort, 'POST', requestHead('POST', '/', { host: 'app', 'content-length': '1' }), Buffer.from('x'), 5000);
    assert.equal(out.kind, 'ok');
    if (out.kind === 'ok') out.res.discard();
  };
  const postKeep = async () => {
    const out = await pool.request('127.0.0.1', appPort, 'POST', requestHead('POST', '/', { host: 'app', 'content-length': '1' }), Buffer.from('x'), 5000);
    assert.ok(out.kind === 'ok');
    // Relayed to nowhere: a stand-in client connection that only needs finish().
    out.res.relay({ write: () => true, finish: () => undefined, flushHead: () => undefined, closed: false, socket: null } as unknown as H1ServerConn);
  };
  await postKeep();
  await postKeep();
  assert.equal(conns, 1, 'reused within the announced timeout');
  // The idle time itself is the scenario: 1.2 s > 1 s announced (the pool stops 100 ms before).
  await new Promise((r) => setTimeout(r, 1200));
  await post();
  assert.equal(conns, 2, 'a new connection after the announced timeout');
});

test('trim keeps the most recently used idle connections per peer and closes the rest', async () => {
  let open = 0;
  const app = net.createServer((s) => {
    open++;
    s.on('close', () => { open--; });
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.close(); });
  const appPort = (app.address() as net.AddressInfo).port;
  const pool = new H1Pool((host, port) => ({ socket: net.connect({ host, port }), ready: 'connect' }), { connectMs: 5000, what: 'connection' });
  closers.push(() => pool.close());
  const sink = { write: () => true, finish: () => undefined, flushHead: () => undefined, closed: false, socket: null } as unknown as H1ServerConn;
  // Three requests in flight at once: three connections, all pooled afterwards.
  const outs = await Promise.all([0, 1, 2].map(() => pool.request('127.0.0.1', appPort, 'GET', requestHead('GET', '/', { host: 'app' }), Buffer.alloc(0), 5000)));
  for (const o of outs) { assert.ok(o.kind === 'ok'); o.res.relay(sink); }
  await waitFor('three app connections', () => open === 3, 5000, 10);
  pool.trim(1);
  await waitFor('two closed, one kept', () => open === 1, 5000, 10);
});

test('heads written without a header object are the same text as through one (forwardRequestHead, forwardHead)', () => {
  // The old way: an object of the non-hop-by-hop fields, then the changes, then requestHead.
  const viaObject = (from: Record<string, string | string[]>, set: [string, string] | undefined, len: number | undefined, host: string) => {
    const h: Record<string, string | string[]> = {};
    for (const k in from) if (!HOP_HEADERS.has(k)) h[k] = from[k]!;
    if (set) h[set[0]] = set[1];
    if (len !== undefined) h['content-length'] = String(len);
    h.host ??= host;
    return requestHead('POST', '/p?q=1', h);
  };
  const requests: Array<Record<string, string | string[]>> = [
    {},
    { host: 'a:1', 'user-agent': 'x', connection: 'keep-alive', 'keep-alive': 'timeout=5', accept: '*/*' },
    { 'content-length': '3', 'x-forwarded-client-cert': 'URI=spiffe://evil', cookie: ['a=1', 'b=2'], te: 'trailers', upgrade: 'h2c' },
    { 'transfer-encoding': 'chunked', 'x-a': 'b', host: 'h' },
  ];
  for (const from of requests) {
    for (const set of [undefined, ['x-forwarded-client-cert', 'URI=spiffe://td/ns/default/dc/dc1/svc/web'] as [string, string]]) {
      for (const len of [undefined, 0, 3]) {
        assert.equal(forwardRequestHead('POST', '/p?q=1', from, set, len, 'up'), viaObject(from, set, len, 'up'), JSON.stringify({ from, set, len }));
      }
    }
  }
  // Answers: forwardHead(head) against writeHead(status, reason, forwardHeaders(conn, head)), per framing and keep-alive.
  const written = (keepAlive: boolean, f: (c: H1ServerConn) => void) => {
    let out = '';
    const sock = { setNoDelay() {}, on() { return sock; }, write(x: string) { out += x; return true; } } as unknown as net.Socket;
    const c = new H1ServerConn(sock, { handle: () => {}, fallback: () => {}, maxBody: 1, large: 'reject' });
    c.keepAlive = keepAlive;
    f(c);
    c.flushHead();
    c.sweep();
    return { out, keepAlive: c.keepAlive };
  };
  for (const text of [
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n',
    'HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n',
    'HTTP/1.1 204 No Content\r\n\r\n',
  ]) {
    const b = Buffer.from(text, 'latin1');
    const head = parseResponseHead(b, 0, headEnd(b, 0), 'GET');
    for (const ka of [true, false]) {
      const a = written(ka, (c) => c.forwardHead(head));
      const o = written(ka, (c) => c.writeHead(head.status, head.reason, forwardHeaders(c, head)));
      assert.deepEqual(a, o, `${JSON.stringify(text)} keepAlive ${ka}`);
      assert.match(a.out, /\r\n\r\n$/);
    }
  }
});
