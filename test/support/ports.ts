// Free loopback ports for processes under test. A port is drawn at random below the kernel's
// ephemeral range (Linux: 32768–60999) and checked by binding it; the number goes to the process,
// which binds it a moment later. Ports the kernel hands out (bind to 0, and every outgoing
// connection's local port: agents open many) come from the ephemeral range, so they can never take
// one of these in between. Test files run in parallel processes, so a number is also reserved
// across processes (a file per port under the temp dir, created exclusively; reservations expire
// after 10 minutes): two processes never hand out the same port. AgentProcess still detects a lost
// race with anything else ("address already in use" before readiness) and starts again.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import dgram from 'node:dgram';

/** Drawn from [PORT_MIN, PORT_MAX): under the ephemeral range, above well-known services. */
const PORT_MIN = 20_000;
const PORT_MAX = 32_768;

const RESERVATIONS = path.join(os.tmpdir(), 'trellis-test-ports');
const RESERVATION_TTL_MS = 10 * 60_000;

/** Claims `port` for this process against every other test process; false when another holds it. */
export function reservePort(port: number): boolean {
  fs.mkdirSync(RESERVATIONS, { recursive: true });
  const file = path.join(RESERVATIONS, String(port));
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  try {
    if (Date.now() - fs.statSync(file).mtimeMs < RESERVATION_TTL_MS) return false;
    fs.writeFileSync(file, String(process.pid)); // an expired reservation: take it over
    return true;
  } catch {
    return false;
  }
}

/** Ports handed out by this process, never handed out twice (the kernel may offer one again once closed). */
const handedOut = new Set<number>();

function bindTcp(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ port, host, exclusive: true }, () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

function bindUdp(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', (err) => { sock.close(); reject(err); });
    sock.bind({ port, address: host, exclusive: true }, () => sock.close(() => resolve()));
  });
}

export interface FreePortOptions {
  /** Also require the same port number to be free for UDP (DNS and the serf gossip port listen on both). */
  udp?: boolean;
  host?: string;
}

/** One port free on `host` (default 127.0.0.1) for TCP, and for UDP too when asked. */
export async function freePort(opts: FreePortOptions = {}): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN));
    if (handedOut.has(candidate) || !reservePort(candidate)) continue;
    let port: number;
    try {
      port = await bindTcp(candidate, host);
    } catch {
      continue; // in use: draw another
    }
    if (opts.udp) {
      try {
        await bindUdp(port, host);
      } catch {
        continue; // taken for UDP by someone else: ask the kernel for another
      }
    }
    handedOut.add(port);
    return port;
  }
  throw new Error(`could not find a free port on ${host} in 50 attempts`);
}
