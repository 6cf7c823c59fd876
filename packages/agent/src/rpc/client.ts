// Calls to other servers' RPC services: one gRPC channel per address, reused by every call.
//
// Before a call is sent, the channel must be connected (waitForReady within the call's deadline). A
// call that fails before that point certainly never reached the server, and the error says so
// (RpcCallError.mayHaveArrived = false): the forwarding code may retry it elsewhere. A call that
// fails after it was sent may or may not have been executed.
import * as grpc from '@grpc/grpc-js';
// The subpath, not the package: client agents use this module and need none of Raft.
import { boundTarget } from '@trellis/raft/localAddress';
import type { Logger } from '../logger.ts';
import { serverProto, type RpcMethod, type RpcRequest, type RpcResponse } from './proto.ts';
import { RESTORE_CHUNK_BYTES, MAX_RPC_MESSAGE_BYTES } from './server.ts';
import { RemoteError, RpcCallError, fromServiceError } from './errors.ts';
import type { ApplyFrame, ApplyResultFrame } from './proto.ts';

export interface CallOptions {
  /** Absolute deadline (Date.now() based). */
  deadline: number;
  signal?: AbortSignal;
  /** Give up connecting after this long (before the deadline), so a caller can try another server. */
  connectTimeoutMs?: number;
  /**
   * Give up connecting at the first failed attempt instead of retrying until connectTimeoutMs: a
   * mesh gateway that cannot route the server name closes the connection at once, and the caller
   * has another path to try (WAN federation through mesh gateways).
   */
  failFast?: boolean;
}

export interface RpcClientOptions {
  credentials?: grpc.ChannelCredentials;
  logger: Logger;
  /** Source address of the connections (the agent's bind address: Consul dials servers from it).
   *  Absent or unspecified (0.0.0.0, ::): the kernel picks one. */
  localAddress?: string;
  /**
   * The TLS server name (SNI) of every connection, whatever address is dialled: WAN federation
   * through mesh gateways dials a gateway with the remote server's name (<node>.server.<dc>.<domain>),
   * which the gateway routes by. Needs TLS credentials.
   */
  serverNameOverride?: string;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

interface PendingApply {
  resolve: (result: Buffer) => void;
  reject: (err: Error) => void;
}

/** The Forward.ApplyStream call to one address, and the commands waiting for their answers. */
interface ApplyChannel {
  stream: grpc.ClientDuplexStream<ApplyFrame, ApplyResultFrame>;
  /** Fails every pending command with `details` and closes the stream. */
  abandon(details: string): void;
  /** The server accepted the stream (sent its headers): frames written may have been processed. */
  accepted: boolean;
  pending: Map<number, PendingApply>;
}

export class RpcClient {
  readonly #o: RpcClientOptions;
  readonly #channels = new Map<string, { client: grpc.Client; lastUsed: number }>();
  readonly #applyChannels = new Map<string, ApplyChannel>();
  #nextApplyId = 1;
  #closed = false;
  readonly #sweeper: NodeJS.Timeout;

  constructor(o: RpcClientOptions) {
    this.#o = o;
    // Channels to servers that went away are closed after a while (each holds reconnect timers).
    this.#sweeper = setInterval(() => this.#sweep(5 * 60_000), 60_000);
    this.#sweeper.unref();
  }

  /** One unary call. Rejects with RemoteError (the handler's error) or RpcCallError. */
  async call<M extends RpcMethod>(address: string, method: M, req: RpcRequest<M>, opts: CallOptions): Promise<RpcResponse<M>> {
    const def = serverProto().method(method);
    const client = this.#client(address);
    await this.#ready(client, address, opts);
    return new Promise<RpcResponse<M>>((resolve, reject) => {
      const call = client.makeUnaryRequest<RpcRequest<M>, RpcResponse<M>>(
        def.path, def.requestSerialize, def.responseDeserialize, req, new grpc.Metadata(), { deadline: opts.deadline },
        (err, res) => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (err) reject(opts.signal?.aborted ? abortError(opts.signal) : fromServiceError(err, address, true));
          else resolve(res as RpcResponse<M>);
        },
      );
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Forwards one command on the address's ApplyStream (opened on first use, reopened after it
   * breaks). Resolves with the encoded CommandResult (results.ts); rejects like call().
   */
  async apply(address: string, command: Uint8Array, opts: CallOptions): Promise<Buffer> {
    const client = this.#client(address);
    await this.#ready(client, address, opts);
    const ch = this.#applyChannel(address, client);
    const id = this.#nextApplyId++;
    return new Promise<Buffer>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        ch.pending.delete(id);
      };
      // A late answer to an abandoned command is dropped; the command itself may still apply.
      const timer = setTimeout(() => {
        settle();
        reject(new RpcCallError(address, grpc.status.DEADLINE_EXCEEDED, 'no answer before the deadline', true));
      }, Math.max(0, opts.deadline - Date.now()));
      const onAbort = () => { settle(); reject(abortError(opts.signal!)); };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      ch.pending.set(id, {
        resolve: (r) => { settle(); resolve(r); },
        reject: (e) => { settle(); reject(e); },
      });
      ch.stream.write({ id, command: Buffer.from(command.buffer, command.byteOffset, command.byteLength) });
    });
  }

  #applyChannel(address: string, client: grpc.Client): ApplyChannel {
    const existing = this.#applyChannels.get(address);
    if (existing) return existing;
    const def = serverProto().method('Forward.ApplyStream');
    const stream = client.makeBidiStreamRequest<ApplyFrame, ApplyResultFrame>(def.path, def.requestSerialize, def.responseDeserialize, new grpc.Metadata(), {});
    const broken = (code: grpc.status, details: string) => {
      if (this.#applyChannels.get(address) === ch) this.#applyChannels.delete(address);
      const pending = [...ch.pending.values()];
      ch.pending.clear();
      for (const p of pending) p.reject(new RpcCallError(address, code, details, ch.accepted));
    };
    const ch: ApplyChannel = {
      stream, accepted: false, pending: new Map(),
      abandon: (details) => {
        broken(grpc.status.UNAVAILABLE, details);
        stream.cancel();
      },
    };
    this.#applyChannels.set(address, ch);
    stream.on('metadata', () => { ch.accepted = true; });
    stream.on('data', (f: ApplyResultFrame) => {
      const p = ch.pending.get(f.id ?? 0);
      if (!p) return;
      if (f.errorCode) {
        const details: Record<string, string> = {};
        if (f.leaderId) details['leader-id'] = f.leaderId;
        if (f.leaderAddress) details['leader-address'] = f.leaderAddress;
        p.reject(new RemoteError(f.errorCode, f.errorMessage ?? f.errorCode, address, details));
      } else {
        p.resolve(f.result ?? Buffer.alloc(0));
      }
    });
    stream.on('error', (err: grpc.ServiceError) => broken(err.code ?? grpc.status.UNKNOWN, err.details || err.message));
    stream.on('end', () => broken(grpc.status.UNAVAILABLE, 'the server closed the apply stream'));
    return ch;
  }

  /**
   * Fails every forwarded command still waiting for an answer from `address` (it stopped being the
   * leader, or went silent): their outcome is unknown, and the callers learn so now rather than at
   * their deadline. The next command to that address opens a new stream.
   */
  abandonApplies(address: string, details: string): void {
    const ch = this.#applyChannels.get(address);
    if (ch && ch.pending.size > 0) ch.abandon(details);
  }

  /** Uploads a snapshot file to Operator.Restore in chunks. */
  async restore(address: string, data: Uint8Array, opts: CallOptions): Promise<RpcResponse<'Operator.Restore'>> {
    const def = serverProto().method('Operator.Restore');
    const client = this.#client(address);
    await this.#ready(client, address, opts);
    return new Promise((resolve, reject) => {
      const call = client.makeClientStreamRequest<RpcRequest<'Operator.Restore'>, RpcResponse<'Operator.Restore'>>(
        def.path, def.requestSerialize, def.responseDeserialize, new grpc.Metadata(), { deadline: opts.deadline },
        (err, res) => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (err) reject(opts.signal?.aborted ? abortError(opts.signal) : fromServiceError(err, address, true));
          else resolve(res as RpcResponse<'Operator.Restore'>);
        },
      );
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      call.on('error', () => { /* reported through the callback */ });
      const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const pump = async () => {
        for (let off = 0; off < buf.length; off += RESTORE_CHUNK_BYTES) {
          if (!call.write({ data: buf.subarray(off, off + RESTORE_CHUNK_BYTES) })) {
            await new Promise<void>((r) => call.once('drain', r));
          }
        }
        call.end();
      };
      pump().catch(() => call.cancel());
    });
  }

  /** Closes every channel; later calls fail. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const ch of this.#applyChannels.values()) ch.stream.cancel();
    this.#applyChannels.clear();
    for (const { client } of this.#channels.values()) client.close();
    this.#channels.clear();
  }

  #client(address: string): grpc.Client {
    if (this.#closed) throw new RpcCallError(address, grpc.status.CANCELLED, 'the RPC client is closed', false);
    let ch = this.#channels.get(address);
    if (ch === undefined) {
      const bound = boundTarget(address, this.#o.localAddress);
      const client = new grpc.Client(bound.target, this.#o.credentials ?? grpc.credentials.createInsecure(), {
        ...bound.options,
        ...(this.#o.serverNameOverride ? { 'grpc.ssl_target_name_override': this.#o.serverNameOverride, 'grpc.default_authority': this.#o.serverNameOverride } : {}),
        'grpc.max_receive_message_length': MAX_RPC_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_RPC_MESSAGE_BYTES,
        // grpc-js backs off up to 120 s after failures by default; a server that restarts (or a new
        // leader at an old address) must be reachable again within a second or two.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        // A channel stuck on a connection a partition cut must not outlive the heal by long (the
        // leader's autopilot Status calls ride it: a stuck one made a healed server look dead).
        'grpc.keepalive_time_ms': 2_000,
        'grpc.keepalive_timeout_ms': 2_000,
        // Retrying a forwarded write is decided by the caller, who knows whether it is safe.
        'grpc.enable_retries': 0,
      });
      ch = { client, lastUsed: Date.now() };
      this.#channels.set(address, ch);
    }
    ch.lastUsed = Date.now();
    return ch.client;
  }

  /** Resolves once the channel is connected; rejects (as "never sent") otherwise. */
  #ready(client: grpc.Client, address: string, opts: CallOptions): Promise<void> {
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    const state = client.getChannel().getConnectivityState(true);
    if (state === grpc.connectivityState.READY) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(abortError(opts.signal!));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const connectBy = opts.connectTimeoutMs !== undefined ? Math.min(opts.deadline, Date.now() + opts.connectTimeoutMs) : opts.deadline;
      if (opts.failFast) {
        // Follow the state: READY resolves, the first TRANSIENT_FAILURE (or the deadline) rejects.
        const channel = client.getChannel();
        const step = (from: grpc.connectivityState) => {
          channel.watchConnectivityState(from, connectBy, (err) => {
            const now = channel.getConnectivityState(false);
            if (!err && now === grpc.connectivityState.READY) { opts.signal?.removeEventListener('abort', onAbort); resolve(); return; }
            if (err || now === grpc.connectivityState.TRANSIENT_FAILURE || now === grpc.connectivityState.SHUTDOWN) {
              opts.signal?.removeEventListener('abort', onAbort);
              reject(new RpcCallError(address, grpc.status.UNAVAILABLE, `cannot connect: ${err ? err.message : 'the connection failed'}`, false));
              return;
            }
            step(now);
          });
        };
        step(state);
        return;
      }
      client.waitForReady(connectBy, (err) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(new RpcCallError(address, grpc.status.UNAVAILABLE, `cannot connect: ${err.message}`, false));
        else resolve();
      });
    });
  }

  #sweep(idleMs: number): void {
    const now = Date.now();
    for (const [addr, ch] of this.#channels) {
      if (now - ch.lastUsed > idleMs) {
        this.#applyChannels.get(addr)?.stream.cancel();
        this.#applyChannels.delete(addr);
        ch.client.close();
        this.#channels.delete(addr);
      }
    }
  }
}
