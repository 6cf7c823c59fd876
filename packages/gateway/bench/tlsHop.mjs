// CPU per connection of one mesh hop with a new connection each time, in one process, as the two
// sidecars make it: a TLS client offering the session it was last given (the web sidecar's
// upstream listener) -> an mTLS server that reads the caller's URI SAN and serial (the payments
// sidecar's public listener) piped to a plain TCP app that answers. RSA 2048 leaves of one CA (as
// Trellis's CA and the bench:proxy haproxy make them). Variants run interleaved, round after round,
// so the machine's load hits them alike; the figure is process.cpuUsage() per connection (client,
// server and pipe together), min and median over the rounds.
//
//   before  Node's default key exchange groups (OpenSSL 3.5: X25519MLKEM768 hybrid offered first),
//           getPeerCertificate() on the server
//   after   X25519:P-256 (Envoy's defaults, tlsMaterial.ts ECDH_CURVES), getPeerX509Certificate()
//
// JavaScript (not TypeScript) so that it runs under --lite-mode, which has no WebAssembly for type
// stripping:  node_modules/node/bin/node [--lite-mode] packages/gateway/bench/tlsHop.mjs [rounds]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

const ROUNDS = Number(process.argv[2] ?? 10);
const PER_ROUND = 150;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-tlshop-'));
const openssl = (args) => {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
};
openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tlshop CA']);
for (const name of ['server', 'client']) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=URI:spiffe://tlshop.consul/ns/default/dc/dc1/svc/${name}\n`);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
}
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');

const app = net.createServer((s) => {
  s.on('error', () => undefined);
  s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
});
await new Promise((r) => app.listen(0, '127.0.0.1', r));

async function variant(name, ecdhCurve, peer) {
  const base = { ca: [read('ca.pem')], minVersion: 'TLSv1.2', ...(ecdhCurve ? { ecdhCurve } : {}) };
  const server = tls.createServer({ ...base, key: read('server.key'), cert: read('server.pem'), requestCert: true, rejectUnauthorized: true }, (s) => {
    if (peer === 'object') { const c = s.getPeerCertificate(); void c.subjectaltname; void c.serialNumber; }
    else { const c = s.getPeerX509Certificate(); void c?.subjectAltName; void c?.serialNumber; }
    const up = net.connect({ port: app.address().port, host: '127.0.0.1' });
    s.pipe(up);
    up.pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const ctx = tls.createSecureContext({ ...base, key: read('client.key'), cert: read('client.pem') });
  let session;
  let resumed = 0;
  let total = 0;
  const once = () => new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, secureContext: ctx, servername: 'server', checkServerIdentity: () => undefined, session });
    c.on('session', (s) => { session = s; });
    c.once('secureConnect', () => { total++; if (c.isSessionReused()) resumed++; c.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n'); });
    c.on('data', () => undefined);
    c.on('end', () => c.end());
    c.on('close', resolve);
    c.on('error', reject);
  });
  return { name, once, server, samples: [], resumed: () => `${resumed}/${total}` };
}

const variants = [
  await variant('before: default groups, getPeerCertificate()', undefined, 'object'),
  await variant('after: X25519:P-256, getPeerX509Certificate()', 'X25519:P-256', 'x509'),
];
for (const v of variants) for (let i = 0; i < 200; i++) await v.once(); // warm-up (and the first, full handshake)
for (let round = 0; round < ROUNDS; round++) {
  for (const v of variants) {
    const u0 = process.cpuUsage();
    for (let i = 0; i < PER_ROUND; i++) await v.once();
    const u = process.cpuUsage(u0);
    v.samples.push((u.user + u.system) / PER_ROUND);
  }
}
const mode = process.execArgv.join(' ') || '(default: JIT)';
process.stdout.write(`node ${process.version} ${mode}; ${ROUNDS} rounds x ${PER_ROUND} connections per variant; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
for (const v of variants) {
  const s = [...v.samples].sort((a, b) => a - b);
  process.stdout.write(`${v.name.padEnd(48)} min ${s[0].toFixed(0).padStart(5)} us  median ${s[Math.floor(s.length / 2)].toFixed(0).padStart(5)} us CPU per connection; resumed ${v.resumed()}\n`);
  v.server.close();
}
app.close();
fs.rmSync(dir, { recursive: true, force: true });
