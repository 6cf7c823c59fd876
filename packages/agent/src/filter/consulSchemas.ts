// The rows Consul's filterable endpoints return, described for the filter checker. Field names and
// types follow Consul's structs (agent/structs) as their JSON shows them; which endpoint filters
// which row type is Consul's (see its API docs, "Filtering" on each endpoint):
//
//   GET /v1/catalog/nodes                         NodeSchema
//   GET /v1/catalog/service/:service              ServiceNodeSchema
//   GET /v1/catalog/node-services/:node           NodeServiceSchema   (each of .Services)
//   GET /v1/catalog/node/:node                    NodeServiceSchema   (each value of .Services)
//   GET /v1/agent/services                        NodeServiceSchema   (each value of the map)
//   GET /v1/agent/checks                          HealthCheckSchema   (each value of the map)
//   GET /v1/health/node/:node, /checks/:service,
//       /state/:state                             HealthCheckSchema
//   GET /v1/health/service/:service               CheckServiceNodeSchema
//
// Blocks whose contents vary or grow between Consul versions (proxy configuration, check
// definitions) are open: a selector into them is accepted and judged against the data, because
// refusing a filter Consul accepts would break a client, while accepting one it refuses does not.

import type { FieldType, FilterSchema, ObjectType } from './schema.ts';

const stringMap: FieldType = { map: 'string' };
const stringList: FieldType = { list: 'string' };

const meshGateway: ObjectType = { fields: { Mode: 'string' } };

const upstream: ObjectType = {
  open: true,
  fields: {
    DestinationType: 'string',
    DestinationNamespace: 'string',
    DestinationPartition: 'string',
    DestinationPeer: 'string',
    DestinationName: 'string',
    Datacenter: 'string',
    LocalBindAddress: 'string',
    LocalBindPort: 'integer',
    LocalBindSocketPath: 'string',
    LocalBindSocketMode: 'string',
    Config: { map: 'any' },
    MeshGateway: meshGateway,
    CentrallyConfigured: 'boolean',
  },
};

const proxy: ObjectType = {
  open: true,
  fields: {
    DestinationServiceName: 'string',
    DestinationServiceID: 'string',
    LocalServiceAddress: 'string',
    LocalServicePort: 'integer',
    LocalServiceSocketPath: 'string',
    Mode: 'string',
    Config: { map: 'any' },
    Upstreams: { list: upstream },
    MeshGateway: meshGateway,
    TransparentProxy: { open: true, fields: { OutboundListenerPort: 'integer', DialedDirectly: 'boolean' } },
    Expose: {
      open: true,
      fields: {
        Checks: 'boolean',
        Paths: {
          list: {
            fields: { ListenerPort: 'integer', Path: 'string', LocalPathPort: 'integer', Protocol: 'string', ParsedFromCheck: 'boolean' },
          },
        },
      },
    },
  },
};

const connect: ObjectType = { open: true, fields: { Native: 'boolean' } };

const serviceAddress: FieldType = { map: { fields: { Address: 'string', Port: 'integer' } } };

const weights: ObjectType = { fields: { Passing: 'integer', Warning: 'integer' } };

/** structs.Node: a row of GET /v1/catalog/nodes. */
export const NodeSchema: FilterSchema = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  Partition: 'string',
  PeerName: 'string',
  TaggedAddresses: stringMap,
  Meta: stringMap,
};

/** structs.NodeService: an agent's or a node's service. */
export const NodeServiceSchema: FilterSchema = {
  Kind: 'string',
  ID: 'string',
  Service: 'string',
  Tags: stringList,
  Address: 'string',
  TaggedAddresses: serviceAddress,
  Meta: stringMap,
  Port: 'integer',
  SocketPath: 'string',
  Weights: weights,
  EnableTagOverride: 'boolean',
  Proxy: proxy,
  Connect: connect,
  Datacenter: 'string',
  Namespace: 'string',
  Partition: 'string',
  PeerName: 'string',
};

/** structs.ServiceNode: a row of GET /v1/catalog/service/:service. */
export const ServiceNodeSchema: FilterSchema = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  TaggedAddresses: stringMap,
  NodeMeta: stringMap,
  ServiceKind: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: stringList,
  ServiceAddress: 'string',
  ServiceTaggedAddresses: serviceAddress,
  ServiceWeights: weights,
  ServiceMeta: stringMap,
  ServicePort: 'integer',
  ServiceSocketPath: 'string',
  ServiceEnableTagOverride: 'boolean',
  ServiceProxy: proxy,
  ServiceConnect: connect,
  Namespace: 'string',
  Partition: 'string',
  PeerName: 'string',
};

/** structs.HealthCheck: a row of the health/node, health/checks, health/state endpoints. */
export const HealthCheckSchema: FilterSchema = {
  Node: 'string',
  CheckID: 'string',
  Name: 'string',
  Status: 'string',
  Notes: 'string',
  Output: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: stringList,
  Type: 'string',
  ExposedPort: 'integer',
  Interval: 'any',
  Timeout: 'any',
  Definition: { open: true, fields: {} },
  Namespace: 'string',
  Partition: 'string',
  PeerName: 'string',
};

/** structs.CheckServiceNode: a row of GET /v1/health/service/:service. */
export const CheckServiceNodeSchema: FilterSchema = {
  Node: { fields: NodeSchema },
  Service: { fields: NodeServiceSchema },
  Checks: { list: { fields: HealthCheckSchema } },
};
