// Free loopback ports for processes under test. The kernel picks each port (bind to 0), we release
// it and hand the number to the process, which binds it a moment later. Another process can take
// the port in between; AgentProcess detects that ("address already in use" before readiness) and
// starts again on new ports, so the window only costs a retry, never a flaky test.
import net from 'node:net';
import dgram from 'node:dgram';

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
  /** Also require the same port number to be free for UDP (DNS listens on both). */
  udp?: boolean;
  host?: string;
}

/** One port free on `host` (default 127.0.0.1) for TCP, and for UDP too when asked. */
export async function freePort(opts: FreePortOptions = {}): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindTcp(0, host);
    if (handedOut.has(port)) continue;
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
