// The shapes of what this agent owns: its node and its services as registered (Consul's
// agent/local keeps the same: a NodeService per service, the node from the agent's config).

import type {
  ConnectProxyConfig, HealthCheck, Node, NodeService, ServiceAddress, ServiceConnect, ServiceKind, Weights,
} from '../state/types.ts';

/** The node this agent registers as. */
export interface LocalNodeInfo {
  Node: string;
  ID: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
}

/** A service as this agent holds it (Consul's NodeService without indexes). */
export interface LocalServiceDef {
  Kind: ServiceKind;
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  TaggedAddresses: Record<string, ServiceAddress>;
  Meta: Record<string, string>;
  Port: number;
  SocketPath?: string;
  Weights: Weights;
  EnableTagOverride: boolean;
  Proxy?: ConnectProxyConfig;
  Connect?: ServiceConnect;
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
