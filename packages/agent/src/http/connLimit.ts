// Connection limits per client IP, as Consul has them (also used by the server RPC port for
// limits.rpc_max_conns_per_client). On the HTTP API:
//   - limits.http_max_conns_per_client (default 200): concurrent connections from one client IP.
//     Consul (hashicorp/go-connlimit, HTTPConnStateFuncWithDefault429Handler) answers a connection
//     over the limit with a raw "429 Too Many Requests" and closes it before reading a request.
//   - a client that takes too long over its request headers is dropped (Node's headersTimeout, set
//     where the server is created; see headerTimeoutOptions).
// The count is kept per remote IP for the sockets this server accepted; a refused socket is never
// counted and never gets a request through (the request hook checks `isRefused`), even when the
// client had already sent one before the 429 went out.
import type { Server } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';

/** go-connlimit's body, word for word: clients and operators search for it. */
export const TOO_MANY_CONNS_MESSAGE = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';
const TOO_MANY_CONNS_RESPONSE = Buffer.from(
  'HTTP/1.1 429 Too Many Requests\r\n' +
  'Content-Type: text/plain\r\n' +
  `Content-Length: ${Buffer.byteLength(TOO_MANY_CONNS_MESSAGE)}\r\n` +
  'Connection: close\r\n\r\n' +
  TOO_MANY_CONNS_MESSAGE,
);
/** How long a refused client gets to take the 429 before its socket is destroyed (Consul: 10 ms write deadline). */
const REFUSED_LINGER_MS = 1000;

export interface ConnLimiter {
  /** Whether this socket was over the limit (its requests must not run). */
  isRefused(socket: Socket): boolean;
  /** Open connections counted for `ip` (for tests and metrics). */
  open(ip: string): number;
  /** Connections refused since start. */
  readonly refusedTotal: number;
}

/** An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d; count it as a.b.c.d. */
function clientIp(socket: Socket): string | undefined {
  const ip = socket.remoteAddress;
  return ip?.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/**
 * Counts `server`'s connections per client IP and hands each one beyond `maxPerClient` (0 or less:
 * no limit, as in Consul) to `refuse` instead of counting it. Must be installed before the server
 * accepts connections; listeners added later see refused sockets too and must check `isRefused`.
 */
export function countConnsPerClient(server: NetServer, maxPerClient: number, refuse: (socket: Socket, ip: string) => void): ConnLimiter {
  const open = new Map<string, number>();
  const refused = new WeakSet<Socket>();
  let refusedTotal = 0;
  if (maxPerClient > 0) {
    // Prepended: the decision is made before any other listener (the HTTP parser, gRPC) sees the socket.
    server.prependListener('connection', (socket: Socket) => {
      const ip = clientIp(socket);
      if (ip === undefined) return; // already closed
      const n = open.get(ip) ?? 0;
      if (n >= maxPerClient) {
        refused.add(socket);
        refusedTotal++;
        socket.on('error', () => { /* the client may reset first; nothing to do for a refused socket */ });
        refuse(socket, ip);
        return;
      }
      open.set(ip, n + 1);
      socket.once('close', () => {
        const left = (open.get(ip) ?? 1) - 1;
        if (left <= 0) open.delete(ip);
        else open.set(ip, left);
      });
    });
  }
  return {
    isRefused: (socket) => refused.has(socket),
    open: (ip) => open.get(ip) ?? 0,
    get refusedTotal() { return refusedTotal; },
  };
}

/** limits.http_max_conns_per_client: a connection over the limit gets go-connlimit's 429 and is closed. */
export function limitConnsPerClient(server: Server, maxPerClient: number, onRefused?: (ip: string) => void): ConnLimiter {
  return countConnsPerClient(server, maxPerClient, (socket, ip) => {
    onRefused?.(ip);
    socket.end(TOO_MANY_CONNS_RESPONSE, () => socket.destroy());
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  });
}

/**
 * Node http.Server options that drop a client whose request headers are not complete within
 * `timeoutMs` (a slowloris that trickles a header line at a time); 0 or less: Node's defaults. Node
 * checks for expired connections every connectionsCheckingInterval (30 s by default, which would let
 * such a client stay for up to timeout + 30 s), so the check runs at a quarter of the timeout, at
 * most each second. requestTimeout 0 as fastify sets it anyway (Node refuses a headersTimeout above
 * its default 300 s requestTimeout at construction).
 */
export function headerTimeoutOptions(timeoutMs: number): { headersTimeout?: number; connectionsCheckingInterval?: number; requestTimeout?: number } {
  if (!(timeoutMs > 0)) return {};
  return { headersTimeout: timeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4))), requestTimeout: 0 };
}
