// The floor router of bench/floorRouter.ts on libuv's TCP handles directly (process.binding's
// tcp_wrap and stream_wrap, Node's own internals under net.Socket), for bench/gatewayCpu.ts
// --raw-floor: first chunk, connect, relay both ways with half-close and backpressure (a write
// libuv could not finish at once stops reading its source until it completes), no net.Socket, no
// streams. An experiment, not a gateway: it shows what a data path that skips Node's stream
// machinery costs per connection. process.binding is deprecated (DEP0111) and these shapes are
// Node 24's internals, which can change in any release.
//
//   node rawFloorRouter.ts '{"httpAddr":"127.0.0.1:8500","address":"127.0.0.1:8443"}'
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any; // internals without types
const { TCP, TCPConnectWrap, constants } = (process as Any).binding('tcp_wrap');
const { WriteWrap, ShutdownWrap, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, streamBaseState } = (process as Any).binding('stream_wrap');
const opts = JSON.parse(process.argv[2] ?? '{}') as { httpAddr: string; address: string };
const res = await fetch(`http://${opts.httpAddr}/v1/health/connect/echo?passing=1`);
const list = (await res.json()) as Array<{ Service: { Port: number } }>;
const port = list[0]!.Service.Port;
const [host, listenPort] = opts.address.split(':');

interface Side { h: Any; other?: Side; ended: boolean; shut: boolean; closed: boolean; pendingWrites: number; conn: Conn }
interface Conn { a: Side; b: Side; closing: boolean }

function closeConn(c: Conn): void {
  if (c.closing) return;
  c.closing = true;
  for (const s of [c.a, c.b]) if (!s.closed) { s.closed = true; s.h.close(); }
}
function maybeDone(c: Conn): void {
  // Both directions ended and shut: close both.
  if (c.a.ended && c.b.ended && c.a.pendingWrites === 0 && c.b.pendingWrites === 0) closeConn(c);
}
function afterWrite(this: Any, status: number): void {
  const from: Side = this.from;
  const to: Side = this.to;
  to.pendingWrites--;
  if (status < 0) { closeConn(to.conn); return; }
  if (to.pendingWrites === 0) {
    if (!from.ended && !from.closed) from.h.readStart();
    if (from.ended && !to.shut) shutdown(to);
    maybeDone(to.conn);
  }
}
function shutdown(to: Side): void {
  to.shut = true;
  const req = new ShutdownWrap();
  req.handle = to.h;
  req.oncomplete = () => maybeDone(to.conn);
  if (to.h.shutdown(req) !== 0) closeConn(to.conn);
}
function relayTo(from: Side, to: Side, buf: Uint8Array): void {
  const req = new WriteWrap();
  req.handle = to.h;
  req.oncomplete = afterWrite;
  req.async = false;
  req.from = from;
  req.to = to;
  req.buffer = buf;
  to.pendingWrites++;
  const err = to.h.writeBuffer(req, buf);
  if (err !== 0) { closeConn(to.conn); return; }
  if (streamBaseState[kLastWriteWasAsync]) { from.h.readStop(); return; } // backpressure: oncomplete later
  to.pendingWrites--;
}
function onRead(this: Any, ab: ArrayBuffer): void {
  const side: Side = this.side;
  const n = streamBaseState[kReadBytesOrError];
  if (n > 0) { relayTo(side, side.other!, new Uint8Array(ab, streamBaseState[kArrayBufferOffset], n)); return; }
  if (n === 0) return;
  // EOF (UV_EOF = -4095) or error.
  side.ended = true;
  side.h.readStop();
  if (n !== -4095) { closeConn(side.conn); return; }
  const to = side.other!;
  if (to.pendingWrites === 0 && !to.shut) shutdown(to);
  maybeDone(side.conn);
}

const server = new TCP(constants.SERVER);
server.bind(host, Number(listenPort));
server.onconnection = (err: number, client: Any) => {
  if (err) return;
  client.setNoDelay(true);
  const conn = { closing: false } as Conn;
  const a: Side = { h: client, ended: false, shut: false, closed: false, pendingWrites: 0, conn };
  conn.a = a;
  client.side = a;
  // First chunk: connect, then forward it and relay.
  client.onread = function (this: Any, ab: ArrayBuffer) {
    const n = streamBaseState[kReadBytesOrError];
    if (n <= 0) { if (n < 0) { a.closed = true; client.close(); } return; }
    const hello = new Uint8Array(ab, streamBaseState[kArrayBufferOffset], n);
    client.readStop();
    const up = new TCP(constants.SOCKET);
    const b: Side = { h: up, ended: false, shut: false, closed: false, pendingWrites: 0, conn };
    conn.b = b; a.other = b; b.other = a; up.side = b;
    const req = new TCPConnectWrap();
    req.oncomplete = (status: number) => {
      if (status < 0 || conn.closing) { closeConn(conn); return; }
      up.setNoDelay(true);
      up.onread = onRead;
      client.onread = onRead;
      relayTo(a, b, hello);
      up.readStart();
      if (b.pendingWrites === 0) client.readStart();
    };
    req.address = '127.0.0.1'; req.port = port;
    if (up.connect(req, '127.0.0.1', port) !== 0) closeConn(conn);
  };
  client.readStart();
};
server.listen(4096);
process.stdout.write('ready\n');
process.once('SIGTERM', () => process.exit(0));
