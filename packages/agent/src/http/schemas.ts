// Request body schemas: Consul's request types written as data (see decode.ts). Field names are the
// canonical PascalCase of Consul's structs/api packages; aliases are the snake_case (and older)
// spellings Consul also accepts. Every body is strict, as Consul's decodeBody (lib.DecodeJSON with
// DisallowUnknownFields) is: an unknown field is `Request decode failed: json: unknown field "X"`.
// Only opaque blocks (proxy configuration, check definitions as stored) keep unknown keys.

import type { FieldSpec, Schema } from './decode.ts';

const serviceAddress: Schema = { name: 'ServiceAddress', strict: true, fields: { Address: 'string', Port: 'int' } };
const weights: Schema = { name: 'Weights', strict: true, fields: { Passing: 'int', Warning: 'int' } };

/** api.AgentServiceCheck / structs.CheckType. */
const checkTypeFields: Record<string, FieldSpec> = {
  CheckID: 'string',
  Name: 'string',
  Notes: 'string',
  Status: 'string',
  ScriptArgs: 'stringArray',
  DockerContainerID: 'string',
  Shell: 'string',
  Interval: 'duration',
  Timeout: 'duration',
  TTL: 'duration',
  HTTP: 'string',
  Header: { map: 'stringArray' },
  Method: 'string',
  Body: 'string',
  DisableRedirects: 'bool',
  TCP: 'string',
  TCPUseTLS: 'bool',
  UDP: 'string',
  TLSServerName: 'string',
  TLSSkipVerify: 'bool',
  GRPC: 'string',
  GRPCUseTLS: 'bool',
  H2PING: 'string',
  H2PingUseTLS: 'bool',
  OSService: 'string',
  AliasNode: 'string',
  AliasService: 'string',
  SuccessBeforePassing: 'int',
  FailuresBeforeWarning: 'int',
  FailuresBeforeCritical: 'int',
  DeregisterCriticalServiceAfter: 'duration',
  OutputMaxSize: 'int',
  ProxyHTTP: 'string',
  ProxyGRPC: 'string',
  Namespace: 'string',
  Partition: 'string',
};

const checkTypeAliases: Record<string, string> = {
  ID: 'CheckID',
  check_id: 'CheckID',
  Args: 'ScriptArgs',
  script_args: 'ScriptArgs',
  docker_container_id: 'DockerContainerID',
  tls_server_name: 'TLSServerName',
  tls_skip_verify: 'TLSSkipVerify',
  tcp_use_tls: 'TCPUseTLS',
  grpc_use_tls: 'GRPCUseTLS',
  h2ping_use_tls: 'H2PingUseTLS',
  os_service: 'OSService',
  alias_node: 'AliasNode',
  alias_service: 'AliasService',
  success_before_passing: 'SuccessBeforePassing',
  failures_before_warning: 'FailuresBeforeWarning',
  failures_before_critical: 'FailuresBeforeCritical',
  deregister_critical_service_after: 'DeregisterCriticalServiceAfter',
  output_max_size: 'OutputMaxSize',
  disable_redirects: 'DisableRedirects',
};

export const CheckTypeSchema: Schema = {
  name: 'CheckType',
  strict: true,
  fields: checkTypeFields,
  aliases: checkTypeAliases,
};

/** `PUT /v1/agent/check/register` (api.AgentCheckRegistration / structs.CheckDefinition). */
export const CheckDefinitionSchema: Schema = {
  name: 'CheckDefinition',
  strict: true,
  fields: { ...checkTypeFields, ServiceID: 'string', Token: 'string' },
  aliases: { ...checkTypeAliases, service_id: 'ServiceID' },
};

/** structs.Upstream: one local listener of a proxy (snake_case as Consul's UnmarshalJSON accepts). */
const upstreamSchema: Schema = {
  name: 'Upstream',
  keepUnknown: true,
  fields: {
    DestinationType: 'string',
    DestinationNamespace: 'string',
    DestinationPartition: 'string',
    DestinationPeer: 'string',
    DestinationName: 'string',
    Datacenter: 'string',
    LocalBindAddress: 'string',
    LocalBindPort: 'int',
    LocalBindSocketPath: 'string',
    LocalBindSocketMode: 'string',
    Config: 'any',
    MeshGateway: 'any',
    CentrallyConfigured: 'bool',
  },
  aliases: {
    destination_type: 'DestinationType',
    destination_namespace: 'DestinationNamespace',
    destination_partition: 'DestinationPartition',
    destination_peer: 'DestinationPeer',
    destination_name: 'DestinationName',
    local_bind_address: 'LocalBindAddress',
    local_bind_port: 'LocalBindPort',
    local_bind_socket_path: 'LocalBindSocketPath',
    local_bind_socket_mode: 'LocalBindSocketMode',
    mesh_gateway: 'MeshGateway',
  },
};

/** Opaque proxy configuration: known fields typed, the rest kept as sent. */
const proxySchema: Schema = {
  name: 'ConnectProxyConfig',
  keepUnknown: true,
  fields: {
    DestinationServiceName: 'string',
    DestinationServiceID: 'string',
    LocalServiceAddress: 'string',
    LocalServicePort: 'int',
    LocalServiceSocketPath: 'string',
    Mode: 'string',
    TransparentProxy: 'any',
    Config: 'any',
    Upstreams: { array: { object: upstreamSchema } },
    MeshGateway: 'any',
    Expose: 'any',
    AccessLogs: 'any',
  },
  aliases: {
    destination_service_name: 'DestinationServiceName',
    destination_service_id: 'DestinationServiceID',
    local_service_address: 'LocalServiceAddress',
    local_service_port: 'LocalServicePort',
    local_service_socket_path: 'LocalServiceSocketPath',
    mesh_gateway: 'MeshGateway',
    transparent_proxy: 'TransparentProxy',
    access_logs: 'AccessLogs',
  },
};

const connectSchema: Schema = {
  name: 'ServiceConnect',
  keepUnknown: true,
  fields: { Native: 'bool', SidecarService: 'any' },
  aliases: { sidecar_service: 'SidecarService' },
};

/** `PUT /v1/agent/service/register` (api.AgentServiceRegistration / structs.ServiceDefinition). */
export const ServiceDefinitionSchema: Schema = {
  name: 'ServiceDefinition',
  strict: true,
  fields: {
    Kind: 'string',
    ID: 'string',
    Name: 'string',
    Tags: 'stringArray',
    Address: 'string',
    TaggedAddresses: { map: { object: serviceAddress } },
    Meta: 'stringMap',
    Port: 'int',
    SocketPath: 'string',
    EnableTagOverride: 'bool',
    Weights: { object: weights },
    Check: { object: CheckTypeSchema },
    Checks: { array: { object: CheckTypeSchema } },
    Proxy: { object: proxySchema },
    Connect: { object: connectSchema },
    Token: 'string',
    Namespace: 'string',
    Partition: 'string',
    Locality: 'any',
  },
  aliases: {
    enable_tag_override: 'EnableTagOverride',
    tagged_addresses: 'TaggedAddresses',
    socket_path: 'SocketPath',
  },
};

/** `PUT /v1/agent/check/update/:id`. */
export const CheckUpdateSchema: Schema = {
  name: 'checkUpdate',
  strict: true,
  fields: { Status: 'string', Output: 'string' },
};

/** structs.NodeService, plus the api.AgentService fields the Go client sends in a registration. */
const nodeServiceSchema: Schema = {
  name: 'NodeService',
  strict: true,
  fields: {
    Kind: 'string',
    ID: 'string',
    Service: 'string',
    Tags: 'stringArray',
    Address: 'string',
    TaggedAddresses: { map: { object: serviceAddress } },
    Meta: 'stringMap',
    Port: 'int',
    SocketPath: 'string',
    Weights: { object: weights },
    EnableTagOverride: 'bool',
    Proxy: { object: proxySchema },
    Connect: { object: connectSchema },
    CreateIndex: 'uint',
    ModifyIndex: 'uint',
    ContentHash: 'string',
    Datacenter: 'string',
    PeerName: 'string',
    Locality: 'any',
    LocallyRegisteredAsSidecar: 'bool',
    Namespace: 'string',
    Partition: 'string',
  },
};

/** structs.HealthCheckDefinition as catalog/register and txn accept it (durations as strings or ns). */
const healthCheckDefinitionSchema: Schema = {
  name: 'HealthCheckDefinition',
  keepUnknown: true,
  fields: {
    HTTP: 'string', TLSServerName: 'string', TLSSkipVerify: 'bool', Header: { map: 'stringArray' },
    Method: 'string', Body: 'string', TCP: 'string', UDP: 'string', GRPC: 'string', GRPCUseTLS: 'bool',
    Interval: 'duration', Timeout: 'duration', DeregisterCriticalServiceAfter: 'duration', TTL: 'duration',
    ScriptArgs: 'stringArray', AliasNode: 'string', AliasService: 'string', OSService: 'string', H2PING: 'string',
  },
  aliases: {
    IntervalDuration: 'Interval', TimeoutDuration: 'Timeout',
    DeregisterCriticalServiceAfterDuration: 'DeregisterCriticalServiceAfter',
  },
};

const healthCheckSchema: Schema = {
  name: 'HealthCheck',
  strict: true,
  fields: {
    Node: 'string',
    CheckID: 'string',
    Name: 'string',
    Status: 'string',
    Notes: 'string',
    Output: 'string',
    ServiceID: 'string',
    ServiceName: 'string',
    ServiceTags: 'stringArray',
    Type: 'string',
    Interval: 'string',
    Timeout: 'string',
    ExposedPort: 'int',
    Definition: { object: healthCheckDefinitionSchema },
    CreateIndex: 'uint',
    ModifyIndex: 'uint',
    PeerName: 'string',
    Namespace: 'string',
    Partition: 'string',
  },
  aliases: { ID: 'CheckID' },
};

/** `PUT /v1/catalog/register` (structs.RegisterRequest). */
export const CatalogRegisterSchema: Schema = {
  name: 'RegisterRequest',
  strict: true,
  fields: {
    Datacenter: 'string',
    ID: 'string',
    Node: 'string',
    Address: 'string',
    TaggedAddresses: 'stringMap',
    NodeMeta: 'stringMap',
    Service: { object: nodeServiceSchema },
    Check: { object: healthCheckSchema },
    Checks: { array: { object: healthCheckSchema } },
    SkipNodeUpdate: 'bool',
    Token: 'string',
    PeerName: 'string',
    Locality: 'any',
    Namespace: 'string',
    Partition: 'string',
  },
};

/** `PUT /v1/catalog/deregister` (structs.DeregisterRequest). */
export const CatalogDeregisterSchema: Schema = {
  name: 'DeregisterRequest',
  strict: true,
  fields: {
    Datacenter: 'string',
    Node: 'string',
    ServiceID: 'string',
    CheckID: 'string',
    Token: 'string',
    PeerName: 'string',
    Namespace: 'string',
    Partition: 'string',
  },
};

const serviceCheckSchema: Schema = { name: 'ServiceCheck', strict: true, fields: { ID: 'string', Namespace: 'string' } };

/** `PUT /v1/session/create` (structs.Session). LockDelay is handled separately (Consul's FixupLockDelay). */
export const SessionCreateSchema: Schema = {
  name: 'Session',
  strict: true,
  fields: {
    ID: 'string',
    Name: 'string',
    Node: 'string',
    LockDelay: 'any',
    Behavior: 'string',
    TTL: 'string',
    NodeChecks: 'stringArray',
    ServiceChecks: { array: { object: serviceCheckSchema } },
    Checks: 'stringArray',
    CreateIndex: 'uint',
    ModifyIndex: 'uint',
    Namespace: 'string',
    Partition: 'string',
  },
};

// ---- txn (api.TxnOps) ------------------------------------------------------------------------

const txnKvSchema: Schema = {
  name: 'KVTxnOp',
  strict: true,
  fields: { Verb: 'string', Key: 'string', Value: 'any', Flags: 'uint64', Index: 'uint', Session: 'string', Namespace: 'string', Partition: 'string' },
};
const txnNodeSchema: Schema = {
  name: 'NodeTxnOp',
  strict: true,
  fields: {
    Verb: 'string',
    Node: {
      object: {
        name: 'Node',
        strict: true,
        fields: {
          ID: 'string', Node: 'string', Address: 'string', Datacenter: 'string', TaggedAddresses: 'stringMap',
          Meta: 'stringMap', CreateIndex: 'uint', ModifyIndex: 'uint', Partition: 'string', PeerName: 'string', Locality: 'any',
        },
      },
    },
  },
};
const txnServiceSchema: Schema = {
  name: 'ServiceTxnOp',
  strict: true,
  fields: { Verb: 'string', Node: 'string', Service: { object: nodeServiceSchema } },
};
const txnCheckSchema: Schema = {
  name: 'CheckTxnOp',
  strict: true,
  fields: { Verb: 'string', Check: { object: healthCheckSchema } },
};
const txnSessionSchema: Schema = {
  name: 'SessionTxnOp',
  strict: true,
  fields: { Verb: 'string', Session: { object: SessionCreateSchema } },
};

export const TxnOpSchema: Schema = {
  name: 'TxnOp',
  strict: true,
  fields: {
    KV: { object: txnKvSchema },
    Node: { object: txnNodeSchema },
    Service: { object: txnServiceSchema },
    Check: { object: txnCheckSchema },
    Session: { object: txnSessionSchema },
  },
};
