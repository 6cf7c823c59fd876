// The DNS server's shell: a UDP socket and a TCP listener on the same port, and TCP framing (a
// 2-byte length prefix per message, RFC 1035 §4.2.2). handler.ts turns one message into its reply
// (decode, resolve, fit to the transport, encode); resolver.ts decides what the answer is.
//
// Hostile input is expected: a datagram that does not decode is answered FORMERR when its header
// is readable and dropped otherwise; a TCP stream that stops making sense is closed. Nothing a
// client sends can throw out of a socket handler.
//
// Answers may take a while (a client agent's lookups go to a server), so queries are answered
// concurrently. On a TCP connection pipelined queries are resolved concurrently but answered in the
// order they arrived (RFC 7766 allows either; in order is what every client handles), and at most
// MAX_TCP_IN_FLIGHT are open per connection: beyond that the server stops reading until answers go
// out. Over UDP at most MAX_UDP_IN_FLIGHT queries are open; datagrams beyond that are dropped (the
// client retries), so a flood cannot queue unbounded work behind a slow catalog.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { createMessageHandler, errorText, type DnsLogger } from './handler.ts';
import type { DnsLookup } from './lookup.ts';
import { domainLabels, isEncodableName } from './names.ts';
import { DEFAULT_SOA, type ResolveContext, type SoaTimers } from './resolver.ts';

export type { DnsLogger };

export interface DnsServerOptions {
  /** Address to bind, e.g. '127.0.0.1' or '::'. */
  readonly host: string;
  /** 0 picks a free port, the same for UDP and TCP. */
  readonly port: number;
  /** Consul's -domain; default 'consul.'. */
  readonly domain?: string;
  readonly datacenter: string;
  /** This agent's node name (a field of every log line, as Consul labels its DNS metrics). */
  readonly nodeName: string;
  readonly lookup: DnsLookup;
  readonly logger?: DnsLogger;
  /** TTL of node and service answers; default 0, Consul's. */
  readonly ttlSeconds?: number;
  /** Consul's dns_config.udp_answer_limit: answers in a non-EDNS UDP response; default 3. */
  readonly udpAnswerLimit?: number;
  /** Consul's dns_config.enable_truncate; default true here (Consul: false), so clients retry over TCP. */
  readonly enableTruncate?: boolean;
  readonly soa?: Partial<SoaTimers>;
  /** Idle TCP connections are closed after this long; default 10 s. */
  readonly tcpIdleTimeoutMs?: number;
  /** Default 1024. */
  readonly maxTcpConnections?: number;
  /** For tests: the shuffle's source and the SOA serial's clock. */
  readonly random?: () => number;
  readonly now?: () => number;
}

export interface DnsServer {
  readonly host: string;
  /** The bound port (UDP and TCP). */
  readonly port: number;
  /** Stops both listeners and closes open TCP connections. Idempotent. */
  close(): Promise<void>;
}

export class DnsConfigError extends Error {
  readonly code = 'ERR_INVALID_DNS_CONFIG';
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'DnsConfigError';
    this.field = field;
  }
}

const silent: DnsLogger = { debug() {}, warn() {}, error() {} };
/** A client that does not read its answers gets disconnected once this much is queued for it. */
const MAX_TCP_PENDING_WRITE_BYTES = 1 << 20;
const PORT_ZERO_ATTEMPTS = 20;
const MAX_TCP_IN_FLIGHT = 32;
const MAX_UDP_IN_FLIGHT = 1024;

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const domain = opts.domain ?? 'consul.';
  validate(opts, domain);
  const log = opts.logger ?? silent;
  const ctx: ResolveContext = {
    config: {
      domain: domainLabels(domain),
      datacenter: opts.datacenter,
      ttlSeconds: opts.ttlSeconds ?? 0,
      soa: { ...DEFAULT_SOA, ...opts.soa },
    },
    lookup: opts.lookup,
    random: opts.random ?? Math.random,
    now: opts.now ?? Date.now,
  };
  const idleMs = opts.tcpIdleTimeoutMs ?? 10_000;

  const handle = createMessageHandler({ ctx, udpAnswerLimit: opts.udpAnswerLimit ?? 3, setTruncated: opts.enableTruncate ?? true, log, nodeName: opts.nodeName });

  const { udp, tcp } = await bindBoth(opts.host, opts.port);
  const connections = new Set<TcpSocket>();
  let closed = false;

  /** handle(), with a failure (which handler.ts is written never to produce) logged as no reply. */
  const answer = async (msg: Buffer, transport: 'udp' | 'tcp', client: string): Promise<Buffer | undefined> => {
    try {
      return await handle(msg, transport, client);
    } catch (err) {
      log.error({ transport, client, error: errorText(err), node: opts.nodeName }, 'DNS request handler failed');
      return undefined;
    }
  };

  let udpInFlight = 0;
  udp.on('message', (msg, rinfo) => {
    const client = `${rinfo.address}:${rinfo.port}`;
    if (udpInFlight >= MAX_UDP_IN_FLIGHT) {
      log.debug({ transport: 'udp', client, inFlight: udpInFlight, node: opts.nodeName }, 'DNS request dropped: too many open');
      return;
    }
    udpInFlight++;
    void answer(msg, 'udp', client).then((reply) => {
      udpInFlight--;
      if (reply === undefined || closed) return;
      udp.send(reply, rinfo.port, rinfo.address, (err) => {
        if (err) log.debug({ transport: 'udp', client, error: errorText(err) }, 'DNS reply not sent');
      });
    });
  });
  udp.on('error', (err) => log.warn({ transport: 'udp', error: errorText(err) }, 'DNS UDP socket error'));

  tcp.maxConnections = opts.maxTcpConnections ?? 1024;
  tcp.on('connection', (sock) => {
    connections.add(sock);
    const client = `${sock.remoteAddress}:${sock.remotePort}`;
    let pending: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    /** The previous query's reply has been written (or the connection is gone): replies go out in order. */
    let written: Promise<void> = Promise.resolve();
    sock.setNoDelay(true);
    sock.setTimeout(idleMs, () => sock.destroy());

    const writeReply = (reply: Buffer | undefined): void => {
      if (sock.destroyed) return;
      if (reply === undefined) {
        sock.destroy(); // framing or content we cannot answer: the stream is no longer trustworthy
        return;
      }
      const framed = Buffer.allocUnsafe(2 + reply.length);
      framed.writeUInt16BE(reply.length, 0);
      reply.copy(framed, 2);
      sock.write(framed);
      if (sock.writableLength > MAX_TCP_PENDING_WRITE_BYTES) {
        log.warn({ transport: 'tcp', client }, 'DNS client is not reading its answers; closing the connection');
        sock.destroy();
      }
    };

    // Several queries may arrive in one read, or one across many (RFC 7766 §6.2.1.1 pipelining).
    const takeQueries = (): void => {
      while (pending.length >= 2 && !sock.destroyed) {
        if (inFlight >= MAX_TCP_IN_FLIGHT) {
          sock.pause(); // resumed when an answer goes out
          return;
        }
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) return;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        inFlight++;
        const reply = len === 0 ? Promise.resolve(undefined) : answer(msg, 'tcp', client);
        written = written.then(async () => {
          writeReply(await reply);
          inFlight--;
          if (sock.isPaused() && !sock.destroyed) {
            sock.resume();
            takeQueries();
          }
        });
      }
    };

    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      takeQueries();
    });
    sock.on('error', (err) => log.debug({ transport: 'tcp', client, error: errorText(err) }, 'DNS TCP connection error'));
    sock.on('close', () => connections.delete(sock));
  });
  tcp.on('error', (err) => log.warn({ transport: 'tcp', error: errorText(err) }, 'DNS TCP listener error'));

  const port = (tcp.address() as { port: number }).port;
  log.debug({ host: opts.host, port, domain, node: opts.nodeName }, 'DNS server listening');

  let closing: Promise<void> | undefined;
  return {
    host: opts.host,
    port,
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        for (const s of connections) s.destroy();
        await Promise.all([
          new Promise<void>((res) => tcp.close(() => res())),
          new Promise<void>((res) => udp.close(() => res())),
        ]);
      })();
      return closing;
    },
  };
}

function validate(opts: DnsServerOptions, domain: string): void {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new DnsConfigError('port', `DNS port ${opts.port} is not valid: use 0 (any free port) to 65535`);
  }
  if (domainLabels(domain).length === 0 || !isEncodableName(domain) || !/^[A-Za-z0-9._-]+$/.test(domain)) {
    throw new DnsConfigError('domain', `DNS domain "${domain}" is not valid: use dot-separated labels of letters, digits and hyphens, like "consul."`);
  }
  if (!opts.datacenter || !/^[A-Za-z0-9_-]+$/.test(opts.datacenter)) {
    throw new DnsConfigError('datacenter', `datacenter "${opts.datacenter}" is not valid for DNS: use letters, digits, "-" and "_"`);
  }
  if (opts.udpAnswerLimit !== undefined && !(Number.isInteger(opts.udpAnswerLimit) && opts.udpAnswerLimit >= 1)) {
    throw new DnsConfigError('udpAnswerLimit', `udp_answer_limit ${opts.udpAnswerLimit} is not valid: use a whole number of at least 1`);
  }
  if (opts.ttlSeconds !== undefined && !(Number.isInteger(opts.ttlSeconds) && opts.ttlSeconds >= 0 && opts.ttlSeconds <= 0x7fffffff)) {
    throw new DnsConfigError('ttlSeconds', `DNS TTL ${opts.ttlSeconds} is not valid: use whole seconds from 0`);
  }
}

/** Binds UDP and TCP on one port; with port 0, retries until both get the same free port. */
async function bindBoth(host: string, port: number): Promise<{ udp: UdpSocket; tcp: TcpServer }> {
  const type = host.includes(':') ? 'udp6' : 'udp4';
  for (let attempt = 1; ; attempt++) {
    const udp = createSocket({ type });
    try {
      await listenUdp(udp, host, port);
    } catch (err) {
      udp.close();
      throw listenError('udp', host, port, err);
    }
    const bound = udp.address().port;
    const tcp = createServer();
    try {
      await listenTcp(tcp, host, bound);
      return { udp, tcp };
    } catch (err) {
      udp.close();
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (port !== 0 || !inUse || attempt >= PORT_ZERO_ATTEMPTS) throw listenError('tcp', host, bound, err);
      // Another process holds TCP on the port the kernel gave our UDP socket: try another.
    }
  }
}

function listenUdp(sock: UdpSocket, host: string, port: number): Promise<void> {
  return new Promise((res, rej) => {
    sock.once('error', rej);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', rej);
      res();
    });
  });
}

function listenTcp(server: TcpServer, host: string, port: number): Promise<void> {
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', rej);
      res();
    });
  });
}

function listenError(transport: string, host: string, port: number, err: unknown): Error {
  const e = new Error(`DNS server could not listen on ${host}:${port}/${transport}: ${errorText(err)}`) as Error & { code?: string };
  e.code = (err as NodeJS.ErrnoException).code ?? 'ERR_DNS_LISTEN';
  return e;
}

