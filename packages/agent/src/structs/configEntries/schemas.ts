// The fields of each config entry kind Trellis stores, in Consul's struct order with its PascalCase
// names (agent/structs/config_entry*.go, api/config_entry*.go). Fields Consul answers even when
// empty (no omitempty on the Go field) carry `always`.

import type { FieldSchema, ObjectSchema } from './decode.ts';

const obj = (object: ObjectSchema): FieldSchema => ({ object });
const list = (item: FieldSchema): FieldSchema => ({ list: item });
const map = (item: FieldSchema): FieldSchema => ({ map: item });

const meshGateway = obj({ Mode: 'string' });
const transparentProxy = obj({ OutboundListenerPort: 'int', DialedDirectly: 'bool' });
const expose = obj({ Checks: 'bool', Paths: list(obj({ ListenerPort: 'int', Path: 'string', LocalPathPort: 'int', Protocol: 'string', ParsedFromCheck: 'bool' })) });
const headerModifiers = obj({ Add: 'stringMap', Set: 'stringMap', Remove: 'strings' });
const httpHeaderMatch = obj({ Name: 'string', Present: 'bool', Exact: 'string', Prefix: 'string', Suffix: 'string', Regex: 'string', Invert: 'bool' });

const upstreamConfig = (named: boolean): FieldSchema => obj({
  ...(named ? { Name: 'string' as const, Peer: 'string' as const } : {}),
  EnvoyListenerJSON: 'string',
  EnvoyClusterJSON: 'string',
  Protocol: 'string',
  ConnectTimeoutMs: 'int',
  Limits: obj({ MaxConnections: 'int', MaxPendingRequests: 'int', MaxConcurrentRequests: 'int' }),
  PassiveHealthCheck: obj({ Interval: 'duration', MaxFailures: 'int', EnforcingConsecutive5xx: 'int', MaxEjectionPercent: 'int', BaseEjectionTime: 'duration' }),
  MeshGateway: meshGateway,
  BalanceOutboundConnections: 'string',
});

const proxyDefaults: ObjectSchema = {
  Name: 'string',
  Config: 'any',
  Mode: 'string',
  TransparentProxy: { type: transparentProxy, always: {} },
  MutualTLSMode: 'string',
  MeshGateway: { type: meshGateway, always: {} },
  Expose: { type: expose, always: {} },
  AccessLogs: 'any',
  EnvoyExtensions: 'any',
  FailoverPolicy: 'any',
  PrioritizeByLocality: 'any',
  Meta: 'stringMap',
};

const serviceDefaults: ObjectSchema = {
  Name: 'string',
  Protocol: { type: 'string', always: '' },
  Mode: 'string',
  TransparentProxy: { type: transparentProxy, always: {} },
  MutualTLSMode: 'string',
  MeshGateway: { type: meshGateway, always: {} },
  Expose: { type: expose, always: {} },
  ExternalSNI: 'string',
  UpstreamConfig: obj({ Overrides: list(upstreamConfig(true)), Defaults: upstreamConfig(false) }),
  Destination: obj({ Addresses: 'strings', Port: 'int' }),
  MaxInboundConnections: 'int',
  LocalConnectTimeoutMs: 'int',
  LocalRequestTimeoutMs: 'int',
  BalanceInboundConnections: 'string',
  RateLimits: 'any',
  EnvoyExtensions: 'any',
  Meta: 'stringMap',
};

const serviceRouter: ObjectSchema = {
  Name: 'string',
  Routes: list(obj({
    Match: obj({
      HTTP: obj({
        PathExact: 'string', PathPrefix: 'string', PathRegex: 'string',
        Header: list(httpHeaderMatch),
        QueryParam: list(obj({ Name: 'string', Present: 'bool', Exact: 'string', Regex: 'string' })),
        Methods: 'strings',
      }),
    }),
    Destination: obj({
      Service: 'string', ServiceSubset: 'string', Namespace: 'string', Partition: 'string', PrefixRewrite: 'string',
      RequestTimeout: 'duration', IdleTimeout: 'duration', NumRetries: 'int', RetryOnConnectFailure: 'bool',
      RetryOn: 'strings', RetryOnStatusCodes: 'ints', RequestHeaders: headerModifiers, ResponseHeaders: headerModifiers,
    }),
  })),
  Meta: 'stringMap',
};

const serviceSplitter: ObjectSchema = {
  Name: 'string',
  Splits: list(obj({
    Weight: 'number', Service: 'string', ServiceSubset: 'string', Namespace: 'string', Partition: 'string',
    RequestHeaders: headerModifiers, ResponseHeaders: headerModifiers,
  })),
  Meta: 'stringMap',
};

const failoverTarget = obj({ Service: 'string', ServiceSubset: 'string', Partition: 'string', Namespace: 'string', Datacenter: 'string', Peer: 'string' });

const serviceResolver: ObjectSchema = {
  Name: 'string',
  DefaultSubset: 'string',
  Subsets: map(obj({ Filter: 'string', OnlyPassing: 'bool' })),
  Redirect: obj({ Service: 'string', ServiceSubset: 'string', Namespace: 'string', Partition: 'string', Datacenter: 'string', Peer: 'string', SamenessGroup: 'string' }),
  Failover: map(obj({
    Service: 'string', ServiceSubset: 'string', Namespace: 'string', Datacenters: 'strings', Targets: list(failoverTarget),
    Policy: obj({ Mode: 'string', Regions: 'strings' }), SamenessGroup: 'string',
  })),
  ConnectTimeout: 'duration',
  RequestTimeout: 'duration',
  PrioritizeByLocality: 'any',
  LoadBalancer: obj({
    Policy: 'string',
    RingHashConfig: obj({ MinimumRingSize: 'int', MaximumRingSize: 'int' }),
    LeastRequestConfig: obj({ ChoiceCount: 'int' }),
    HashPolicies: list(obj({ Field: 'string', FieldValue: 'string', CookieConfig: obj({ Session: 'bool', TTL: 'duration', Path: 'string' }), SourceIP: 'bool', Terminal: 'bool' })),
  }),
  Meta: 'stringMap',
};

const intentionPermission = obj({
  Action: 'string',
  HTTP: obj({ PathExact: 'string', PathPrefix: 'string', PathRegex: 'string', Header: list(httpHeaderMatch), Methods: 'strings' }),
  JWT: 'any',
});

const serviceIntentions: ObjectSchema = {
  Name: 'string',
  Sources: list(obj({
    Name: 'string', Peer: 'string', Partition: 'string', Namespace: 'string', SamenessGroup: 'string',
    Action: 'string', Permissions: list(intentionPermission), Precedence: 'int', LegacyID: 'string',
    Type: 'string', Description: 'string', LegacyMeta: 'stringMap', LegacyCreateTime: 'string', LegacyUpdateTime: 'string',
  })),
  JWT: 'any',
  Meta: 'stringMap',
};

const tlsDirection = obj({ TLSMinVersion: 'string', TLSMaxVersion: 'string', CipherSuites: 'strings' });

const mesh: ObjectSchema = {
  Name: 'string',
  TransparentProxy: { type: obj({ MeshDestinationsOnly: 'bool' }), always: {} },
  AllowEnablingPermissiveMutualTLS: 'bool',
  ValidateClusters: 'bool',
  TLS: obj({ Incoming: tlsDirection, Outgoing: tlsDirection }),
  HTTP: obj({ SanitizeXForwardedClientCert: 'bool', Incoming: 'any' }),
  Peering: obj({ PeerThroughMeshGateways: 'bool' }),
  Meta: 'stringMap',
};

const exportedServices: ObjectSchema = {
  Name: 'string',
  Services: list(obj({ Name: 'string', Namespace: 'string', Consumers: list(obj({ Partition: 'string', Peer: 'string', SamenessGroup: 'string' })) })),
  Meta: 'stringMap',
};

/** The kinds Trellis stores, each with its schema. */
export const KIND_SCHEMAS: Readonly<Record<string, ObjectSchema>> = {
  'proxy-defaults': proxyDefaults,
  'service-defaults': serviceDefaults,
  'service-router': serviceRouter,
  'service-splitter': serviceSplitter,
  'service-resolver': serviceResolver,
  'service-intentions': serviceIntentions,
  mesh,
  'exported-services': exportedServices,
};
