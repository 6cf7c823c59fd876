// The JSON shapes the proxy reads from the agent (Consul's api/agent.go, api/connect_ca.go,
// api/health.go): only the fields it uses, as Consul spells them.

export interface LeafCert {
  SerialNumber: string;
  /** The leaf, followed by any intermediates the peer needs to reach a root it trusts. */
  CertPEM: string;
  PrivateKeyPEM: string;
  Service: string;
  ServiceURI: string;
  ValidAfter: string;
  ValidBefore: string;
  ModifyIndex?: number;
}

export interface CARoot {
  ID: string;
  RootCert: string;
  IntermediateCerts?: string[] | null;
  Active: boolean;
}

export interface CARoots {
  ActiveRootID: string;
  TrustDomain: string;
  Roots: CARoot[] | null;
}

export interface Upstream {
  DestinationType?: string;
  DestinationName: string;
  DestinationNamespace?: string;
  Datacenter?: string;
  LocalBindAddress?: string;
  LocalBindPort: number;
  Config?: Record<string, unknown>;
  MeshGateway?: { Mode?: string } | null;
}

export interface ProxyService {
  Kind?: string;
  ID: string;
  Service: string;
  Address?: string;
  Port: number;
  Proxy?: {
    DestinationServiceName: string;
    DestinationServiceID?: string;
    LocalServiceAddress?: string;
    LocalServicePort?: number;
    Upstreams?: Upstream[] | null;
    Config?: Record<string, unknown> | null;
    MeshGateway?: { Mode?: string } | null;
  };
}

export interface ServiceEntry {
  Node: { Node?: string; Address: string; Datacenter?: string };
  Service: { ID: string; Service: string; Address?: string; Port: number; TaggedAddresses?: Record<string, { Address: string; Port: number }> };
}

export interface AuthorizeResult {
  Authorized: boolean;
  Reason: string;
}

/** Who called the public listener: the SPIFFE URI of its certificate, the service it names, the certificate's serial. */
export interface Caller { uri: string; service: string; serial: string }
