// Errors across the server RPC boundary. A handler's error keeps its stable `code` on the wire (in
// the `trellis-error-code` trailer) so the caller rethrows an error the HTTP edge maps exactly as if
// it had happened locally (ERR_NO_LEADER → 500 "No cluster leader", ERR_VALIDATION → 400, ...).
// Failures of the call itself (no connection, deadline, dropped connection) become RpcCallError,
// which says whether the request can have reached the other side: only a request that surely did
// not may be retried blindly, since a forwarded write must never be applied twice.
import * as grpc from '@grpc/grpc-js';

export const ERROR_CODE_KEY = 'trellis-error-code';

/** An error raised by the remote handler, rebuilt on the caller's side with the same code and text. */
export class RemoteError extends Error {
  readonly code: string;
  /** Address of the server that answered. */
  readonly address: string;
  /** Fields the remote attached (e.g. the leader it knows, for ERR_NOT_LEADER). */
  readonly details: Record<string, string>;
  constructor(code: string, message: string, address: string, details: Record<string, string> = {}) {
    super(message);
    this.name = 'RemoteError';
    this.code = code;
    this.address = address;
    this.details = details;
  }
}

/** The call failed in transit. Consul's wording: "rpc error making call: ...". */
export class RpcCallError extends Error {
  readonly code: string;
  readonly address: string;
  readonly grpcCode: grpc.status;
  /** False only when the request certainly never reached the server (no connection was made). */
  readonly mayHaveArrived: boolean;
  constructor(address: string, grpcCode: grpc.status, details: string, mayHaveArrived: boolean) {
    super(`rpc error making call: ${address}: ${details || grpc.status[grpcCode]}`);
    this.name = 'RpcCallError';
    this.code = grpcCode === grpc.status.DEADLINE_EXCEEDED ? 'ERR_RPC_TIMEOUT' : 'ERR_RPC_UNAVAILABLE';
    this.address = address;
    this.grpcCode = grpcCode;
    this.mayHaveArrived = mayHaveArrived;
  }
}

/** gRPC status for an agent error code: only informative (callers read the code trailer). */
function grpcStatusFor(code: string): grpc.status {
  switch (code) {
    case 'ERR_NOT_LEADER':
    case 'ERR_NO_LEADER':
    case 'ERR_LEADERSHIP_TRANSFER':
    case 'ERR_TRANSFER_IN_PROGRESS':
      return grpc.status.UNAVAILABLE;
    case 'ERR_PROPOSAL_DROPPED':
      return grpc.status.ABORTED;
    case 'ERR_BAD_REQUEST':
    case 'ERR_VALIDATION':
    case 'ERR_INVALID_CONF_CHANGE':
    case 'ERR_INVALID_TRANSFER_TARGET':
    case 'ERR_SNAPSHOT_INVALID':
      return grpc.status.INVALID_ARGUMENT;
    case 'ERR_UNKNOWN_PEER':
    case 'ERR_NOT_FOUND':
      return grpc.status.NOT_FOUND;
    case 'ERR_PERMISSION_DENIED':
      return grpc.status.PERMISSION_DENIED;
    case 'ERR_PROPOSAL_TOO_LARGE':
      return grpc.status.RESOURCE_EXHAUSTED;
    case 'ERR_TIMEOUT':
      return grpc.status.DEADLINE_EXCEEDED;
    default:
      return grpc.status.INTERNAL;
  }
}

/** What a handler's thrown value becomes on the wire. */
export function toServiceError(err: unknown): grpc.ServiceError {
  const e = err as { code?: unknown; message?: unknown; leader?: unknown; leaderAddress?: unknown } | null;
  const code = typeof e?.code === 'string' && /^ERR_[A-Z0-9_]+$/.test(e.code) ? e.code : 'ERR_INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const md = new grpc.Metadata();
  md.set(ERROR_CODE_KEY, code);
  if (typeof e?.leader === 'string' && e.leader) md.set('trellis-leader-id', e.leader);
  if (typeof e?.leaderAddress === 'string' && e.leaderAddress) md.set('trellis-leader-address', e.leaderAddress);
  const status = grpcStatusFor(code);
  return Object.assign(new Error(message), { code: status, details: message, metadata: md });
}

/** What a failed call becomes on the caller's side. `connected`: the channel was ready when sent. */
export function fromServiceError(err: grpc.ServiceError, address: string, connected: boolean): Error {
  const code = err.metadata?.get(ERROR_CODE_KEY)[0];
  if (typeof code === 'string' && code !== '') {
    const details: Record<string, string> = {};
    for (const k of ['trellis-leader-id', 'trellis-leader-address']) {
      const v = err.metadata.get(k)[0];
      if (typeof v === 'string') details[k.slice('trellis-'.length)] = v;
    }
    return new RemoteError(code, err.details || err.message, address, details);
  }
  return new RpcCallError(address, err.code, err.details, connected);
}

/** Codes meaning "refused before anything was proposed": another attempt is safe. */
const REFUSED_CODES = new Set(['ERR_NOT_LEADER', 'ERR_NO_LEADER', 'ERR_TRANSFER_IN_PROGRESS', 'ERR_SERVER_STARTING']);

export function retryable(err: unknown, idempotent: boolean): boolean {
  if (err instanceof RpcCallError) return idempotent || !err.mayHaveArrived;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (REFUSED_CODES.has(code)) return true;
  // A read (or a restore, which ends in the same state however often it runs) may also be retried
  // after outcomes that are unknown for a write.
  return idempotent && (code === 'ERR_STOPPED' || code === 'ERR_PROPOSAL_DROPPED' || code === 'ERR_TIMEOUT');
}
