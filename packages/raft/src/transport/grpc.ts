// Raft over gRPC (@grpc/grpc-js), the transport server agents use between each other (port 8300).
//
// Shape (after etcd's rafthttp: a long-lived stream per peer plus a separate path for snapshots):
// - Every message except snapshots goes to a peer over ONE long-lived client-streaming call that this
//   node opens to it. Nothing waits for an answer: replies come back as ordinary messages on the
//   stream the peer opened towards us. That is AppendEntries pipelining for free, and one stream
//   keeps messages in send order.
// - Messages handed to send() in the same tick are coalesced per peer and written as one Batch frame
//   (up to maxBatchBytes), encoded by the hand-written protobuf codec in codec.ts.
// - A 'snap' message travels on its own InstallSnapshot call, its data cut into chunks, so a large
//   snapshot never blocks heartbeats and never needs one giant gRPC message. The receiver hands it
//   to Raft whole, or not at all.
// - A peer that cannot be reached is retried with jittered exponential backoff; meanwhile its
//   messages are dropped (Raft retransmits) and onUnreachable(peer) is called once per failure
//   episode so the leader can stop pipelining into the void.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Message, NodeId } from '../core/types.ts';
import type { Transport } from './types.ts';
import { TransportError, configError } from './errors.ts';
import { boundTarget } from './localAddress.ts';
import {
  MalformedFrameError, decodeBatch, decodeSnapshotChunk, encodeBatches, encodeSnapshotChunk, encodeSnapshotReceived,
  unencodable, type EncodedFrame,
} from './codec.ts';

/** The subset of pino's API the transport logs through (pass `logger.child({ component: 'raft.transport' })`). */
export interface TransportLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface GrpcTransportCredentials {
  /** PEM of the CA(s) that sign every server's certificate (peers must present one it signed). */
  ca: string | Buffer;
  /** PEM certificate chain of this node, used both as server and as client (mutual TLS). */
  cert: string | Buffer;
  /** PEM private key of `cert`. */
  key: string | Buffer;
  /** Name to verify in peers' certificates instead of the host of their address (e.g. Consul's
   *  `server.<dc>.consul` when peers are dialled by IP). */
  serverName?: string;
}

export interface GrpcTransportOptions {
  id: NodeId;
  /** `host:port` to listen on; port 0 picks a free port (see localAddress()). With `server`, the
   *  address the owner binds (used as the advertised address when `advertise` is absent). */
  listen: string;
  /** `host:port` peers should dial, when it differs from `listen` (NAT, 0.0.0.0 listeners). */
  advertise?: string;
  /** Source address of the connections this node opens to peers (a server's bind address, as Consul
   *  dials from it). Absent or unspecified (0.0.0.0, ::): the kernel picks one per route. */
  localAddress?: string;
  /** A server shared with other RPC services. The transport only registers the Raft service on it
   *  (in the constructor, so the owner can bind afterwards); the owner binds, starts and shuts it
   *  down, and its `grpc.max_receive_message_length` must be at least maxMessageBytes. */
  server?: grpc.Server;
  /** Mutual TLS; plaintext when absent. */
  credentials?: GrpcTransportCredentials;
  logger?: TransportLogger;
  /** Uniform in [0, 1), for backoff jitter. Default Math.random. */
  random?: () => number;
  /** First reconnect delay after a failure. Default 50. */
  backoffInitialMs?: number;
  /** Cap on the reconnect delay. Default 2000. */
  backoffMaxMs?: number;
  /** Target size of one stream write. Default 1 MiB. */
  maxBatchBytes?: number;
  /** Largest single frame sent or accepted; a message that cannot fit is dropped. Default 4 MiB (gRPC's own default). */
  maxMessageBytes?: number;
  /** Encoded bytes waiting for one slow peer's stream before new messages to it are dropped. Default 64 MiB. */
  maxQueuedBytesPerPeer?: number;
  /** Snapshot data bytes per InstallSnapshot chunk. Default 256 KiB. */
  snapshotChunkBytes?: number;
  /** Largest snapshot this node accepts. Default 2 GiB. */
  maxSnapshotBytes?: number;
  /** Incoming snapshots assembled at once (each holds its full size in memory). Default 2. */
  maxConcurrentSnapshots?: number;
  /** Deadline of one InstallSnapshot call. Default 10 minutes. */
  snapshotTimeoutMs?: number;
  /** A new stream the peer has not accepted within this time counts as a failure (a black-holed
   *  address would otherwise hold messages for the OS's connect timeout). Default 5000. */
  connectTimeoutMs?: number;
  /** HTTP/2 keepalive ping interval, which finds peers that vanished without closing. Default 10000. */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered. Default 5000. */
  keepaliveTimeoutMs?: number;
}

/** Counters since construction. Drops are normal under failures (Raft retries); invalid and
 *  malformed counts mean a peer is buggy, hostile or speaks another protocol version. */
export interface GrpcTransportStats {
  /** Messages written to peers' streams (snapshots excluded). */
  sentMessages: number;
  /** Stream writes (each carries one or more messages). */
  sentBatches: number;
  /** Messages handed to the handler (snapshots included). */
  receivedMessages: number;
  droppedUnknownPeer: number;
  /** The peer was in reconnect backoff, or its stream broke with the message queued. */
  droppedPeerDown: number;
  /** The peer's stream was backed up past maxQueuedBytesPerPeer. */
  droppedBackpressure: number;
  /** Encoded message larger than maxMessageBytes, or a value that cannot be encoded. */
  droppedUnencodable: number;
  /** send() or a delivery while the transport was not running. */
  droppedNotRunning: number;
  /** Decoded messages refused: unknown type, missing fields, out-of-range numbers, or addressed to another node. */
  invalidMessages: number;
  /** Frames that were not valid protobuf; the offending call is ended. */
  malformedFrames: number;
  /** Incoming streams opened by peers. */
  acceptedStreams: number;
  /** Outgoing streams that reached their peer. */
  connects: number;
  /** Outgoing streams that failed or broke. */
  connectFailures: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  /** Outgoing snapshots that did not arrive (each reported through onUnreachable). */
  snapshotsFailed: number;
  /** Incoming snapshots refused or broken off. */
  snapshotsRejected: number;
}

const DEFAULTS = {
  backoffInitialMs: 50,
  backoffMaxMs: 2000,
  maxBatchBytes: 1 << 20,
  maxMessageBytes: 4 << 20,
  maxQueuedBytesPerPeer: 64 << 20,
  snapshotChunkBytes: 256 << 10,
  maxSnapshotBytes: 2 * 1024 ** 3,
  maxConcurrentSnapshots: 2,
  snapshotTimeoutMs: 10 * 60_000,
  connectTimeoutMs: 5_000,
  keepaliveTimeMs: 10_000,
  keepaliveTimeoutMs: 5_000,
} as const;

const META_FROM = 'x-trellis-raft-from';
const META_TO = 'x-trellis-raft-to';
const PROTO_PATH = fileURLToPath(new URL('../../proto/raft.proto', import.meta.url));
const EMPTY = Buffer.alloc(0);

const noopLogger: TransportLogger = { debug() {}, info() {}, warn() {}, error() {} };

interface RaftService { definition: grpc.ServiceDefinition; streamPath: string; snapshotPath: string }
let raftService: RaftService | undefined;

/** The service from raft.proto, with frames passed through as Buffers: codec.ts does the encoding,
 *  so the transport knows each frame's exact size and can count and reject bad input itself. */
function loadRaftService(): RaftService {
  if (raftService !== undefined) return raftService;
  const pkg = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, enums: String, defaults: false });
  const svc = pkg['trellis.raft.v1.Raft'] as protoLoader.ServiceDefinition;
  const pass = (b: Buffer): Buffer => b;
  const raw = (m: protoLoader.MethodDefinition<object, object>): grpc.MethodDefinition<Buffer, Buffer> => ({
    path: m.path, requestStream: m.requestStream, responseStream: m.responseStream,
    requestSerialize: pass, requestDeserialize: pass, responseSerialize: pass, responseDeserialize: pass,
  });
  const stream = svc.Stream!;
  const snap = svc.InstallSnapshot!;
  raftService = {
    definition: { Stream: raw(stream), InstallSnapshot: raw(snap) },
    streamPath: stream.path,
    snapshotPath: snap.path,
  };
  return raftService;
}

/** The outgoing side of one peer. */
interface Peer {
  readonly id: NodeId;
  readonly address: string;
  client: grpc.Client | undefined;
  stream: grpc.ClientWritableStream<Buffer> | undefined;
  /** The current stream got the peer's response headers. */
  connected: boolean;
  /** The stream's buffer is full; frames wait in `queue` for 'drain'. */
  blocked: boolean;
  queue: EncodedFrame[];
  queuedBytes: number;
  /** Messages from send() not yet encoded (flushed once per tick). */
  pending: Message[];
  /** Failures in a row; drives the backoff. */
  failures: number;
  /** While now < this, the peer is considered down: no dialling, messages dropped. */
  downUntil: number;
  /** onUnreachable was called in the current failure episode. */
  reported: boolean;
  snapshot: grpc.ClientWritableStream<Buffer> | undefined;
}

/** One call a peer opened to us. Answered exactly once, by whichever comes first: the call's own end,
 *  a protocol error, or stop(). After that its remaining frames are ignored. */
class IncomingCall {
  done = false;
  /** Runs once when the call is over, however it ended (frees what it reserved). */
  cleanup: (() => void) | undefined;
  readonly #cb: grpc.sendUnaryData<Buffer>;
  readonly #registry: Set<IncomingCall>;

  constructor(cb: grpc.sendUnaryData<Buffer>, registry: Set<IncomingCall>) {
    this.#cb = cb;
    this.#registry = registry;
    registry.add(this);
  }

  /** Answers with `code` (and `reply` as the body when OK). */
  finish(code: grpc.status, details: string, reply: Buffer = EMPTY): void {
    if (this.done) return;
    this.#close();
    if (code === grpc.status.OK) this.#cb(null, reply);
    else this.#cb({ code, details, metadata: new grpc.Metadata() });
  }

  /** The call ended without our answer (client cancelled, connection lost, deadline). */
  abandon(): void {
    if (!this.done) this.#close();
  }

  #close(): void {
    this.done = true;
    this.#registry.delete(this);
    const cleanup = this.cleanup;
    this.cleanup = undefined;
    cleanup?.();
  }
}

/**
 * Transport over gRPC. Messages to one peer arrive in send order while its stream holds; a stream
 * that breaks loses what was in flight (Raft retransmits). See the file comment for the design.
 */
export class GrpcTransport implements Transport {
  readonly id: NodeId;
  readonly #o: ResolvedOptions;
  readonly #localAddress: string | undefined;
  readonly #advertise: string | undefined;
  readonly #sharedServer: grpc.Server | undefined;
  readonly #credentials: GrpcTransportCredentials | undefined;
  readonly #log: TransportLogger;
  readonly #random: () => number;
  readonly #service: RaftService;
  #server: grpc.Server | undefined;
  #serviceRegistered = false;
  #boundPort: number | undefined;
  #running = false;
  #starting: Promise<void> | undefined;
  #handler: ((msg: Message) => void) | undefined;
  #onUnreachable: ((peer: NodeId) => void) | undefined;
  #addresses = new Map<NodeId, string>();
  readonly #peers = new Map<NodeId, Peer>();
  readonly #dirty = new Set<Peer>();
  #flushScheduled = false;
  readonly #incoming = new Set<IncomingCall>();
  #incomingSnapshots = 0;
  readonly #stats: GrpcTransportStats = {
    sentMessages: 0, sentBatches: 0, receivedMessages: 0, droppedUnknownPeer: 0, droppedPeerDown: 0,
    droppedBackpressure: 0, droppedUnencodable: 0, droppedNotRunning: 0, invalidMessages: 0, malformedFrames: 0,
    acceptedStreams: 0, connects: 0, connectFailures: 0, snapshotsSent: 0, snapshotsReceived: 0, snapshotsFailed: 0,
    snapshotsRejected: 0,
  };

  constructor(options: GrpcTransportOptions) {
    this.#o = validateOptions(options);
    this.#localAddress = options.localAddress;
    this.id = options.id;
    this.#advertise = options.advertise;
    this.#sharedServer = options.server;
    this.#credentials = options.credentials;
    this.#log = options.logger ?? noopLogger;
    this.#random = options.random ?? Math.random;
    this.#service = loadRaftService();
    if (this.#sharedServer !== undefined) this.#registerOn(this.#sharedServer);
  }

  get stats(): GrpcTransportStats {
    return { ...this.#stats };
  }

  async start(handler: (msg: Message) => void, onUnreachable?: (peer: NodeId) => void): Promise<void> {
    if (this.#running || this.#starting !== undefined) {
      throw new TransportError('ERR_TRANSPORT_STARTED', `grpc transport ${JSON.stringify(this.id)} is already started`);
    }
    this.#starting = this.#listen();
    try {
      await this.#starting;
    } finally {
      this.#starting = undefined;
    }
    this.#handler = handler;
    this.#onUnreachable = onUnreachable;
    this.#running = true;
    this.#log.info({ id: this.id, address: this.localAddress(), tls: this.#credentials !== undefined }, 'raft transport listening');
  }

  async #listen(): Promise<void> {
    if (this.#sharedServer !== undefined) {
      this.#registerOn(this.#sharedServer);
      return;
    }
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.#o.maxMessageBytes,
      'grpc.keepalive_time_ms': this.#o.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': this.#o.keepaliveTimeoutMs,
    });
    this.#registerOn(server);
    try {
      this.#boundPort = await new Promise<number>((resolve, reject) => {
        server.bindAsync(this.#o.listen, this.#serverCredentials(), (err, port) => {
          if (err !== null) reject(new TransportError('ERR_TRANSPORT_BIND', `cannot listen on ${this.#o.listen} for raft: ${err.message}`, { cause: err }));
          else resolve(port);
        });
      });
    } catch (err) {
      server.forceShutdown();
      this.#serviceRegistered = false;
      throw err;
    }
    this.#server = server;
  }

  send(messages: Message[]): void {
    try {
      if (!this.#running) {
        this.#stats.droppedNotRunning += messages.length;
        return;
      }
      for (const msg of messages) this.#route(msg);
      if (this.#dirty.size > 0 && !this.#flushScheduled) {
        this.#flushScheduled = true;
        // Coalesce every send() of this tick into one write per peer (the driver may send per Ready).
        queueMicrotask(() => this.#flush());
      }
    } catch (err) {
      // send() must never throw (transports are lossy by contract); a bug here must still be seen.
      this.#log.error({ err }, 'raft transport send failed; messages dropped');
    }
  }

  setPeers(addresses: Record<NodeId, string>): void {
    const next = new Map(Object.entries(addresses));
    next.delete(this.id);
    for (const [id, peer] of this.#peers) {
      if (next.get(id) !== peer.address) {
        this.#closePeer(peer);
        this.#peers.delete(id);
      }
    }
    this.#addresses = next;
  }

  localAddress(): string {
    if (this.#advertise !== undefined) return this.#advertise;
    if (this.#boundPort === undefined) return this.#o.listen;
    const { host } = splitHostPort(this.#o.listen)!;
    return `${host.includes(':') ? `[${host}]` : host}:${this.#boundPort}`;
  }

  async stop(): Promise<void> {
    // A stop() racing start() waits for it, so the listener it is opening does not outlive stop().
    if (this.#starting !== undefined) await this.#starting.catch(() => { /* start() reports its own failure */ });
    if (!this.#running) return;
    this.#running = false;
    this.#handler = undefined;
    this.#onUnreachable = undefined;
    for (const peer of this.#peers.values()) this.#closePeer(peer);
    this.#peers.clear();
    this.#dirty.clear();
    for (const inc of [...this.#incoming]) inc.finish(grpc.status.UNAVAILABLE, `raft node ${this.id} is stopping`);
    this.#incoming.clear();
    if (this.#sharedServer !== undefined) {
      this.#sharedServer.removeService(this.#service.definition);
      this.#serviceRegistered = false;
    } else if (this.#server !== undefined) {
      // Our own server: nothing else lives on it, and peers' streams never end by themselves.
      this.#server.forceShutdown();
      this.#server = undefined;
      this.#serviceRegistered = false;
      this.#boundPort = undefined;
    }
    this.#log.info({ id: this.id }, 'raft transport stopped');
  }

  // ---------------------------------------------------------------------------------------------
  // Outgoing

  #route(msg: Message): void {
    const bad = unencodable(msg);
    if (bad !== undefined) {
      this.#stats.droppedUnencodable++;
      this.#log.error({ to: msg?.to, type: msg?.type, reason: bad }, 'raft message cannot be sent; dropped (a bug in its producer)');
      return;
    }
    const address = msg.to === this.id ? undefined : this.#addresses.get(msg.to);
    if (address === undefined) {
      this.#stats.droppedUnknownPeer++;
      return;
    }
    let peer = this.#peers.get(msg.to);
    if (peer === undefined) {
      peer = {
        id: msg.to, address, client: undefined, stream: undefined, connected: false, blocked: false, queue: [], queuedBytes: 0,
        pending: [], failures: 0, downUntil: 0, reported: false, snapshot: undefined,
      };
      this.#peers.set(msg.to, peer);
    }
    if (msg.type === 'snap') {
      this.#sendSnapshot(peer, msg);
      return;
    }
    peer.pending.push(msg);
    this.#dirty.add(peer);
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#running) return;
    for (const peer of this.#dirty) {
      const msgs = peer.pending;
      peer.pending = [];
      try {
        this.#flushPeer(peer, msgs);
      } catch (err) {
        this.#log.error({ err, peer: peer.id }, 'raft transport failed to write to peer; messages dropped');
      }
    }
    this.#dirty.clear();
  }

  #flushPeer(peer: Peer, msgs: Message[]): void {
    if (performance.now() < peer.downUntil) {
      this.#stats.droppedPeerDown += msgs.length;
      return;
    }
    const stream = this.#ensureStream(peer);
    for (const frame of encodeBatches(msgs, this.#o.maxBatchBytes)) {
      if (frame.bytes.byteLength > this.#o.maxMessageBytes) {
        // Only a lone message can exceed maxBatchBytes (<= maxMessageBytes); the peer would refuse it.
        this.#stats.droppedUnencodable += frame.count;
        this.#log.warn({ peer: peer.id, bytes: frame.bytes.byteLength, maxMessageBytes: this.#o.maxMessageBytes }, 'raft message larger than maxMessageBytes; dropped');
        continue;
      }
      if (peer.blocked) {
        if (peer.queuedBytes + frame.bytes.byteLength > this.#o.maxQueuedBytesPerPeer) {
          this.#stats.droppedBackpressure += frame.count;
          continue;
        }
        peer.queue.push(frame);
        peer.queuedBytes += frame.bytes.byteLength;
        continue;
      }
      this.#write(peer, stream, frame);
    }
  }

  #write(peer: Peer, stream: grpc.ClientWritableStream<Buffer>, frame: EncodedFrame): void {
    this.#stats.sentBatches++;
    this.#stats.sentMessages += frame.count;
    // false: grpc-js' buffer is full; what follows waits in peer.queue (bounded) until 'drain'.
    if (!stream.write(frame.bytes)) peer.blocked = true;
  }

  #onDrain(peer: Peer, stream: grpc.ClientWritableStream<Buffer>): void {
    if (peer.stream !== stream) return;
    peer.blocked = false;
    while (peer.queue.length > 0 && !peer.blocked) {
      const frame = peer.queue.shift()!;
      peer.queuedBytes -= frame.bytes.byteLength;
      this.#write(peer, stream, frame);
    }
  }

  #ensureClient(peer: Peer): grpc.Client {
    if (peer.client === undefined) {
      const { target, options } = boundTarget(peer.address, this.#localAddress);
      peer.client = new grpc.Client(target, this.#channelCredentials(), { ...this.#channelOptions(), ...options });
    }
    return peer.client;
  }

  #metadata(to: NodeId): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(META_FROM, this.id);
    md.set(META_TO, to);
    return md;
  }

  #ensureStream(peer: Peer): grpc.ClientWritableStream<Buffer> {
    if (peer.stream !== undefined) return peer.stream;
    const client = this.#ensureClient(peer);
    let timer: NodeJS.Timeout | undefined;
    // grpc-js reports a call's end asynchronously, so the callback always sees `stream` assigned.
    const stream: grpc.ClientWritableStream<Buffer> = client.makeClientStreamRequest<Buffer, Buffer>(
      this.#service.streamPath, (b) => b, (b) => b, this.#metadata(peer.id), {},
      (err) => {
        clearTimeout(timer);
        this.#onStreamEnd(peer, stream, err);
      },
    );
    timer = setTimeout(() => {
      if (peer.stream !== stream || peer.connected) return;
      this.#onStreamEnd(peer, stream, { code: grpc.status.DEADLINE_EXCEEDED, details: `no answer within connectTimeoutMs (${this.#o.connectTimeoutMs} ms)` });
      stream.cancel(); // its callback then finds the stream superseded and stays quiet
    }, this.#o.connectTimeoutMs);
    timer.unref();
    stream.on('metadata', () => {
      clearTimeout(timer);
      if (peer.stream !== stream) return;
      peer.connected = true;
      this.#stats.connects++;
      if (peer.failures > 0) this.#log.info({ peer: peer.id, address: peer.address, after: peer.failures }, 'raft peer reachable again');
      peer.failures = 0;
      peer.reported = false;
    });
    stream.on('drain', () => this.#onDrain(peer, stream));
    // Call failures arrive through the callback above; a Writable may still emit 'error' (e.g. a write
    // racing the end of the call), and an unhandled 'error' would crash the process.
    stream.on('error', (err: Error) => this.#log.debug({ peer: peer.id, err: err.message }, 'raft stream error'));
    peer.stream = stream;
    peer.connected = false;
    peer.blocked = false;
    return stream;
  }

  #onStreamEnd(peer: Peer, stream: grpc.ClientWritableStream<Buffer>, err: { code: grpc.status; details: string } | null): void {
    if (peer.stream !== stream) return; // superseded (peer closed or replaced)
    peer.stream = undefined;
    peer.connected = false;
    peer.blocked = false;
    this.#stats.droppedPeerDown += peer.queue.reduce((n, f) => n + f.count, 0);
    peer.queue = [];
    peer.queuedBytes = 0;
    if (!this.#running) return;
    // Any end we did not cause is a failure: the receiver never ends a healthy stream.
    this.#peerFailed(peer, err?.code ?? grpc.status.UNKNOWN, err?.details ?? 'stream closed by peer');
  }

  #peerFailed(peer: Peer, code: grpc.status, details: string): void {
    peer.failures++;
    this.#stats.connectFailures++;
    const base = Math.min(this.#o.backoffMaxMs, this.#o.backoffInitialMs * 2 ** Math.min(peer.failures - 1, 30));
    // Equal jitter: at least half the base, so retries spread out but never hammer.
    const delay = base / 2 + (this.#random() * base) / 2;
    peer.downUntil = performance.now() + delay;
    // A fresh channel for the next attempt: grpc-js channels keep their own (much longer) reconnect
    // backoff after a failure, which would override ours.
    if (peer.client !== undefined && peer.snapshot === undefined) {
      peer.client.close();
      peer.client = undefined;
    }
    const fields = { peer: peer.id, address: peer.address, code: grpc.status[code] ?? code, details, retryInMs: Math.round(delay) };
    if (peer.reported) {
      this.#log.debug(fields, 'raft peer still unreachable');
      return;
    }
    peer.reported = true;
    if (code === grpc.status.FAILED_PRECONDITION) this.#log.warn(fields, 'raft peer address answers as another node; check the configured addresses');
    else this.#log.warn(fields, 'raft peer unreachable');
    this.#reportUnreachable(peer.id);
  }

  #reportUnreachable(peer: NodeId): void {
    const cb = this.#onUnreachable;
    if (cb === undefined) return;
    try {
      cb(peer);
    } catch (err) {
      this.#log.error({ err, peer }, 'onUnreachable callback threw');
    }
  }

  #sendSnapshot(peer: Peer, msg: Message): void {
    const index = msg.snapshot?.meta.index;
    const fail = (why: string, fields: Record<string, unknown> = {}) => {
      this.#stats.snapshotsFailed++;
      this.#log.warn({ peer: peer.id, index, ...fields }, `raft snapshot not delivered: ${why}`);
      // The leader waits on the outcome of a snapshot (etcd's ReportSnapshot): an undelivered one is
      // always reported, not just once per failure episode.
      queueMicrotask(() => { if (this.#running) this.#reportUnreachable(peer.id); });
    };
    if (peer.snapshot !== undefined) return fail('another snapshot to this peer is still in flight');
    if (performance.now() < peer.downUntil) return fail('peer is unreachable');
    const data = msg.snapshot?.data;
    const total = data?.byteLength ?? 0;
    const header: Message = { ...msg, snapshot: { meta: msg.snapshot!.meta } };
    const client = this.#ensureClient(peer);
    let done = false;
    let wake: (() => void) | undefined;
    const call: grpc.ClientWritableStream<Buffer> = client.makeClientStreamRequest<Buffer, Buffer>(
      this.#service.snapshotPath, (b) => b, (b) => b, this.#metadata(peer.id),
      { deadline: Date.now() + this.#o.snapshotTimeoutMs },
      (err) => {
        done = true;
        wake?.();
        // Not ours any more: closePeer() or stop() cancelled it on purpose.
        const current = peer.snapshot === call;
        if (current) peer.snapshot = undefined;
        if (err === null) {
          this.#stats.snapshotsSent++;
          this.#log.info({ peer: peer.id, index, bytes: total }, 'raft snapshot sent');
        } else if (current && this.#running) {
          fail('the transfer broke off', { code: grpc.status[err.code] ?? err.code, details: err.details });
        }
      },
    );
    call.on('error', (err: Error) => this.#log.debug({ peer: peer.id, err: err.message }, 'raft snapshot stream error'));
    peer.snapshot = call;

    const chunk = this.#o.snapshotChunkBytes;
    const drained = () => new Promise<void>((resolve) => {
      wake = resolve;
      call.once('drain', resolve);
    });
    const pump = async (): Promise<void> => {
      const first = data === undefined ? new Uint8Array(0) : data.subarray(0, chunk);
      let ok = call.write(encodeSnapshotChunk({ message: header, totalBytes: total, hasData: data !== undefined, offset: 0, data: first }));
      // Chunks are encoded only as the stream asks for more, so the copies in flight stay bounded by
      // grpc-js' write buffer (16 chunks, 4 MiB at the default size) however large the snapshot.
      for (let off = first.byteLength; off < total; off += chunk) {
        if (!ok) await drained();
        if (done) return;
        ok = call.write(encodeSnapshotChunk({ offset: off, data: data!.subarray(off, off + chunk) }));
      }
      if (!done) call.end();
    };
    pump().catch((err: unknown) => {
      this.#log.error({ err, peer: peer.id }, 'raft snapshot writer failed');
      call.cancel();
    });
  }

  #closePeer(peer: Peer): void {
    const stream = peer.stream;
    peer.stream = undefined;
    stream?.cancel();
    const snap = peer.snapshot;
    peer.snapshot = undefined;
    snap?.cancel();
    peer.client?.close();
    peer.client = undefined;
    peer.queue = [];
    peer.queuedBytes = 0;
    peer.pending = [];
    this.#dirty.delete(peer);
  }

  #channelCredentials(): grpc.ChannelCredentials {
    const c = this.#credentials;
    if (c === undefined) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(toBuffer(c.ca), toBuffer(c.key), toBuffer(c.cert));
  }

  #serverCredentials(): grpc.ServerCredentials {
    const c = this.#credentials;
    if (c === undefined) return grpc.ServerCredentials.createInsecure();
    // true: a client without a certificate signed by our CA is refused during the handshake.
    return grpc.ServerCredentials.createSsl(toBuffer(c.ca), [{ private_key: toBuffer(c.key), cert_chain: toBuffer(c.cert) }], true);
  }

  #channelOptions(): grpc.ChannelOptions {
    const opts: grpc.ChannelOptions = {
      // Our own connection per peer: the global subchannel pool would share a connection (and its
      // backoff state) between transports in one process and outlive close().
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': this.#o.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': this.#o.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': this.#o.backoffInitialMs,
      'grpc.max_reconnect_backoff_ms': this.#o.backoffMaxMs,
      // Transparent retries buffer every message of a stream until it commits; Raft retries itself.
      'grpc.enable_retries': 0,
    };
    const name = this.#credentials?.serverName;
    if (name !== undefined) {
      opts['grpc.ssl_target_name_override'] = name;
      opts['grpc.default_authority'] = name;
    }
    return opts;
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming

  #registerOn(server: grpc.Server): void {
    if (this.#serviceRegistered) return;
    try {
      server.addService(this.#service.definition, {
        Stream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.#acceptStream(call, cb),
        InstallSnapshot: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => this.#acceptSnapshot(call, cb),
      });
    } catch (err) {
      throw new TransportError('ERR_TRANSPORT_CONFIG', `cannot register the raft service on the given server: ${(err as Error).message}`, { cause: err });
    }
    this.#serviceRegistered = true;
  }

  /** Checks common to both RPCs. Returns undefined when the call was refused (and answered). */
  #admit(call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>, what: string): IncomingCall | undefined {
    const inc = new IncomingCall(cb, this.#incoming);
    if (!this.#running) {
      this.#stats.droppedNotRunning++;
      inc.finish(grpc.status.UNAVAILABLE, `raft node ${this.id} is not running`);
      return undefined;
    }
    const to = call.metadata.get(META_TO)[0];
    if (to !== undefined && String(to) !== this.id) {
      inc.finish(grpc.status.FAILED_PRECONDITION, `this is raft node ${JSON.stringify(this.id)}, not ${JSON.stringify(String(to))}`);
      return undefined;
    }
    call.on('cancelled', () => inc.abandon());
    call.on('error', (err: Error) => this.#log.debug({ err: err.message, what }, 'raft incoming call error'));
    return inc;
  }

  #acceptStream(call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
    const inc = this.#admit(call, cb, 'stream');
    if (inc === undefined) return;
    this.#stats.acceptedStreams++;
    const from = String(call.metadata.get(META_FROM)[0] ?? '');
    // Tell the sender now that the stream is up (it would otherwise hear nothing until the end).
    call.sendMetadata(new grpc.Metadata());
    let warned = false;
    call.on('data', (frame: Buffer) => {
      // Once answered (a bad frame, or stop()), nothing more from this stream is trusted.
      if (inc.done || !this.#running) return;
      let batch;
      try {
        batch = decodeBatch(frame);
      } catch (err) {
        this.#stats.malformedFrames++;
        const reason = frameErrorReason(err, this.#log);
        this.#log.warn({ from, peer: call.getPeer(), reason }, 'malformed raft frame; closing the stream');
        inc.finish(grpc.status.INVALID_ARGUMENT, reason);
        return;
      }
      for (const reason of batch.invalid) {
        this.#stats.invalidMessages++;
        if (!warned) { warned = true; this.#log.warn({ from, reason }, 'invalid raft message dropped'); }
        else this.#log.debug({ from, reason }, 'invalid raft message dropped');
      }
      for (const msg of batch.messages) this.#deliver(msg, from);
    });
    call.on('end', () => inc.finish(grpc.status.OK, ''));
  }

  #acceptSnapshot(call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void {
    const inc = this.#admit(call, cb, 'snapshot');
    if (inc === undefined) return;
    const from = String(call.metadata.get(META_FROM)[0] ?? '');
    if (this.#incomingSnapshots >= this.#o.maxConcurrentSnapshots) {
      this.#stats.snapshotsRejected++;
      inc.finish(grpc.status.RESOURCE_EXHAUSTED, `already receiving ${this.#incomingSnapshots} snapshots (maxConcurrentSnapshots)`);
      return;
    }
    this.#incomingSnapshots++;
    let header: Message | undefined;
    let hasData = false;
    let buf: Uint8Array | undefined;
    let received = 0;
    // However the call ends, give back the slot and the assembly buffer.
    inc.cleanup = () => {
      this.#incomingSnapshots--;
      buf = undefined;
    };
    const reject = (code: grpc.status, why: string) => {
      this.#stats.snapshotsRejected++;
      this.#log.warn({ from, index: header?.snapshot?.meta.index, received, reason: why }, 'raft snapshot refused');
      inc.finish(code, why);
    };
    call.on('data', (frame: Buffer) => {
      if (inc.done) return;
      let c;
      try {
        c = decodeSnapshotChunk(frame);
      } catch (err) {
        this.#stats.malformedFrames++;
        return reject(grpc.status.INVALID_ARGUMENT, frameErrorReason(err, this.#log));
      }
      if (header === undefined) {
        if (c.message === undefined) return reject(grpc.status.INVALID_ARGUMENT, 'first snapshot chunk carries no message');
        if ('invalid' in c.message) { this.#stats.invalidMessages++; return reject(grpc.status.INVALID_ARGUMENT, c.message.invalid); }
        if (c.message.type !== 'snap') { this.#stats.invalidMessages++; return reject(grpc.status.INVALID_ARGUMENT, `InstallSnapshot carries a ${c.message.type} message`); }
        if (c.message.to !== this.id) { this.#stats.invalidMessages++; return reject(grpc.status.FAILED_PRECONDITION, `snapshot addressed to ${c.message.to}, this is ${this.id}`); }
        if (c.totalBytes > this.#o.maxSnapshotBytes) {
          return reject(grpc.status.RESOURCE_EXHAUSTED, `snapshot of ${c.totalBytes} bytes exceeds maxSnapshotBytes (${this.#o.maxSnapshotBytes})`);
        }
        header = c.message;
        hasData = c.hasData;
        // The data already exists whole on the sender; holding it whole here is what the Transport
        // contract asks for (deliver whole). maxSnapshotBytes and maxConcurrentSnapshots bound it.
        buf = new Uint8Array(c.totalBytes);
      } else if (c.message !== undefined) {
        return reject(grpc.status.INVALID_ARGUMENT, 'snapshot message repeated after the first chunk');
      }
      if (c.offset !== received) return reject(grpc.status.INVALID_ARGUMENT, `snapshot chunk at offset ${c.offset}, expected ${received}`);
      if (received + c.data.byteLength > buf!.byteLength) {
        return reject(grpc.status.INVALID_ARGUMENT, `snapshot data exceeds its announced ${buf!.byteLength} bytes`);
      }
      buf!.set(c.data, received);
      received += c.data.byteLength;
    });
    call.on('end', () => {
      if (inc.done) return;
      if (header === undefined) return reject(grpc.status.INVALID_ARGUMENT, 'snapshot call ended before its first chunk');
      if (received !== buf!.byteLength) return reject(grpc.status.INVALID_ARGUMENT, `snapshot ended after ${received} of ${buf!.byteLength} bytes`);
      const msg: Message = { ...header, snapshot: { meta: header.snapshot!.meta } };
      if (hasData) msg.snapshot!.data = buf!;
      inc.finish(grpc.status.OK, '', encodeSnapshotReceived(received));
      this.#stats.snapshotsReceived++;
      this.#log.info({ from, index: msg.snapshot!.meta.index, bytes: received }, 'raft snapshot received');
      this.#deliver(msg, from);
    });
  }

  #deliver(msg: Message, streamFrom: string): void {
    if (!this.#running || this.#handler === undefined) {
      this.#stats.droppedNotRunning++;
      return;
    }
    if (msg.to !== this.id) {
      this.#stats.invalidMessages++;
      this.#log.debug({ from: streamFrom, to: msg.to }, 'raft message for another node dropped');
      return;
    }
    this.#stats.receivedMessages++;
    try {
      this.#handler(msg);
    } catch (err) {
      // The contract says handlers never throw; a bug there must not take the stream down with it.
      this.#log.error({ err, from: msg.from, type: msg.type }, 'raft message handler threw');
    }
  }
}

/** A peer's bytes must never crash us: anything the decoder throws ends only that call. An error
 *  other than MalformedFrameError is a decoder bug, logged as such. */
function frameErrorReason(err: unknown, log: TransportLogger): string {
  if (err instanceof MalformedFrameError) return err.message;
  log.error({ err }, 'raft frame decoder failed unexpectedly (bug); treating the frame as malformed');
  return `undecodable raft frame: ${String(err)}`;
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

function splitHostPort(addr: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

type ResolvedOptions = Required<Omit<GrpcTransportOptions, 'server' | 'credentials' | 'logger' | 'advertise' | 'random' | 'localAddress'>>;

function validateOptions(o: GrpcTransportOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw configError('options', o, 'must be an object');
  if (typeof o.id !== 'string' || o.id === '') throw configError('id', o.id, 'must be a non-empty string');
  const listen = typeof o.listen === 'string' ? splitHostPort(o.listen) : undefined;
  if (listen === undefined) throw configError('listen', o.listen, 'must be "host:port" (IPv6 as "[::1]:port"), port 0-65535');
  if (o.advertise !== undefined) {
    const adv = typeof o.advertise === 'string' ? splitHostPort(o.advertise) : undefined;
    if (adv === undefined || adv.port === 0) throw configError('advertise', o.advertise, 'must be "host:port" with a port of 1-65535');
  } else {
    if (listen.host === '0.0.0.0' || listen.host === '::') {
      throw configError('listen', o.listen, 'listens on every interface, so peers cannot dial it: set advertise to a reachable host:port');
    }
    if (o.server !== undefined && listen.port === 0) {
      throw configError('listen', o.listen, 'with a shared server, port 0 is unknown until its owner binds: give the real port or set advertise');
    }
  }
  if (o.credentials !== undefined) {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const v = o.credentials[k];
      if (!(typeof v === 'string' || Buffer.isBuffer(v)) || v.length === 0) throw configError(`credentials.${k}`, v, 'must be non-empty PEM (string or Buffer)');
    }
  }
  if (o.random !== undefined && typeof o.random !== 'function') throw configError('random', o.random, 'must be a function returning [0, 1)');
  if (o.localAddress !== undefined && (typeof o.localAddress !== 'string' || isIP(o.localAddress) === 0)) {
    throw configError('localAddress', o.localAddress, 'must be an IP address (the one outgoing connections leave from)');
  }
  const r: ResolvedOptions = { id: o.id, listen: o.listen, ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw configError(k, v, 'must be a positive integer');
    r[k] = v;
  }
  if (r.backoffMaxMs < r.backoffInitialMs) throw configError('backoffMaxMs', r.backoffMaxMs, `must be >= backoffInitialMs (${r.backoffInitialMs})`);
  if (r.maxBatchBytes > r.maxMessageBytes) throw configError('maxBatchBytes', r.maxBatchBytes, `must be <= maxMessageBytes (${r.maxMessageBytes})`);
  // A chunk frame carries the data plus a little framing; keep it under what receivers accept.
  if (r.snapshotChunkBytes > r.maxMessageBytes - 64 * 1024) {
    throw configError('snapshotChunkBytes', r.snapshotChunkBytes, `must be at most maxMessageBytes - 64 KiB (${r.maxMessageBytes - 64 * 1024})`);
  }
  return r;
}
