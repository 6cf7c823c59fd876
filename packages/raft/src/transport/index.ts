export type { Transport } from './types.ts';
export { TransportError, type TransportErrorCode } from './errors.ts';
export {
  MemoryNetwork, MemoryTransport, cloneMessage,
  type MemoryNetworkOptions, type MemoryTransportOptions, type MemoryNetworkStats, type MessageFilter,
} from './memory.ts';
export {
  GrpcTransport,
  type GrpcTransportOptions, type GrpcTransportCredentials, type GrpcTransportStats, type TransportLogger,
} from './grpc.ts';
export { MalformedFrameError } from './codec.ts';
export { boundTarget, isSpecificAddress } from './localAddress.ts';
