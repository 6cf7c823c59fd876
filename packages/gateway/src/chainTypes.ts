// The compiled discovery chain as the agent serves it (GET /v1/discovery-chain/:service, Consul's
// api.CompiledDiscoveryChain): only the fields the proxy reads. The gateway keeps its own copy of
// the shape because it never imports the agent (the layer rule in .dependency-cruiser.cjs).

type Json = Record<string, unknown>;

export interface HeaderModifiers { Add?: Record<string, string> | null; Set?: Record<string, string> | null; Remove?: string[] | null }

export interface RouteDestination {
  Service?: string;
  ServiceSubset?: string;
  PrefixRewrite?: string;
  /** Consul's JSON duration ("5s") or nanoseconds. */
  RequestTimeout?: string | number;
  NumRetries?: number;
  RetryOnConnectFailure?: boolean;
  RetryOnStatusCodes?: number[] | null;
  RequestHeaders?: HeaderModifiers | null;
  ResponseHeaders?: HeaderModifiers | null;
  [k: string]: unknown;
}

export interface ChainRoute { Match?: Json; Destination?: RouteDestination }
export interface ChainSplit { Weight: number; Service?: string; ServiceSubset?: string; RequestHeaders?: HeaderModifiers | null; ResponseHeaders?: HeaderModifiers | null; [k: string]: unknown }

export interface DiscoveryTarget {
  ID: string;
  Service: string;
  ServiceSubset?: string;
  Namespace?: string;
  Datacenter?: string;
  Subset?: { Filter?: string; OnlyPassing?: boolean };
  ConnectTimeout?: string | number;
  SNI?: string;
  /** How a sidecar reaches this target when it is in another datacenter (none|local|remote; {} unset). */
  MeshGateway?: { Mode?: string } | null;
}

export interface DiscoveryRoute { Definition: ChainRoute; NextNode: string }
export interface DiscoverySplit { Definition: ChainSplit; Weight: number; NextNode: string }
export interface DiscoveryResolver {
  ConnectTimeout?: string | number;
  Default?: boolean;
  RequestTimeout?: string | number;
  Target: string;
  Failover?: { Targets: string[] } | null;
}
export interface DiscoveryGraphNode {
  Type: 'router' | 'splitter' | 'resolver';
  Name: string;
  Routes?: DiscoveryRoute[] | null;
  Splits?: DiscoverySplit[] | null;
  Resolver?: DiscoveryResolver | null;
  LoadBalancer?: { Policy?: string; [k: string]: unknown } | null;
}

export interface CompiledDiscoveryChain {
  ServiceName: string;
  Datacenter: string;
  Protocol: string;
  StartNode: string;
  Nodes: Record<string, DiscoveryGraphNode>;
  Targets: Record<string, DiscoveryTarget>;
}

/** The agent's answer: {"Chain": {...}}. */
export interface DiscoveryChainResponse { Chain: CompiledDiscoveryChain }

export const HTTP_PROTOCOLS = new Set(['http', 'http2', 'grpc']);
