// The shapes of what this agent owns: its node and its services as registered (Consul's
// agent/local keeps the same: a NodeService per service, the node from the agent's config).

import type { HealthCheck, Node, NodeService } from '../state/types.ts';

/** The node this agent registers as. */
export interface LocalNodeInfo {
  Node: string;
  ID: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
}

/**
 * The catalog's rows for one node, as anti-entropy compares them with the local state: a server
 * reads its own replica, a client agent asks a server (Forward.NodeState).
 */
export interface CatalogNodeView {
  node: Node | null;
  services: NodeService[];
  checks: HealthCheck[];
}
