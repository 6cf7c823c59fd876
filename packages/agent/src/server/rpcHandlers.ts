// The server RPC handler table (rpc/server.ts calls these): what this server answers to other
// servers and client agents. Each call a follower forwards runs here on the leader, or is refused
// with NotLeader so the caller looks for the leader again.
import type { StateStore } from '../state/index.ts';
import type { HttpRequestMsg, HttpResponseMsg, StatusResponseMsg } from '../rpc/proto.ts';
import { encodeNodeState, type NodeCatalogState } from '../rpc/results.ts';
import type { RpcHandlers } from '../rpc/server.ts';
import type { Autopilot } from './autopilot.ts';
import type { ServerDiscovery } from './discovery.ts';
import { ServerError } from './errors.ts';
import type { Membership } from './membership.ts';
import type { ServerReads } from './reads.ts';
import type { Snapshots } from './restore.ts';
import type { LeaderSessionTimers, Writes } from './writes.ts';

/** The server's parts the handlers use; built after the RPC server (Raft shares its port). */
export interface ServerParts {
  store: StateStore;
  discovery: ServerDiscovery;
  autopilot: Autopilot;
  writes: Writes;
  reads: ServerReads;
  membership: Membership;
  snapshots: Snapshots;
}

export interface RpcHandlerDeps {
  nodeId: string;
  parts: () => ServerParts;
  statusResponse: () => StatusResponseMsg;
  sessions: () => LeaderSessionTimers | undefined;
  httpHandler: () => ((req: HttpRequestMsg, signal: AbortSignal) => Promise<HttpResponseMsg>) | undefined;
  /** The primary's CA signing a secondary's intermediate (server/connectCA.ts signIntermediate). */
  signIntermediate: () => ((csrPem: string, token: string | undefined) => string) | undefined;
}

export function rpcHandlers(d: RpcHandlerDeps): RpcHandlers {
  const requireLeader = () => d.parts().writes.requireLeader();
  return {
    status: (req) => {
      const c = req.caller;
      if (c?.id && c.raftAddress && c.id !== d.nodeId) {
        d.parts().discovery.observe?.({
          id: c.id, name: c.name ?? '', raftAddr: c.raftAddress, dc: c.datacenter ?? '', expect: c.bootstrapExpect ?? 0,
          bootstrap: c.bootstrap ?? false, version: c.version ?? '',
        });
      }
      return d.statusResponse();
    },
    apply: async (req) => ({ result: await d.parts().writes.forwardedApply(req.command ?? Buffer.alloc(0)) }),
    applyFrame: (command) => d.parts().writes.forwardedApply(command),
    readIndex: async (req, signal) => {
      requireLeader();
      return { index: await d.parts().reads.leaderBarrier(req.consistent ?? false, signal) };
    },
    http: (req, signal) => {
      const handler = d.httpHandler();
      if (!handler) throw new ServerError('ERR_SERVER_STARTING', 'the HTTP API of this server is not running yet');
      return handler(req, signal);
    },
    nodeState: async (req, signal) => {
      const { reads, store } = d.parts();
      await reads.barrier(false, signal);
      const node = req.node ?? '';
      const state: NodeCatalogState = {
        node: store.node(node).value,
        services: store.nodeServices(node).value?.Services ?? [],
        checks: store.nodeChecks(node).value,
      };
      return { json: encodeNodeState(state) };
    },
    signIntermediate: (req) => {
      const sign = d.signIntermediate();
      if (!sign) throw new ServerError('ERR_SERVER_STARTING', 'the CA of this server is not running yet');
      let csr: unknown;
      let token: unknown;
      try {
        ({ CSR: csr, Token: token } = JSON.parse((req.json ?? Buffer.alloc(0)).toString('utf8')) as { CSR?: unknown; Token?: unknown });
      } catch {
        csr = undefined;
      }
      if (typeof csr !== 'string' || csr === '') throw new ServerError('ERR_BAD_REQUEST', 'SignIntermediate needs {"CSR": "<PEM>"}');
      // The secondary's replication token (ACLs on: operator:write is checked by the signer).
      return { json: Buffer.from(JSON.stringify({ CertPEM: sign(csr, typeof token === 'string' ? token : undefined) })) };
    },
    renewSession: (req) => {
      requireLeader();
      const sessions = d.sessions();
      if (!sessions) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
      sessions.renew(req.id ?? '');
      return {};
    },
    addPeer: async (req, signal) => {
      requireLeader();
      if (!req.id || !req.address) throw new ServerError('ERR_BAD_REQUEST', 'adding a peer needs its id and address');
      await d.parts().membership.confChange({ type: req.voter ? 'addVoter' : 'addLearner', node: req.id, address: req.address }, signal);
      return { id: req.id, address: req.address };
    },
    removePeer: (req, signal) => {
      requireLeader();
      return d.parts().membership.removePeerOnLeader({ id: req.id || undefined, address: req.address || undefined }, signal);
    },
    transferLeader: async (req, signal) => {
      requireLeader();
      return { id: await d.parts().membership.transferOnLeader(req.id || undefined, signal) };
    },
    autopilotHealth: () => {
      requireLeader();
      return { json: Buffer.from(JSON.stringify(d.parts().autopilot.health())) };
    },
    restore: (data) => {
      requireLeader();
      return d.parts().snapshots.restoreOnLeader(data);
    },
  };
}
