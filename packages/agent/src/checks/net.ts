// TCP and UDP checks, as Consul's CheckTCP and CheckUDP.
//   TCP: a connection that opens within the timeout is passing ("TCP connect <addr>: Success");
//        a refused, unreachable or timed-out connect is critical with the error.
//   UDP: an empty datagram is sent to the address. A reply, or no reply within the timeout, is
//        passing ("UDP connect <addr>: Success"); an error (the ICMP port-unreachable a closed port
//        answers with surfaces as ECONNREFUSED) is critical.
// Addresses are Go's host:port ("[::1]:80" for IPv6); a host name is resolved on every run.
import dgram from 'node:dgram';
import net from 'node:net';
import { critical, deadline, errorMessage, passing, type Probe, type ProbeResult, type Timers } from './probe.ts';

/** Go's net.SplitHostPort, with a numeric port. Throws Go's "address ...: ..." error. */
export function splitHostPort(address: string): { host: string; port: number } {
  let host: string;
  let port: string;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) throw new Error(`address ${address}: missing ']' in address`);
    host = address.slice(1, end);
    if (address[end + 1] !== ':') throw new Error(`address ${address}: missing port in address`);
    port = address.slice(end + 2);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) throw new Error(`address ${address}: missing port in address`);
    host = address.slice(0, colon);
    if (host.includes(':')) throw new Error(`address ${address}: too many colons in address`);
    port = address.slice(colon + 1);
  }
  const n = Number(port);
  if (!/^\d+$/.test(port) || n > 65535) throw new Error(`address ${address}: invalid port ${JSON.stringify(port)}`);
  return { host: host === '' ? 'localhost' : host, port: n };
}

export function tcpProbe(address: string, timeoutMs: number, timers: Timers): Probe {
  return (signal) => new Promise<ProbeResult>((resolve) => {
    let target: { host: string; port: number };
    try {
      target = splitHostPort(address);
    } catch (err) {
      resolve(critical(`dial tcp: ${errorMessage(err)}`));
      return;
    }
    const dl = deadline(signal, timeoutMs, timers);
    const socket = net.connect({ host: target.host, port: target.port });
    const finish = (r: ProbeResult): void => {
      dl.clear();
      dl.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(r);
    };
    const onAbort = (): void => finish(critical(`dial tcp ${address}: ${dl.timedOut() ? 'i/o timeout' : 'operation was canceled'}`));
    socket.on('connect', () => finish(passing(`TCP connect ${address}: Success`)));
    socket.on('error', (err) => finish(critical(`dial tcp ${address}: ${err.message}`)));
    if (dl.signal.aborted) onAbort();
    else dl.signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function udpProbe(address: string, timeoutMs: number, timers: Timers): Probe {
  return (signal) => new Promise<ProbeResult>((resolve) => {
    let target: { host: string; port: number };
    try {
      target = splitHostPort(address);
    } catch (err) {
      resolve(critical(`dial udp: ${errorMessage(err)}`));
      return;
    }
    const dl = deadline(signal, timeoutMs, timers);
    const socket = dgram.createSocket(net.isIPv6(target.host) ? 'udp6' : 'udp4');
    const success = passing(`UDP connect ${address}: Success`);
    let closed = false;
    const finish = (r: ProbeResult): void => {
      dl.clear();
      dl.signal.removeEventListener('abort', onAbort);
      if (!closed) {
        closed = true;
        socket.close();
      }
      resolve(r);
    };
    // No answer within the timeout is a success: a UDP service need not reply.
    const onAbort = (): void => finish(dl.timedOut() ? success : critical(`read udp ${address}: operation was canceled`));
    socket.on('message', () => finish(success));
    socket.on('error', (err) => finish(critical(`read udp ${address}: ${err.message}`)));
    socket.connect(target.port, target.host, () => {
      if (closed) return;
      socket.send(Buffer.alloc(0), (err) => {
        if (err) finish(critical(`write udp ${address}: ${err.message}`));
      });
    });
    if (dl.signal.aborted) onAbort();
    else dl.signal.addEventListener('abort', onAbort, { once: true });
  });
}
