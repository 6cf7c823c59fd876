// What the DNS server needs from the catalog: the contract between DNS and the state store.
// A server agent implements it synchronously over its local StateStore replica (server/dnsLookup.ts,
// a stale-allowed read, as Consul's DNS interface does with allow_stale); a client agent has no
// replica and asks a server over forwarded HTTP requests (client/dnsLookup.ts), so every method may
// answer now or later. A lookup that throws or rejects is answered SERVFAIL. Tests use a fake.

export interface ServiceInstance {
  /** The node's name, as registered. */
  readonly node: string;
  readonly nodeAddress: string;
  /** The service's own address; '' when it has none (then the node's address is used). */
  readonly serviceAddress: string;
  readonly port: number;
  readonly datacenter: string;
}

export interface NodeInfo {
  readonly node: string;
  /** An IP address, or a host name (answered with a CNAME, as Consul does). */
  readonly address: string;
  readonly datacenter: string;
}

export interface DnsLookup {
  /**
   * Instances of `service` in the local datacenter that pass their health checks (the caller
   * filters: DNS never returns a failing instance), restricted to those carrying `tag` when it is
   * given. Names arrive lower-cased: implementations must match service names and tags
   * case-insensitively, as Consul's catalog indexes do. Must not throw for unknown names: return [].
   */
  serviceInstances(service: string, tag: string | undefined): ServiceInstance[] | Promise<ServiceInstance[]>;
  /** The node named `name` (lower-cased; match case-insensitively), or undefined. */
  node(name: string): NodeInfo | undefined | Promise<NodeInfo | undefined>;
  /** Every datacenter known (local first is not required). */
  datacenters(): string[] | Promise<string[]>;
  /**
   * The same lookups in another datacenter (`<name>.service.<dc>.consul`): a server asks a server
   * of that datacenter over the WAN, a client agent asks its server to. Absent: names in other
   * datacenters are not answered.
   */
  remote?(datacenter: string): Pick<DnsLookup, 'serviceInstances' | 'node'>;
}
