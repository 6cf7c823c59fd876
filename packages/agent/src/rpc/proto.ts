// The server RPC protocol (proto/server.proto), loaded once with @grpc/proto-loader, and the
// TypeScript shapes of its messages. The loader options fix the JavaScript form of every message:
// camelCase fields, 64-bit integers as numbers, absent fields left undefined (defaults: false), so
// the types below say "optional" wherever proto3 lets a field be absent on the wire.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO_PATH = fileURLToPath(new URL('../../proto/server.proto', import.meta.url));

export interface ServerIdentityMsg {
  id?: string;
  name?: string;
  datacenter?: string;
  raftAddress?: string;
  bootstrapExpect?: number;
  version?: string;
  bootstrap?: boolean;
}

export interface StatusRequestMsg {
  caller?: ServerIdentityMsg;
}

export interface BootstrapVoteMsg {
  candidates?: string[];
  locked?: boolean;
}

export interface KnownServerMsg {
  server?: ServerIdentityMsg;
  status?: string;
}

export interface StatusResponseMsg {
  server?: ServerIdentityMsg;
  raftStarted?: boolean;
  hasState?: boolean;
  role?: string;
  term?: number;
  leaderId?: string;
  leaderAddress?: string;
  commitIndex?: number;
  appliedIndex?: number;
  lastIndex?: number;
  lastContactMs?: number;
  bootstrap?: BootstrapVoteMsg;
  knownServers?: KnownServerMsg[];
  leaving?: boolean;
}

export interface ApplyRequestMsg { command?: Buffer }
export interface ApplyResponseMsg { result?: Buffer }
export interface ReadIndexRequestMsg { consistent?: boolean }
export interface ReadIndexResponseMsg { index?: number }
export interface RenewSessionRequestMsg { id?: string }
export type EmptyMsg = Record<string, never>;
export interface PeerRequestMsg { id?: string; address?: string; voter?: boolean }
export interface PeerResponseMsg { id?: string; address?: string }
export interface TransferLeaderRequestMsg { id?: string }
export interface TransferLeaderResponseMsg { id?: string }
export interface RestoreChunkMsg { data?: Buffer }
export interface RestoreResponseMsg { index?: number }
export interface JsonMessageMsg { json?: Buffer }
export interface HttpRequestMsg { method?: string; url?: string; headers?: Record<string, string>; body?: Buffer }
export interface HttpResponseMsg { status?: number; headers?: Record<string, string>; body?: Buffer }
export interface NodeStateRequestMsg { node?: string }
export interface ApplyFrame { id?: number; command?: Buffer }
export interface ApplyResultFrame {
  id?: number;
  result?: Buffer;
  errorCode?: string;
  errorMessage?: string;
  leaderId?: string;
  leaderAddress?: string;
}

/** Every method: its request and response message types. */
export interface RpcMethods {
  'Status.Status': [StatusRequestMsg, StatusResponseMsg];
  'Forward.Apply': [ApplyRequestMsg, ApplyResponseMsg];
  'Forward.ReadIndex': [ReadIndexRequestMsg, ReadIndexResponseMsg];
  'Forward.RenewSession': [RenewSessionRequestMsg, EmptyMsg];
  'Forward.ApplyStream': [ApplyFrame, ApplyResultFrame];
  'Forward.Http': [HttpRequestMsg, HttpResponseMsg];
  'Forward.NodeState': [NodeStateRequestMsg, JsonMessageMsg];
  'Forward.SignIntermediate': [JsonMessageMsg, JsonMessageMsg];
  'Operator.AddPeer': [PeerRequestMsg, PeerResponseMsg];
  'Operator.RemovePeer': [PeerRequestMsg, PeerResponseMsg];
  'Operator.TransferLeader': [TransferLeaderRequestMsg, TransferLeaderResponseMsg];
  'Operator.Restore': [RestoreChunkMsg, RestoreResponseMsg];
  'Operator.AutopilotHealth': [EmptyMsg, JsonMessageMsg];
}
export type RpcMethod = keyof RpcMethods;
export type RpcRequest<M extends RpcMethod> = RpcMethods[M][0];
export type RpcResponse<M extends RpcMethod> = RpcMethods[M][1];

export const SERVICE_NAMES = ['Status', 'Forward', 'Operator'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface ServerProto {
  services: Record<ServiceName, grpc.ServiceDefinition>;
  /** The method definition (path, serializers) of "Service.Method". */
  method<M extends RpcMethod>(name: M): grpc.MethodDefinition<RpcRequest<M>, RpcResponse<M>>;
}

let loaded: ServerProto | undefined;

export function serverProto(): ServerProto {
  if (loaded !== undefined) return loaded;
  const pkg = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: false });
  const services = {} as Record<ServiceName, grpc.ServiceDefinition>;
  for (const name of SERVICE_NAMES) {
    const def = pkg[`trellis.server.v1.${name}`];
    if (def === undefined || !('Status' in def || 'Apply' in def || 'AddPeer' in def)) {
      throw new Error(`${PROTO_PATH} does not define service trellis.server.v1.${name}`);
    }
    services[name] = def as unknown as grpc.ServiceDefinition;
  }
  loaded = {
    services,
    method<M extends RpcMethod>(name: M) {
      const [svc, m] = name.split('.') as [ServiceName, string];
      const def = services[svc][m];
      if (def === undefined) throw new Error(`server.proto has no method ${name}`);
      return def as grpc.MethodDefinition<RpcRequest<M>, RpcResponse<M>>;
    },
  };
  return loaded;
}
