// @trellis/gateway: the data plane. Talks to the local agent only over its HTTP API.
export { startSidecarProxy, lookupProxyIdForSidecar, resolveProxyConfig, ProxyConfigError, type SidecarProxy, type SidecarProxyOptions } from './sidecarProxy.ts';
export { createLogger, parseLogLevel, silentLogger, LOG_LEVELS, type Logger, type LogLevel } from './log.ts';
export { AgentApi, AgentApiError, parseHttpAddr, watch } from './agentApi.ts';
export { Metrics, M as METRIC_NAMES } from './metrics.ts';
export { parseServiceUri, serviceUri, upstreamSni, type ServiceIdentity } from './spiffe.ts';
export type { CARoots, CARoot, LeafCert, ProxyService, ServiceEntry, Upstream, AuthorizeResult } from './types.ts';
export { startMeshGateway, GatewayConfigError, MESH_GATEWAY_METRICS, type MeshGateway, type MeshGatewayOptions } from './meshGateway/index.ts';
