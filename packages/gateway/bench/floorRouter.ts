// The floor for a mesh gateway in Node, for bench/gatewayCpu.ts: a router with none of the
// gateway's work (no ClientHello parsing, no catalog, no metrics, no deadlines), that takes a
// connection's first chunk, connects to the one backend (the `echo` sidecar the agent lists) and
// pipes both ways, as the gateway does after routing. Its CPU per connection is what Node's
// net.Socket and stream machinery cost; the gateway cannot spend less than that.
//
//   node floorRouter.ts '{"httpAddr":"127.0.0.1:8500","address":"127.0.0.1:8443"}'
import net from 'node:net';

const opts = JSON.parse(process.argv[2] ?? '{}') as { httpAddr: string; address: string };
const res = await fetch(`http://${opts.httpAddr}/v1/health/connect/echo?passing=1`);
const list = (await res.json()) as Array<{ Service: { Port: number } }>;
const port = list[0]!.Service.Port;
const [host, listenPort] = opts.address.split(':');
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.setNoDelay(true);
  s.on('error', () => s.destroy());
  s.once('data', (hello: Buffer) => {
    s.pause();
    const up = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    up.setNoDelay(true);
    up.on('error', () => { up.destroy(); s.destroy(); });
    up.once('connect', () => { up.write(hello); s.pipe(up); up.pipe(s); s.resume(); });
  });
});
server.listen(Number(listenPort), host, () => process.stdout.write('ready\n'));
process.once('SIGTERM', () => process.exit(0));
