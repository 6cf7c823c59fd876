// The contract between the HTTP API and the rest of the agent. The HTTP layer never reaches past
// this interface: the server wiring (server/, agent.ts) builds one AgentBackend and hands it over.
//
// Writes: every state change is a Command through `apply` (Raft propose → commit → FSM apply on
// every server). Reads: handlers read `store` synchronously; `?consistent` first awaits
// `consistentRead()`, a default-mode read first awaits `defaultRead()`, `?stale` reads at once.

import type { AgentMemberRow } from '../gossip/tags.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Command, CommandResult, StateReader, TxnOp, TxnResponse } from '../state/types.ts';
import type { WatchSet } from '../state/watch.ts';
import type { EventLog, UserEvent } from './events.ts';
import type { ForwardedRequest, ForwardedResponse, Forwarder } from './forward.ts';
import type { LocalState } from '../local/state.ts';
import type { MetricsSink } from './metrics.ts';
import type { IssuedCert } from '../ca/types.ts';
import type { AclBackend } from './aclResolve.ts';

/** The store as the HTTP layer uses it: the query API, fresh watch sets for blocking reads, and
 *  read-only transactions (Consul's Txn.Read, which needs no Raft round). */
export interface HttpStore extends StateReader {
  watchSet(): WatchSet;
  readTxn(ops: readonly TxnOp[]): TxnResponse;
}

export interface RaftStatus {
  /** "<ip>:<server port>" of the leader, '' when none is known. */
  leaderAddr: string;
  knownLeader: boolean;
  /** Time since this server last heard from the leader (0 on the leader). */
  lastContactMs: number;
  /** "<ip>:<server port>" of every voter. */
  peers: string[];
}

/**
 * Session TTL timers live on the leader, outside the state machine (as in Consul: renewing is not a
 * Raft write; only an expiry becomes a `sessionDestroy` command). They follow what the state store
 * applies (server/sessionTimers.ts), so the HTTP layer only forwards renewals.
 */
export interface SessionTimers {
  /**
   * Resets the TTL timer of a live session (`PUT /v1/session/renew/:id`). Rejects with an error
   * whose code is ERR_NOT_LEADER / ERR_NO_LEADER on a server that cannot renew (the HTTP layer maps
   * that to 500 "No cluster leader"). Resolves even for a session without a TTL.
   */
  renew(id: string): void | Promise<void>;
}

/** One gossip member as `GET /v1/agent/members` shows it (serf.Member's JSON); the gossip pool's row type. */
export type AgentMember = AgentMemberRow;

/** The built-in CA on a server (server/connectCA.ts); client agents forward to a server instead. */
export interface ConnectCABackend {
  /** PUT /v1/connect/ca/configuration: may rotate the root. Bad input throws an error with code ERR_BAD_REQUEST. */
  setConfig(input: { Provider?: unknown; Config?: unknown; ForceWithoutCrossSigning?: unknown }): Promise<void>;
  /** Signs an agent's CSR; throws with code ERR_BAD_REQUEST (bad CSR) or ERR_RATE_LIMITED (429). */
  sign(csrPem: string): IssuedCert;
}

export interface AgentBackend {
  /** The local replica, read synchronously. */
  store: HttpStore;
  /**
   * Proposes a command through Raft and resolves with its result once applied locally. Rejects
   * (never with ok:false) when the command could not be committed: errors carry `.code`
   * (ERR_NOT_LEADER / ERR_NO_LEADER → 500 "No cluster leader"; ERR_PROPOSAL_TOO_LARGE → 413).
   */
  apply(cmd: Command): Promise<CommandResult>;
  /** Resolves once the local store reflects everything committed before the call (ReadIndex). */
  consistentRead(signal?: AbortSignal): Promise<void>;
  /**
   * Default-consistency reads (neither ?stale nor ?consistent): resolves once the local store is as
   * current as the leader's own answer would be (on a follower: the leader's commit index, taken
   * under its lease, has been applied here). Rejects with ERR_NO_LEADER / ERR_NOT_LEADER when no
   * leader can vouch for it. Absent (a single server): the local store is the leader's.
   */
  defaultRead?(signal?: AbortSignal): Promise<void>;
  raftStatus(): RaftStatus;
  /** Node name, datacenter, ports, limits (kv_max_value_size, txn_max_req_len), query times, ... */
  config: RuntimeConfig;
  /** Agent-local services and checks (agent/* endpoints). */
  local: LocalState;

  /** Shared metrics sink; the HTTP server creates one when absent. */
  metrics?: MetricsSink;
  /** User events (event/fire, event/list); the HTTP server creates a local ring when absent. */
  events?: EventLog;
  /** Session TTL timers on the leader; without it, renew only checks that the session exists. */
  sessionTimers?: SessionTimers;
  /** Gossip members; without it, agent/members lists this agent alone. */
  members?(): AgentMember[];
  /**
   * `PUT /v1/agent/leave`: leave the cluster gracefully. The HTTP response is sent after this
   * resolves; shutting the process down must be scheduled, not awaited (it closes this server).
   */
  leave?(): Promise<void>;
  /**
   * Client agents: sends a request this agent does not serve (everything but agent/* and event/*)
   * to a server and answers with the server's response (forward.ts). Absent on servers.
   */
  forward?: Forwarder;
  /**
   * A request with ?dc=<another datacenter>: a server sends it to a server of that datacenter
   * (server/wan.ts), a client agent to its own server first. Rejects with "No path to datacenter"
   * when none can be reached. Absent: every other datacenter has no path.
   */
  forwardDc?(dc: string, req: ForwardedRequest, signal: AbortSignal): Promise<ForwardedResponse>;
  /**
   * A secondary datacenter's server with ACLs on: whether a client agent's token lookup
   * (GET /v1/internal/acl/resolve) is the primary's to answer (a global token not replicated here).
   */
  aclResolveInPrimary?(secret: string): boolean;
  /** `GET /v1/catalog/datacenters` (servers: from the WAN pool). Absent: this datacenter alone. */
  datacenters?(): string[];
  /** Servers' WAN pool: `?wan=1` on agent/members, agent/join and agent/force-leave. Absent on client agents. */
  wan?: {
    members(): AgentMember[];
    join(address: string): Promise<number>;
    forceLeave(node: string, prune: boolean): void;
  };
  /** `PUT /v1/agent/join/:address`: joins the LAN pool through that member; resolves with members contacted. */
  join?(address: string): Promise<number>;
  /** `PUT /v1/agent/force-leave/:node`: marks a failed member left (with prune, forgets it at once). */
  forceLeave?(node: string, prune: boolean): Promise<void> | void;
  /**
   * Fires a user event into the datacenter's gossip pool; every agent (this one included) receives
   * it once and stores it when its filters match. Resolves with the event's Lamport time. Without
   * it, events stay on this agent.
   */
  fireEvent?(ev: UserEvent): number;
  /** Servers: the built-in CA. */
  connectCA?: ConnectCABackend;
  /** With acl.enabled: how tokens resolve on this agent (aclResolve.ts). Absent: ACLs are off. */
  acl?: AclBackend;
  /** `PUT /v1/agent/reload`: re-read configuration files. Absent: 500 "reload is not supported". */
  reload?(): Promise<void>;
}
