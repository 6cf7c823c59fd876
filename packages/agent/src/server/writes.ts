// The write path of a server, and the one rule every leader-only call follows (Consul's
// forwardRPC): run on the leader when this server leads, forward to the leader otherwise, and while
// no leader is known (an election) wait up to rpc_hold_timeout, then "No cluster leader".
//
// A forwarded write is retried on another attempt only when it certainly did not run: the remote
// refused it before proposing (not the leader, transfer in progress) or the call never connected.
// Anything else (a connection lost mid-call, a leader deposed with the entry in flight) has an
// unknown outcome and fails, as in Consul, rather than risk applying a write twice.
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError } from '@trellis/raft';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import { decodeCommand, encodeCommand, isCommandData, restampCommand, type Command, type CommandResult } from '../state/index.ts';
import type { CallOptions, RpcClient } from '../rpc/client.ts';
import { RpcCallError, retryable } from '../rpc/errors.ts';
import { decodeCommandResult, encodeCommandResult } from '../rpc/results.ts';
import { unwrapToken, wrapToken } from '../rpc/tokenFrame.ts';
import type { ChaosPlant } from './chaosPlant.ts';
import { abortError, ServerError } from './errors.ts';
import { NoLeaderError, type RaftServer } from './raftServer.ts';

/** What the session-timer owner offers the server (sessionTimers.ts): renewals, on the leader. */
export interface LeaderSessionTimers {
  renew(id: string): void;
}

export interface WritesOptions {
  config: Pick<RuntimeConfig, 'rpcHoldTimeoutMs'>;
  raft: RaftServer;
  rpcClient: RpcClient;
  logger: Logger;
  /** The server is stopping: nothing waits for a leader any more. */
  stopped: () => boolean;
  /** A planted bug for chaos tests (chaosPlant.ts); undefined in every real agent. */
  plant?: ChaosPlant;
}

export class Writes {
  readonly #o: WritesOptions;
  readonly #log: Logger;
  /** The leader this follower forwards writes to ('' while it leads or knows none). */
  #forwardedTo = '';
  readonly #leaderWaiters = new Set<() => void>();
  /** Calls on the leader that may be re-routed (reads): the address each went to, to end at a leader change. */
  readonly #reroutable = new Map<AbortController, string>();
  /** ACLs on (server/acl.ts): the token this server forwards its writes with (the servers' secret). */
  forwardToken: (() => string) | undefined = undefined;
  /** ACLs on: checks a write forwarded here against the token it came with; throws to refuse it. */
  authorizeForwarded: ((token: string | undefined, command: Buffer) => void | Promise<void>) | undefined = undefined;

  constructor(o: WritesOptions) {
    this.#o = o;
    this.#log = o.logger;
  }

  /**
   * On every leader change: writes forwarded to a leader that is no longer the leader (deposed,
   * crashed, frozen) may never be answered, so they fail now, as "outcome unknown", instead of at
   * their deadline; and calls waiting for a leader look again.
   */
  leaderChanged(isLocal: boolean): void {
    const leaderAddress = this.#o.raft.node.status().leaderAddress;
    if (this.#forwardedTo && this.#forwardedTo !== leaderAddress) {
      this.#o.rpcClient.abandonApplies(this.#forwardedTo, 'the leader changed while the write was in flight; it may or may not have been applied');
    }
    this.#forwardedTo = isLocal ? '' : leaderAddress;
    // Reads (and other calls that change nothing) in flight to a server that is no longer the leader
    // may never be answered (it is cut off, frozen or dead): they end now and run again on the new
    // leader (onLeader), instead of waiting for their deadline or for keepalive to drop the
    // connection. A read is safe to retry anywhere (Consul's canRetry); writes are not (above).
    for (const [ac, address] of this.#reroutable) {
      if (!isLocal && address === leaderAddress) continue;
      this.#reroutable.delete(ac);
      ac.abort(new RpcCallError(address, grpc.status.UNAVAILABLE, 'the leader changed while the call was in flight', true));
    }
    this.wakeWaiters();
  }

  /** Calls waiting for a leader look again (a leader change, or the server stopping). */
  wakeWaiters(): void {
    for (const w of this.#leaderWaiters) w();
  }

  async apply(cmd: Command, signal?: AbortSignal): Promise<CommandResult> {
    const data = encodeCommand(cmd);
    return this.onLeader('apply', { idempotent: false, signal },
      () => this.applyOnLeader(data),
      (address, call) => {
        const token = this.forwardToken?.();
        const wire = token ? wrapToken(token, data) : data;
        return this.#o.rpcClient.apply(address, wire, call).then((r) => decodeCommandResult(r));
      });
  }

  applyOnLeader(data: Uint8Array): Promise<CommandResult> {
    if (this.#o.plant === 'early-ack') {
      // PLANTED BUG (TRELLIS_CHAOS_PLANT=early-ack): a KV write answered "true" once it is in this
      // leader's own log, before a quorum has it or it is applied.
      const type = decodeCommand(data).type;
      if (type === 'kvSet' || type === 'kvCas') {
        this.#o.raft.node.propose(data).catch(() => undefined);
        return Promise.resolve({ ok: true, index: this.#o.raft.node.status().lastIndex, value: true });
      }
    }
    // Session TTL timers follow the store's apply events (sessionTimers.ts), not the commands here.
    return this.#o.raft.node.propose(data);
  }

  /** A command forwarded by another server (Forward.Apply or ApplyStream). */
  async forwardedApply(frame: Buffer): Promise<Buffer> {
    this.requireLeader();
    // The token the write was sent with (rpc/tokenFrame.ts) is checked here and never proposed.
    const { token, command: data } = unwrapToken(frame);
    if (this.authorizeForwarded && isCommandData(data)) await this.authorizeForwarded(token, data);
    // Only state-store commands travel this way; control entries (restore) have their own path.
    if (!isCommandData(data)) throw new ServerError('ERR_BAD_REQUEST', 'a forwarded write must be a state store command');
    // The leader's clock is the state store's (lock-delays), whichever server took the request: a
    // command built on a follower carries the follower's time, so the leader stamps its own. (One
    // built here, the leader, already carries this clock's time.)
    return encodeCommandResult(await this.applyOnLeader(restampCommand(data, Date.now())));
  }

  /** Throws unless this server is the leader (a call forwarded here expects one). */
  requireLeader(): void {
    const raft = this.#o.raft;
    if (!raft.started) throw new ServerError('ERR_SERVER_STARTING', 'this server has not joined a cluster yet');
    const st = raft.node.status();
    if (st.role !== 'leader') throw new NotLeaderError(st.leader, st.leaderAddress);
  }

  /**
   * Runs `local` when this server leads, `remote` on the leader otherwise; while no leader is known,
   * waits for one up to rpc_hold_timeout. See retryable() for which failures are tried again.
   * `reroute` (calls that change nothing, e.g. read barriers): when the leader changes while the
   * call is in flight to the old one, the call's signal aborts with a retryable error and it runs
   * again on the new leader. `remote` must honour `call.signal`.
   */
  async onLeader<T>(what: string, o: { idempotent: boolean; reroute?: boolean; signal?: AbortSignal }, local: () => Promise<T>,
    remote: (address: string, call: CallOptions) => Promise<T>): Promise<T> {
    const raft = this.#o.raft;
    const deadline = Date.now() + this.#o.config.rpcHoldTimeoutMs;
    let last: unknown;
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw abortError(o.signal);
      if (this.#o.stopped()) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
      // Storage failed: neither serve nor wait for a leader; name the disk (raftServer.ts).
      if (raft.failure) throw raft.failure;
      let target = '';
      try {
        if (raft.started) {
          if (raft.node.isLeader()) {
            target = 'local';
            return await local();
          }
          const st = raft.node.status();
          if (st.leader && st.leaderAddress) {
            target = st.leaderAddress;
            const call: CallOptions = { deadline: Math.max(deadline, Date.now() + 1000) + 5000, connectTimeoutMs: 1000, signal: o.signal };
            if (!o.reroute || !o.idempotent) return await remote(st.leaderAddress, call);
            const ac = new AbortController();
            const onAbort = () => ac.abort(o.signal!.reason);
            o.signal?.addEventListener('abort', onAbort, { once: true });
            this.#reroutable.set(ac, st.leaderAddress);
            try {
              return await remote(st.leaderAddress, { ...call, signal: ac.signal });
            } finally {
              this.#reroutable.delete(ac);
              o.signal?.removeEventListener('abort', onAbort);
            }
          }
        }
      } catch (err) {
        if (raft.failure) throw raft.failure;
        if (!retryable(err, o.idempotent)) throw err;
        last = err;
        this.#log.debug({ what, target, attempt, err: (err as Error).message }, 'leader unavailable; retrying');
      }
      if (Date.now() >= deadline) {
        if (last) this.#log.debug({ what, err: (last as Error).message }, 'gave up waiting for a leader');
        throw new NoLeaderError();
      }
      await this.#leaderChangeOr(Math.min(100, deadline - Date.now()), o.signal);
    }
  }

  #leaderChangeOr(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.#leaderWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, ms));
      this.#leaderWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
