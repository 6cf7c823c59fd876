// DNS interface: Consul's names (<service>.service.<domain>, <node>.node.<domain>, ...) on UDP and TCP.
export { startDnsServer, DnsConfigError, type DnsServer, type DnsServerOptions, type DnsLogger } from './server.ts';
export type { DnsLookup, ServiceInstance, NodeInfo } from './lookup.ts';
export { resolve, DEFAULT_SOA, RCODE, type ResolveContext, type ResolverConfig, type SoaTimers } from './resolver.ts';
export { parseQueryName, domainLabels, type ParsedName } from './names.ts';
