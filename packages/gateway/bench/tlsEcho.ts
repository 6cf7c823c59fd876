// The benchmark's backend, in a process of its own: an mTLS server standing in for a destination
// sidecar (answers each "ping\n" with "pong\n"; client certificate required, verified against the
// bench CA) and a plain TCP sink that accepts connections and holds them (the idle-connection row).
//
//   node packages/gateway/bench/tlsEcho.ts <cert dir> <tls port> <sink port>
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

const [dir, tlsPort, sinkPort] = process.argv.slice(2);
const read = (f: string) => fs.readFileSync(path.join(dir!, f), 'utf8');
const server = tls.createServer({ key: read('server.key'), cert: read('server.crt'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (s) => {
  s.on('error', () => s.destroy());
  let pending = '';
  s.on('data', (c: Buffer) => {
    pending += c.toString('latin1');
    let n = 0;
    let i: number;
    while ((i = pending.indexOf('\n')) >= 0) { pending = pending.slice(i + 1); n++; }
    if (n > 0) s.write('pong\n'.repeat(n));
  });
  s.on('end', () => s.end());
});
server.on('tlsClientError', () => undefined);
const held = new Set<net.Socket>();
const sink = net.createServer((s) => {
  held.add(s);
  s.on('error', () => s.destroy());
  s.on('close', () => held.delete(s));
});
await new Promise<void>((r) => server.listen(Number(tlsPort), '127.0.0.1', 4096, r));
await new Promise<void>((r) => sink.listen(Number(sinkPort), '127.0.0.1', 4096, r));
process.stdout.write('ready\n');
