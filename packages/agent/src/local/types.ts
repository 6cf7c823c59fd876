// The shapes of what this agent owns: its node and its services as registered (Consul's
// agent/local keeps the same: a NodeService per service, the node from the agent's config).

import type { HealthCheck, Node, NodeService } from '../state/types.ts';

/** The node this agent registers as: a catalog node row without its Raft indexes. */
export type LocalNodeInfo = Omit<Node, 'CreateIndex' | 'ModifyIndex'>;

/**
 * The catalog's rows for one node, as anti-entropy compares them with the local state: a server
 * reads its own replica, a client agent asks a server (Forward.NodeState).
 */
export interface CatalogNodeView {
  node: Node | null;
  services: NodeService[];
  checks: HealthCheck[];
}
