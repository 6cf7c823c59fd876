// What Consul puts in a member's serf tags, and how a member looks in `GET /v1/agent/members`.
// Servers find each other by these tags (role=consul, dc, port of the server RPC, expect for
// bootstrap-expect, id, build, vsn): see Consul's agent/consul/server_serf.go (setupSerf) and
// client_serf.go, and agent/metadata/server.go (IsConsulServer) for how they are read back.
import type { MemberState, MemberView } from './core/types.ts';

/** Consul's protocol version tags (what Consul 1.x agents advertise). */
export const CONSUL_PROTOCOL = { vsn: 2, vsnMin: 2, vsnMax: 3, raftVsn: 3 } as const;

export interface ServerTagInput {
  datacenter: string;
  /** Node ID (UUID). */
  nodeId: string;
  /** Server RPC port (Consul's `port` tag: where other servers reach this one's Raft/RPC). */
  serverPort: number;
  /** Version string, e.g. "1.21.0:trellis". */
  build: string;
  /** -bootstrap-expect; 0 for none. */
  bootstrapExpect?: number;
  /** -bootstrap */
  bootstrap?: boolean;
  nonVoter?: boolean;
  useTls?: boolean;
  segment?: string;
  /** The WAN pool port, advertised in the LAN pool (wan_join_port). */
  wanJoinPort?: number;
}

/** Tags of a server agent in its LAN pool (Consul setupSerf). */
export function serverTags(t: ServerTagInput): Record<string, string> {
  const tags: Record<string, string> = {
    role: 'consul',
    dc: t.datacenter,
    segment: t.segment ?? '',
    id: t.nodeId,
    vsn: String(CONSUL_PROTOCOL.vsn),
    vsn_min: String(CONSUL_PROTOCOL.vsnMin),
    vsn_max: String(CONSUL_PROTOCOL.vsnMax),
    raft_vsn: String(CONSUL_PROTOCOL.raftVsn),
    build: t.build,
    port: String(t.serverPort),
    acls: '0',
  };
  if (t.wanJoinPort) tags.wan_join_port = String(t.wanJoinPort);
  if (t.bootstrap) tags.bootstrap = '1';
  if (t.bootstrapExpect) tags.expect = String(t.bootstrapExpect);
  if (t.nonVoter) tags.nonvoter = '1';
  if (t.useTls) tags.use_tls = '1';
  return tags;
}

/** Tags of a client agent (Consul client_serf.go). */
export function clientTags(t: { datacenter: string; nodeId: string; build: string; segment?: string }): Record<string, string> {
  return {
    role: 'node',
    dc: t.datacenter,
    segment: t.segment ?? '',
    id: t.nodeId,
    vsn: String(CONSUL_PROTOCOL.vsn),
    vsn_min: String(CONSUL_PROTOCOL.vsnMin),
    vsn_max: String(CONSUL_PROTOCOL.vsnMax),
    build: t.build,
  };
}

/** A server as its tags describe it (Consul metadata.IsConsulServer), or undefined for a client. */
export interface ServerInfo {
  name: string;
  id: string;
  datacenter: string;
  segment: string;
  /** host:port of the server RPC (the member's address with the `port` tag). */
  rpcAddr: string;
  port: number;
  build: string;
  version: number;
  raftVersion: number;
  bootstrap: boolean;
  expect: number;
  nonVoter: boolean;
  status: MemberState;
}

export function parseServer(m: Pick<MemberView, 'name' | 'addr' | 'tags' | 'state'>): ServerInfo | undefined {
  const t = m.tags;
  if (t.role !== 'consul') return undefined;
  const port = Number(t.port);
  if (!t.dc || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  const expect = t.expect ? Number(t.expect) : 0;
  return {
    name: m.name,
    id: t.id ?? '',
    datacenter: t.dc,
    segment: t.segment ?? '',
    rpcAddr: m.addr.includes(':') ? `[${m.addr}]:${port}` : `${m.addr}:${port}`,
    port,
    build: t.build ?? '',
    version: Number(t.vsn ?? 0) || 0,
    raftVersion: Number(t.raft_vsn ?? 0) || 0,
    bootstrap: t.bootstrap === '1',
    expect: Number.isInteger(expect) && expect > 0 ? expect : 0,
    nonVoter: t.nonvoter === '1',
    status: m.state,
  };
}

/** serf MemberStatus numbers, as `GET /v1/agent/members` shows them. */
export const SERF_STATUS = { none: 0, alive: 1, leaving: 2, left: 3, failed: 4 } as const;

/** One member as `GET /v1/agent/members` shows it (serf.Member's JSON; http's AgentMember is this type). */
export interface AgentMemberRow {
  Name: string;
  Addr: string;
  Port: number;
  Tags: Record<string, string>;
  /** serf's MemberStatus: 0 none, 1 alive, 2 leaving, 3 left, 4 failed. */
  Status: number;
  ProtocolMin: number;
  ProtocolMax: number;
  ProtocolCur: number;
  DelegateMin: number;
  DelegateMax: number;
  DelegateCur: number;
}

/**
 * memberlist and serf protocol versions as Consul 1.x reports them. Trellis speaks its own wire
 * protocol; these numbers exist so that tools reading the Consul API see familiar values.
 */
const PROTOCOL = { ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4 } as const;

/** The serf status of a member: suspect is still alive to serf; a member of ours that is leaving shows leaving. */
export function serfStatus(state: MemberState, leavingInProgress = false): number {
  switch (state) {
    case 'alive':
    case 'suspect':
      return SERF_STATUS.alive;
    case 'left':
      return leavingInProgress ? SERF_STATUS.leaving : SERF_STATUS.left;
    case 'dead':
      return SERF_STATUS.failed;
  }
}

export function memberRow(m: MemberView, leavingInProgress = false): AgentMemberRow {
  return {
    Name: m.name,
    Addr: m.addr,
    Port: m.port,
    Tags: { ...m.tags },
    Status: m.leaveIntent && (m.state === 'alive' || m.state === 'suspect') ? SERF_STATUS.leaving : serfStatus(m.state, leavingInProgress),
    ...PROTOCOL,
  };
}
