// Errors raised by transports. send() never throws (the network is lossy by contract); these come
// only from construction, start() and misuse, where a caller can fix its configuration.
import { RaftError } from '../errors.ts';

export type TransportErrorCode =
  /** An option is missing or out of range; the message names the field, the value and what is allowed. */
  | 'ERR_TRANSPORT_CONFIG'
  /** start() was called on a transport that is already running. */
  | 'ERR_TRANSPORT_STARTED'
  /** Another running transport already holds this address. */
  | 'ERR_ADDRESS_IN_USE'
  /** The listener could not be bound (the cause is attached). */
  | 'ERR_TRANSPORT_BIND';

export class TransportError extends RaftError {
  declare readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message);
    this.name = 'TransportError';
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export function configError(field: string, value: unknown, allowed: string): TransportError {
  return new TransportError('ERR_TRANSPORT_CONFIG', `invalid transport option ${field}=${describe(value)}: ${allowed}`);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); } // cyclic values: String() never throws
}
