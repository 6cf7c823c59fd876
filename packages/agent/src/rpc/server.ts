// The gRPC server on the server port. It carries the server RPC services of proto/server.proto and,
// registered on the same grpc.Server, the Raft transport (packages/raft GrpcTransport with `server`).
// One port, one TLS configuration, one listener: what Consul's port 8300 multiplexes.
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { helloAlpn } from '../server/wanGossip.ts';
import { countConnsPerClient, type ConnLimiter } from '../http/connLimit.ts';
import type { Logger } from '../logger.ts';
import { serverProto, type RpcMethod, type RpcRequest, type RpcResponse } from './proto.ts';
import { ERROR_CODE_KEY, toServiceError } from './errors.ts';
import type { ApplyFrame, ApplyResultFrame } from './proto.ts';

/** Largest message accepted: Raft batches (4 MiB by default) and restore chunks fit well below. */
export const MAX_RPC_MESSAGE_BYTES = 16 << 20;
/** Snapshot chunks a restore call sends; the whole restore is bounded separately. */
export const RESTORE_CHUNK_BYTES = 1 << 20;

type Unary<M extends RpcMethod> = (req: RpcRequest<M>, signal: AbortSignal) => Promise<RpcResponse<M>> | RpcResponse<M>;

/** What the services do; the server wiring (server/server.ts) implements them. */
export interface RpcHandlers {
  status: Unary<'Status.Status'>;
  apply: Unary<'Forward.Apply'>;
  readIndex: Unary<'Forward.ReadIndex'>;
  renewSession: Unary<'Forward.RenewSession'>;
  http: Unary<'Forward.Http'>;
  nodeState: Unary<'Forward.NodeState'>;
  signIntermediate: Unary<'Forward.SignIntermediate'>;
  addPeer: Unary<'Operator.AddPeer'>;
  removePeer: Unary<'Operator.RemovePeer'>;
  transferLeader: Unary<'Operator.TransferLeader'>;
  autopilotHealth: Unary<'Operator.AutopilotHealth'>;
  /** One forwarded command of an ApplyStream; resolves with the encoded CommandResult (results.ts). */
  applyFrame(command: Buffer): Promise<Buffer>;
  /** The whole uploaded file (at most maxRestoreBytes). */
  restore(data: Buffer, signal: AbortSignal): Promise<RpcResponse<'Operator.Restore'>>;
}

export interface RpcServerOptions {
  /** host:port to bind. */
  listen: string;
  credentials?: grpc.ServerCredentials;
  handlers: RpcHandlers;
  logger: Logger;
  /** Largest snapshot a Restore call may upload. Default 2 GiB. */
  maxRestoreBytes?: number;
  /** Consul's limits.rpc_max_conns_per_client: concurrent connections from one client IP; beyond
   *  it a connection is closed at once (0: no limit). Raft and every agent's RPC share the port. */
  maxConnsPerClient?: number;
}

export class RpcServer {
  readonly grpcServer: grpc.Server;
  readonly #o: RpcServerOptions;
  readonly #log: Logger;
  #port: number | undefined;
  #listener: net.Server | undefined;
  #limiter: ConnLimiter | undefined;
  #divert: { protocols: string[]; handle: (socket: net.Socket) => void } | undefined;

  constructor(o: RpcServerOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.server.rpc' });
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': MAX_RPC_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_RPC_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // Peers' Raft channels ping while idle (keepalive_permit_without_calls); allow it.
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    const proto = serverProto();
    const h = o.handlers;
    this.grpcServer.addService(proto.services.Status, { Status: this.#unary('Status.Status', h.status) });
    this.grpcServer.addService(proto.services.Forward, {
      Apply: this.#unary('Forward.Apply', h.apply),
      ReadIndex: this.#unary('Forward.ReadIndex', h.readIndex),
      RenewSession: this.#unary('Forward.RenewSession', h.renewSession),
      Http: this.#unary('Forward.Http', h.http),
      NodeState: this.#unary('Forward.NodeState', h.nodeState),
      SignIntermediate: this.#unary('Forward.SignIntermediate', h.signIntermediate),
      ApplyStream: (call: grpc.ServerDuplexStream<ApplyFrame, ApplyResultFrame>) => this.#applyStream(call),
    });
    this.grpcServer.addService(proto.services.Operator, {
      AddPeer: this.#unary('Operator.AddPeer', h.addPeer),
      RemovePeer: this.#unary('Operator.RemovePeer', h.removePeer),
      TransferLeader: this.#unary('Operator.TransferLeader', h.transferLeader),
      AutopilotHealth: this.#unary('Operator.AutopilotHealth', h.autopilotHealth),
      Restore: (call: grpc.ServerReadableStream<{ data?: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => this.#restore(call, cb),
    });
  }

  /** The bound port (after bind()). */
  get port(): number {
    if (this.#port === undefined) throw new Error('RpcServer.port read before bind()');
    return this.#port;
  }

  /**
   * Listens on our own socket and hands accepted connections to gRPC (its connection injector), so
   * that connections can be counted per client IP first, which grpc-js's own listener cannot do.
   */
  async bind(): Promise<number> {
    const creds = this.#o.credentials ?? grpc.ServerCredentials.createInsecure();
    const injector = this.grpcServer.createConnectionInjector(creds);
    const listener = net.createServer((socket) => {
      if (this.#limiter?.isRefused(socket)) return;
      const divert = this.#divert;
      if (!divert) {
        injector.injectConnection(socket);
        return;
      }
      this.#peekAlpn(socket, (alpn) => {
        if (alpn.some((p) => divert.protocols.includes(p))) divert.handle(socket);
        else injector.injectConnection(socket);
      });
    });
    this.#limiter = countConnsPerClient(listener, this.#o.maxConnsPerClient ?? 0, (socket, ip) => {
      // Consul's "rejecting RPC conn because rpc_max_conns_per_client exceeded".
      this.#log.debug({ client: ip, limit: this.#o.maxConnsPerClient }, 'server RPC connection refused: too many concurrent connections from this client IP');
      socket.destroy();
    });
    const { host, port } = splitListen(this.#o.listen);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host, port }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      injector.destroy();
      throw Object.assign(new Error(`cannot listen on ${this.#o.listen} for server RPC: ${(err as Error).message}`), { code: 'ERR_RPC_BIND', cause: err });
    }
    listener.on('error', (err) => this.#log.warn({ err }, 'server RPC listener error'));
    this.#listener = listener;
    this.#port = (listener.address() as net.AddressInfo).port;
    this.#log.info({ address: this.#o.listen, port: this.#port, tls: this.#o.credentials !== undefined }, 'server RPC listening');
    return this.#port;
  }

  /**
   * Connections whose TLS ClientHello offers one of `protocols` (ALPN) go to `handle` instead of
   * gRPC (WAN gossip through mesh gateways, server/wanGossip.ts, arrives on this port as Consul's
   * does on its RPC port). Only then is each connection's ClientHello read before gRPC gets it.
   */
  divert(protocols: string[], handle: (socket: net.Socket) => void): void {
    this.#divert = { protocols, handle };
  }

  /** Reads the ClientHello's ALPN list, then puts the bytes back for whoever takes the socket. */
  #peekAlpn(socket: net.Socket, then: (alpn: string[]) => void): void {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { cleanup(); socket.destroy(); }, 10_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
    };
    const onEnd = (): void => cleanup();
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const r = helloAlpn(all);
      if (r === 'more') return;
      cleanup();
      socket.pause();
      socket.unshift(all);
      then(r === 'other' ? [] : r);
    };
    socket.on('data', onData);
    socket.on('error', onEnd);
    socket.on('close', onEnd);
  }

  /** Connections counted for a client IP (tests, metrics). */
  openConnections(ip: string): number {
    return this.#limiter?.open(ip) ?? 0;
  }

  /** Stops accepting calls; gives in-flight calls a moment, then cuts them (peers' Raft streams never end by themselves). */
  async stop(graceMs = 1000): Promise<void> {
    this.#listener?.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, graceMs);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #unary<M extends RpcMethod>(name: M, fn: Unary<M>): grpc.handleUnaryCall<RpcRequest<M>, RpcResponse<M>> {
    return (call, cb) => {
      const ac = new AbortController();
      let answered = false;
      // grpc-js also reports 'cancelled' for calls that ended normally; only a live call is aborted.
      call.on('cancelled', () => { if (!answered) ac.abort(); });
      const answer = (err: grpc.ServiceError | null, res?: RpcResponse<M>) => {
        if (answered) return;
        answered = true;
        if (err) cb(err);
        else cb(null, res);
      };
      Promise.resolve()
        .then(() => fn(call.request, ac.signal))
        .then((res) => answer(null, res), (err: unknown) => {
          this.#log.debug({ method: name, err }, 'server RPC failed');
          answer(toServiceError(err));
        });
    };
  }

  /** Commands forwarded on one long-lived stream: each frame answered by id, in any order. */
  #applyStream(call: grpc.ServerDuplexStream<ApplyFrame, ApplyResultFrame>): void {
    let open = true;
    const done = () => { open = false; };
    call.on('cancelled', done);
    call.on('error', (err: Error) => { done(); this.#log.debug({ err: err.message }, 'apply stream broke off'); });
    call.on('end', () => { done(); call.end(); });
    // Tell the caller the stream is accepted (it counts frames sent before this as never received).
    call.sendMetadata(new grpc.Metadata());
    call.on('data', (frame: ApplyFrame) => {
      const id = frame.id ?? 0;
      this.#o.handlers.applyFrame(frame.command ?? Buffer.alloc(0)).then(
        (result) => { if (open) call.write({ id, result }); },
        (err: unknown) => {
          if (!open) return;
          const e = toServiceError(err);
          call.write({
            id, errorCode: e.metadata.get(ERROR_CODE_KEY)[0] as string, errorMessage: e.details,
            leaderId: (e.metadata.get('trellis-leader-id')[0] as string | undefined) ?? '',
            leaderAddress: (e.metadata.get('trellis-leader-address')[0] as string | undefined) ?? '',
          });
        },
      );
    });
  }

  #restore(call: grpc.ServerReadableStream<{ data?: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>): void {
    const max = this.#o.maxRestoreBytes ?? 2 * 1024 ** 3;
    const ac = new AbortController();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const finish = (err: unknown, res?: unknown) => {
      if (done) return;
      done = true;
      if (err) cb(toServiceError(err));
      else cb(null, res);
    };
    call.on('cancelled', () => { ac.abort(); done = true; });
    call.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'restore upload broke off'));
    call.on('data', (chunk: { data?: Buffer }) => {
      if (done) return;
      const d = chunk.data ?? Buffer.alloc(0);
      bytes += d.length;
      if (bytes > max) {
        finish(Object.assign(new Error(`snapshot exceeds the largest accepted restore (${max} bytes)`), { code: 'ERR_SNAPSHOT_INVALID' }));
        return;
      }
      chunks.push(d);
    });
    call.on('end', () => {
      if (done) return;
      this.#o.handlers.restore(Buffer.concat(chunks, bytes), ac.signal).then((res) => finish(null, res), (err: unknown) => finish(err));
    });
  }
}

/** host and port of a listen address ("10.0.0.1:8300", "[::1]:8300"). */
function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}
