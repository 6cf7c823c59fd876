// The one place where errors become HTTP status codes and Consul's plain-text bodies.
//
// Handlers throw HttpError for answers they decide themselves (400 "Missing key name", 404 ...).
// Everything else (state store validation, Raft) arrives as an error with a stable `code` and is
// mapped here, so a new failure mode needs one line in this file rather than a try/catch per route.

import { LocalStateError, type LocalStateErrorCode } from '../local/errors.ts';

export class HttpError extends Error {
  readonly code: string;
  readonly statusCode: number;
  /** Extra response headers (e.g. Allow on a 405). */
  readonly headers: Record<string, string>;
  constructor(statusCode: number, message: string, code = 'ERR_HTTP', headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = code;
    this.headers = headers;
  }
}

export function badRequest(message: string): HttpError {
  return new HttpError(400, message, 'ERR_BAD_REQUEST');
}

export function notFound(message: string): HttpError {
  return new HttpError(404, message, 'ERR_NOT_FOUND');
}

export function tooLarge(message: string): HttpError {
  return new HttpError(413, message, 'ERR_TOO_LARGE');
}

/** Consul answers a wrong method with 405, `method X not allowed` and an Allow header that always
 *  includes OPTIONS first (RFC 7231 §6.5.5: a 405 MUST carry Allow). */
export function methodNotAllowed(method: string, allowed: readonly string[]): HttpError {
  return new HttpError(405, `method ${method} not allowed`, 'ERR_METHOD_NOT_ALLOWED', {
    Allow: ['OPTIONS', ...allowed].join(','),
  });
}

/** Consul's text for a body that does not decode into the request type. */
export function decodeFailed(detail: string): HttpError {
  return new HttpError(400, `Request decode failed: ${detail}`, 'ERR_DECODE');
}

// Codes whose meaning is "your input was wrong": the state store, the filter compiler and the
// duration parser raise these before anything is written. Every other state error (missing node,
// missing service, ...) is what Consul returns from an RPC: a 500 with the error's text.
const badRequestCodes = new Set([
  'ERR_BAD_REQUEST', 'ERR_DECODE', 'ERR_VALIDATION', 'ERR_FILTER', 'ERR_INVALID_FILTER',
  'ERR_INVALID_DURATION', 'ERR_INVALID_REQUEST', 'ERR_INVALID_KEY',
  // A config entry that breaks a rule of its kind (structs/configEntries) or the protocol gate (state).
  'ERR_INVALID_CONFIG_ENTRY',
]);
const notFoundCodes = new Set(['ERR_NOT_FOUND', 'ERR_UNKNOWN_SERVICE', 'ERR_UNKNOWN_CHECK', 'ERR_UNKNOWN_NODE', 'ERR_SESSION_NOT_FOUND']);

// The agent's local state (local/errors.ts): Consul answers these from its agent endpoints with
// the state's own sentence.
const localStateStatus: Record<LocalStateErrorCode, number> = {
  ERR_LOCAL_CHECK_UNSUPPORTED: 400,
  ERR_LOCAL_SCRIPTS_DISABLED: 400,
  ERR_LOCAL_UNKNOWN_SERVICE: 404,
  ERR_LOCAL_UNKNOWN_CHECK: 404,
  ERR_LOCAL_NOT_TTL_CHECK: 404,
  // Consul's AddService error, which its HTTP layer answers as a server error.
  ERR_LOCAL_NO_SIDECAR_PORT: 500,
  ERR_STOPPED: 500,
};

export interface MappedError {
  statusCode: number;
  body: string;
  headers: Record<string, string>;
}

/** Maps any thrown value to Consul's status code and plain-text body. */
export function mapError(err: unknown): MappedError {
  if (err instanceof HttpError) {
    return { statusCode: err.statusCode, body: err.message, headers: err.headers };
  }
  if (err instanceof LocalStateError) {
    return { statusCode: localStateStatus[err.code], body: err.message, headers: {} };
  }
  const e = err as { code?: unknown; message?: unknown; statusCode?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  switch (code) {
    // Consul answers a lock with an unknown or expired session as an RPC error (500), and clients
    // (consul lock, Vault's HA backend) match on the `invalid session` prefix.
    case 'ERR_INVALID_SESSION':
      return { statusCode: 500, body: message, headers: {} };
    // Consul's structs.ErrNoLeader text; clients (consul-template, Vault) retry on it.
    case 'ERR_NOT_LEADER':
    case 'ERR_NO_LEADER':
      return { statusCode: 500, body: 'No cluster leader', headers: {} };
    case 'ERR_PROPOSAL_TOO_LARGE':
      return { statusCode: 413, body: message, headers: {} };
    case 'ERR_RATE_LIMITED':
      return { statusCode: 429, body: message, headers: {} };
    // An ACL refusal made on another server keeps Consul's full text ("Permission denied: token ...").
    case 'ERR_PERMISSION_DENIED':
      return { statusCode: 403, body: message.startsWith('Permission denied') ? message : 'Permission denied', headers: {} };
    // A snapshot upload that does not verify: the file, not the cluster, is at fault.
    case 'ERR_SNAPSHOT_INVALID':
      return { statusCode: 400, body: message, headers: {} };
  }
  if (badRequestCodes.has(code)) {
    return { statusCode: 400, body: message, headers: {} };
  }
  if (notFoundCodes.has(code)) {
    return { statusCode: 404, body: message, headers: {} };
  }
  return { statusCode: 500, body: message, headers: {} };
}
