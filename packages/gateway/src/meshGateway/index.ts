// The mesh gateway's public face (what `trellis connect gateway` and tests use).
export { startMeshGateway, GatewayConfigError, GW as MESH_GATEWAY_METRICS, type MeshGateway, type MeshGatewayOptions } from './meshGateway.ts';
export { peekClientHello, ClientHelloPeeker, type PeekResult, type HelloRefusal } from './clientHello.ts';
export { parseMeshSni, type MeshName } from './sniNames.ts';
