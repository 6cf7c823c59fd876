// Errors of the state store. Commands never throw: a refused command becomes a `CommandFailure`
// built from a `StateError`. Restore is the one place that throws (the Raft driver decides what a
// corrupt snapshot means), with `SnapshotFormatError`.
import type { CommandError, StateErrorCode } from './types.ts';

export class StateError extends Error {
  readonly code: StateErrorCode;
  constructor(code: StateErrorCode, message: string) {
    super(message);
    this.name = 'StateError';
    this.code = code;
  }

  toCommandError(): CommandError {
    return { code: this.code, message: this.message };
  }
}

/** Consul's ErrMissingNode text, which clients and tests match on. */
export const missingNode = (): StateError => new StateError('ERR_MISSING_NODE', 'Missing node registration');
/** Consul's ErrMissingService text. */
export const missingService = (): StateError => new StateError('ERR_MISSING_SERVICE', 'Missing service registration');
/** Consul's kvsLockTxn text: `invalid session "<id>"` (Go's %#v of a string). */
export const invalidSession = (id: string): StateError =>
  new StateError('ERR_INVALID_SESSION', `invalid session ${JSON.stringify(id)}`);
export const invalidRequest = (message: string): StateError => new StateError('ERR_INVALID_REQUEST', message);

/** A snapshot that cannot be restored; the store is left unchanged. */
export class SnapshotFormatError extends Error {
  readonly code = 'ERR_SNAPSHOT_INVALID';
  constructor(message: string) {
    super(`state snapshot rejected: ${message}`);
    this.name = 'SnapshotFormatError';
  }
}

/** Raft entry data that is not a command this version understands. */
export class CommandDecodeError extends Error {
  readonly code = 'ERR_BAD_COMMAND';
  constructor(message: string) {
    super(message);
    this.name = 'CommandDecodeError';
  }
}
