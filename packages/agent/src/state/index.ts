// The state store's public surface: what the server wiring, HTTP and DNS import.
export * from './types.ts';
export { StateStore } from './store.ts';
export { ACL_ANONYMOUS_ACCESSOR_ID, ACL_GLOBAL_MANAGEMENT_ID } from './acl.ts';
export { WatchSet } from './watch.ts';
export { createFsm, type FsmEntry, type StateFsm } from './fsm.ts';
export { encodeCommand, decodeCommand, isCommandData, restampCommand, COMMAND_FORMAT_VERSION, COMMAND_FORMAT_RAW_BYTES } from './codec.ts';
export { isReadOnlyTxn } from './txn.ts';
export { UINT64_MAX, parseUint64 } from './uint64.ts';
export { SERF_CHECK_ID } from './catalog.ts';
export { StateError, SnapshotFormatError, CommandDecodeError } from './errors.ts';
export {
  validateKvKey, validateName, validateServiceName, validateSessionTtl, isCheckStatus, isCheckStatusFilter, isUuid, parseGoDuration,
  DEFAULT_LOCK_DELAY_NS, MAX_LOCK_DELAY_NS, SESSION_TTL_MIN_NS, SESSION_TTL_MAX_NS,
  type KvKeyOptions, type ServiceNameCheck,
} from './validate.ts';
