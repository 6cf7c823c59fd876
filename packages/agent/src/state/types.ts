// Public types of the state store (the Raft state machine).
//
// Row types use Consul's PascalCase field names exactly as Consul's JSON does (agent/structs and api
// packages), so the HTTP layer can serialise rows as they are. The one difference is binary data:
// `DirEntry.Value` is bytes here and becomes base64 only at the HTTP edge.
//
// Every row is immutable once stored: a write replaces the object, so a reader may hold a row (or a
// query's result) for as long as it likes without copying.

// ---------------------------------------------------------------------------------------------------
// Rows

export type CheckStatus = 'passing' | 'warning' | 'critical';
/** `health/state/:state` also accepts "any". */
export type CheckStatusFilter = CheckStatus | 'any';

export type SessionBehavior = 'release' | 'delete';

/** Consul's `ServiceKind`: "" is a typical service. */
export type ServiceKind = '' | 'connect-proxy' | 'mesh-gateway' | 'terminating-gateway' | 'ingress-gateway' | 'api-gateway';

export interface ServiceAddress {
  Address: string;
  Port: number;
}

export interface Weights {
  Passing: number;
  Warning: number;
}

/** Consul's ConnectProxyConfig. Stored as given (opaque to the catalog); later Connect work types it. */
export interface ConnectProxyConfig {
  DestinationServiceName?: string;
  DestinationServiceID?: string;
  LocalServiceAddress?: string;
  LocalServicePort?: number;
  Mode?: string;
  Config?: Record<string, unknown>;
  Upstreams?: Record<string, unknown>[];
  MeshGateway?: Record<string, unknown>;
  Expose?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Consul's ServiceConnect block. Stored as given. */
export interface ServiceConnect {
  Native?: boolean;
  SidecarService?: Record<string, unknown> | null;
  [field: string]: unknown;
}

/** A catalog node (`catalog/nodes`). */
export interface Node {
  /** Node UUID; '' when the registration did not give one. */
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

/**
 * A service instance's fields as registered (Consul's structs.NodeService without the Raft
 * indexes): the one service shape. The catalog row adds its indexes (NodeService), a registration
 * input makes the defaults optional (NodeServiceInput), and an agent's local state holds it as is.
 */
export interface ServiceFields {
  Kind: ServiceKind;
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  TaggedAddresses: Record<string, ServiceAddress>;
  Meta: Record<string, string>;
  Port: number;
  SocketPath?: string;
  Weights: Weights;
  EnableTagOverride: boolean;
  Proxy?: ConnectProxyConfig;
  Connect?: ServiceConnect;
}

/** A service instance on a node (`catalog/node/:n` Services, `health/service` Service). */
export interface NodeService extends ServiceFields {
  CreateIndex: number;
  ModifyIndex: number;
}
/** Alias used in the brief; same row. */
export type ServiceEntry = NodeService;

/** The flattened node+service row of `catalog/service/:s` (Consul's structs.ServiceNode). */
export interface ServiceNode {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  NodeMeta: Record<string, string>;
  ServiceKind: ServiceKind;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  ServiceAddress: string;
  ServiceTaggedAddresses: Record<string, ServiceAddress>;
  ServiceWeights: Weights;
  ServiceMeta: Record<string, string>;
  ServicePort: number;
  ServiceSocketPath?: string;
  ServiceEnableTagOverride: boolean;
  ServiceProxy?: ConnectProxyConfig;
  ServiceConnect?: ServiceConnect;
  /** The service row's indexes. */
  CreateIndex: number;
  ModifyIndex: number;
}

/** Consul's HealthCheckDefinition: how the check runs (opaque to the catalog). Durations as Go strings. */
export interface HealthCheckDefinition {
  HTTP?: string;
  TLSServerName?: string;
  TLSSkipVerify?: boolean;
  Header?: Record<string, string[]>;
  Method?: string;
  Body?: string;
  TCP?: string;
  GRPC?: string;
  GRPCUseTLS?: boolean;
  Interval?: string;
  Timeout?: string;
  DeregisterCriticalServiceAfter?: string;
  ScriptArgs?: string[];
  TTL?: string;
  AliasNode?: string;
  AliasService?: string;
  [field: string]: unknown;
}

export interface HealthCheck {
  Node: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  /** '' for a node-level check. */
  ServiceID: string;
  /** Filled from the service row when ServiceID is set. */
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  Interval?: string;
  Timeout?: string;
  ExposedPort?: number;
  Definition: HealthCheckDefinition;
  CreateIndex: number;
  ModifyIndex: number;
}

/** `health/service/:s` element. Checks: the node's node-level checks, then the service's checks. */
export interface CheckServiceNode {
  Node: Node;
  Service: NodeService;
  Checks: HealthCheck[];
}

export interface DirEntry {
  LockIndex: number;
  Key: string;
  /**
   * Consul's uint64, opaque to the store. A bigint because clients use all 64 bits (the lock and
   * semaphore recipes' markers are above 2^53); the HTTP edge prints it as an exact JSON number.
   */
  Flags: bigint;
  /** Raw bytes (base64 only at the HTTP edge). null in txn results of write verbs (Consul blanks it). */
  Value: Uint8Array | null;
  /** The holding session's ID; absent when unlocked (Consul's omitempty). */
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

/**
 * A config entry (`/v1/config`), stored as the HTTP edge normalised and validated it: Consul's
 * PascalCase fields of its Kind (connect/configEntries/ owns the per-kind shapes), Kind and Name
 * first, the Raft indexes last. Keyed by (Kind, Name), both case-insensitively as in Consul.
 */
export interface ConfigEntry {
  Kind: string;
  Name: string;
  [field: string]: unknown;
  CreateIndex: number;
  ModifyIndex: number;
}

/** A CA root (Consul's structs.CARoot, as `GET /v1/connect/ca/roots` shows it). */
export interface CARoot {
  /** Lower-case colon-separated hex of the SHA-1 fingerprint of the certificate's DER. */
  ID: string;
  Name: string;
  SerialNumber: number;
  /** Colon-separated hex of the signing key's SubjectKeyId. */
  SigningKeyID: string;
  ExternalTrustDomain: string;
  /** RFC 3339. */
  NotBefore: string;
  NotAfter: string;
  RootCert: string;
  /** Cross-signed certificates that chain this root to earlier ones (null when none). */
  IntermediateCerts: string[] | null;
  Active: boolean;
  RotatedOutAt: string;
  PrivateKeyType: string;
  PrivateKeyBits: number;
  CreateIndex: number;
  ModifyIndex: number;
}

/** The CA configuration (Consul's structs.CAConfiguration): one row. */
export interface CAConfiguration {
  ClusterID: string;
  Provider: string;
  /** LeafCertTTL, IntermediateCertTTL, RootCertTTL, PrivateKeyType, PrivateKeyBits, CSRMaxPerSecond,
   *  CSRMaxConcurrent, and (bring your own) PrivateKey and RootCert. */
  Config: Record<string, unknown>;
  ForceWithoutCrossSigning: boolean;
  CreateIndex: number;
  ModifyIndex: number;
}

/** The built-in provider's secret state (Consul's CAConsulProviderState): a root's private key. Never
 *  served over HTTP, never logged. */
export interface CAProviderState {
  /** The root's ID. */
  ID: string;
  PrivateKey: string;
  RootCert: string;
}

export interface ServiceCheck {
  ID: string;
  Namespace?: string;
}

export interface Session {
  ID: string;
  Name: string;
  Node: string;
  /** Nanoseconds (Consul's time.Duration JSON). */
  LockDelay: number;
  Behavior: SessionBehavior;
  /** Go duration string ('' for none). The TTL timer is leader-local, see `Command`. */
  TTL: string;
  NodeChecks: string[];
  ServiceChecks: ServiceCheck[];
  /** Deprecated in Consul (merged into NodeChecks); kept when given so the JSON round-trips. */
  Checks?: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

/**
 * What an apply did to the session table, reported after it commits (StateStore.onSessionChange):
 * the leader's TTL timers follow these, whichever path changed the table (session/create, txn,
 * an invalidation by a critical check or a deregistered node, an expiry), and `reset` when the whole
 * store was replaced (a snapshot restore).
 */
export type SessionChange =
  | { type: 'created'; session: Session }
  | { type: 'destroyed'; id: string }
  | { type: 'reset' };

// ---------------------------------------------------------------------------------------------------
// Commands: the only way state changes. Each is one Raft log entry; `StateStore.apply` is
// deterministic over (index, command).

/** Inputs omit the indexes (the store stamps them from the Raft index) and make defaults optional. */
export type NodeServiceInput = Partial<ServiceFields> & {
  Service: string;
  /** Used by txn `cas` verbs only. */
  ModifyIndex?: number;
};

/** CheckID defaults to Name; Node (in catalogRegister) to the registration's node. */
export type HealthCheckInput = Partial<Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex' | 'Status'>> & {
  /** Defaults to "critical", as in Consul. */
  Status?: CheckStatus | '';
  /** Used by txn `cas` verbs only. */
  ModifyIndex?: number;
};

export type NodeInput = Partial<Omit<Node, 'CreateIndex' | 'ModifyIndex'>> & {
  Node: string;
  /** Used by txn `cas` / `delete-cas` verbs only. */
  ModifyIndex?: number;
};

export interface SessionInput {
  /** Generated by the proposer (a UUID); apply refuses an ID that already exists. */
  ID: string;
  Name?: string;
  Node: string;
  /** Nanoseconds; default 15 s is applied by the HTTP edge (Consul does it there too). */
  LockDelay?: number;
  Behavior?: SessionBehavior | '';
  TTL?: string;
  /** The store binds exactly what is given; Consul's HTTP edge defaults this to ["serfHealth"]. */
  NodeChecks?: string[];
  ServiceChecks?: ServiceCheck[];
  Checks?: string[];
}

interface CommandBase {
  /**
   * The proposer's wall clock (ms since the epoch). Lock delays are set and checked against it so
   * that apply stays deterministic. `encodeCommand` stamps Date.now() when it is absent; a command
   * applied without it neither sets nor honours lock delays.
   */
  now?: number;
}

/** Consul's RegisterRequest (`catalog/register`, and agent anti-entropy on a server). */
export interface CatalogRegisterCommand extends CommandBase {
  type: 'catalogRegister';
  Node: string;
  /** Node UUID; must parse as one when given. */
  ID?: string;
  /** Required unless SkipNodeUpdate. */
  Address?: string;
  /** Stored on the node row as given: the HTTP edge fills in the agent's datacenter, as Consul's RPC routing does. */
  Datacenter?: string;
  TaggedAddresses?: Record<string, string>;
  NodeMeta?: Record<string, string>;
  Service?: NodeServiceInput | null;
  Check?: HealthCheckInput | null;
  Checks?: HealthCheckInput[] | null;
  /** Leave an existing node row untouched (a missing node is still created, as in Consul). */
  SkipNodeUpdate?: boolean;
}

/** Consul's DeregisterRequest: ServiceID or CheckID deletes that; neither deletes the whole node. */
export interface CatalogDeregisterCommand extends CommandBase {
  type: 'catalogDeregister';
  Node: string;
  ServiceID?: string;
  CheckID?: string;
}

export interface KvSetCommand extends CommandBase {
  type: 'kvSet';
  Key: string;
  Value: Uint8Array;
  /** uint64; a number must be a safe integer (see state/uint64.ts). Default 0. */
  Flags?: bigint | number;
}

/** `?cas=N`: N=0 creates only if absent; otherwise writes only if ModifyIndex == N. Result: boolean. */
export interface KvCasCommand extends CommandBase {
  type: 'kvCas';
  Key: string;
  Value: Uint8Array;
  /** uint64; a number must be a safe integer (see state/uint64.ts). Default 0. */
  Flags?: bigint | number;
  Index: number;
}

/** `?acquire=<session>`. Result: boolean (false when held by another session or lock-delayed). */
export interface KvLockCommand extends CommandBase {
  type: 'kvLock';
  Key: string;
  Value: Uint8Array;
  /** uint64; a number must be a safe integer (see state/uint64.ts). Default 0. */
  Flags?: bigint | number;
  Session: string;
}

/** `?release=<session>`. Result: boolean (false unless held by this session). */
export interface KvUnlockCommand extends CommandBase {
  type: 'kvUnlock';
  Key: string;
  Value: Uint8Array;
  /** uint64; a number must be a safe integer (see state/uint64.ts). Default 0. */
  Flags?: bigint | number;
  Session: string;
}

export interface KvDeleteCommand extends CommandBase {
  type: 'kvDelete';
  Key: string;
}

/** `DELETE ?cas=N`. Result: boolean; true when the key is already absent (as in Consul). */
export interface KvDeleteCasCommand extends CommandBase {
  type: 'kvDeleteCas';
  Key: string;
  Index: number;
}

/** `DELETE ?recurse`; '' deletes everything. */
export interface KvDeleteTreeCommand extends CommandBase {
  type: 'kvDeleteTree';
  Prefix: string;
}

/**
 * Leader housekeeping: forget KV tombstones with index ≤ UpToIndex (Consul's tombstone GC; they keep
 * prefix-list indexes from going backwards after deletes for a while).
 */
export interface KvTombstoneReapCommand extends CommandBase {
  type: 'kvTombstoneReap';
  UpToIndex: number;
}

export interface SessionCreateCommand extends CommandBase {
  type: 'sessionCreate';
  Session: SessionInput;
}

/**
 * Destroys (invalidates) a session: held keys are released or deleted per Behavior, lock delays set.
 * Also what the leader proposes when a session's TTL expires. Renewing a TTL is NOT a command: as in
 * Consul, TTL timers live on the leader only (reset on renew, rebuilt from the session table after a
 * leader change); only their expiry becomes this command.
 */
export interface SessionDestroyCommand extends CommandBase {
  type: 'sessionDestroy';
  ID: string;
}

/**
 * Upserts a config entry (Consul's ConfigEntryRequest, Op upsert / upsert-cas). The entry must be
 * normalised and validated by the proposer (as Consul's ConfigEntry.Apply does before raftApply);
 * apply re-checks only what needs the rest of the table: the protocol gate (a router or splitter
 * needs an HTTP-like protocol), atomically with the write. Result: boolean (false on a CAS miss).
 */
export interface ConfigEntrySetCommand extends CommandBase {
  type: 'configEntrySet';
  Entry: { Kind: string; Name: string; [field: string]: unknown };
  /** `?cas=N`: 0 creates only if absent; otherwise writes only if ModifyIndex == N. */
  Cas?: number;
}

/**
 * Deletes a config entry (Op delete / delete-cas). Without Cas a missing entry is fine (true); with
 * Cas, false unless the entry exists at that ModifyIndex (Consul's DeleteConfigEntryCAS).
 */
export interface ConfigEntryDeleteCommand extends CommandBase {
  type: 'configEntryDelete';
  Kind: string;
  Name: string;
  Cas?: number;
}

/**
 * Sets the CA configuration, its roots and the provider state at once (Consul's
 * CAOpSetRootsAndConfig). `Cas`: 0 only when no CA exists yet, N only when the configuration's
 * ModifyIndex is N. Result: boolean (false on a CAS miss).
 */
export interface ConnectCASetCommand extends CommandBase {
  type: 'connectCASet';
  Config: Omit<CAConfiguration, 'CreateIndex' | 'ModifyIndex'>;
  Roots: Omit<CARoot, 'CreateIndex' | 'ModifyIndex'>[];
  /** The active root's key; absent keeps what is stored. */
  ProviderState?: CAProviderState[];
  Cas?: number;
}

export type KVVerb =
  | 'set' | 'cas' | 'lock' | 'unlock' | 'get' | 'get-tree' | 'check-index' | 'check-session'
  | 'check-not-exists' | 'delete' | 'delete-tree' | 'delete-cas';
export type NodeVerb = 'get' | 'set' | 'cas' | 'delete' | 'delete-cas';
export type ServiceVerb = 'get' | 'set' | 'cas' | 'delete' | 'delete-cas';
export type CheckVerb = 'get' | 'set' | 'cas' | 'delete' | 'delete-cas';
export type SessionVerb = 'delete';

/** Consul's api.KVTxnOp. */
export interface TxnKVOp {
  Verb: KVVerb;
  Key: string;
  Value?: Uint8Array | null;
  /** uint64; a number must be a safe integer (see state/uint64.ts). Default 0. */
  Flags?: bigint | number;
  /** For cas / check-index / delete-cas. */
  Index?: number;
  /** For lock / unlock / check-session. */
  Session?: string;
}

export interface TxnNodeOp {
  Verb: NodeVerb;
  Node: NodeInput;
}

export interface TxnServiceOp {
  Verb: ServiceVerb;
  /** The node name. */
  Node: string;
  Service: NodeServiceInput;
}

export interface TxnCheckOp {
  Verb: CheckVerb;
  /** Must name Node and CheckID. */
  Check: HealthCheckInput & { Node: string };
}

export interface TxnSessionOp {
  Verb: SessionVerb;
  Session: { ID: string; Node?: string };
}

/** Exactly one field is set, as in Consul's api.TxnOp. */
export type TxnOp =
  | { KV: TxnKVOp }
  | { Node: TxnNodeOp }
  | { Service: TxnServiceOp }
  | { Check: TxnCheckOp }
  | { Session: TxnSessionOp };

/** All-or-nothing: if any op fails, nothing is applied and every failing op is reported. */
/** ACL tokens, policies and roles (state/acl.ts). `Create`: refuse when the ID exists; else it must. */
export interface AclTokenSetCommand extends CommandBase {
  type: 'aclTokenSet';
  Token: Record<string, unknown>;
  Create: boolean;
}
export interface AclTokenDeleteCommand extends CommandBase {
  type: 'aclTokenDelete';
  AccessorID: string;
}
export interface AclPolicySetCommand extends CommandBase {
  type: 'aclPolicySet';
  Policy: Record<string, unknown>;
  Create: boolean;
}
export interface AclPolicyDeleteCommand extends CommandBase {
  type: 'aclPolicyDelete';
  ID: string;
}
export interface AclRoleSetCommand extends CommandBase {
  type: 'aclRoleSet';
  Role: Record<string, unknown>;
  Create: boolean;
}
export interface AclRoleDeleteCommand extends CommandBase {
  type: 'aclRoleDelete';
  ID: string;
}
/** Consul's ACL bootstrap: once, or again when ResetIndex names the stored bootstrap index. */
export interface AclBootstrapCommand extends CommandBase {
  type: 'aclBootstrap';
  Token: Record<string, unknown>;
  ResetIndex?: number;
  /** The builtin policy, made here if the leader's aclInit has not been applied yet (a bootstrap right after start). */
  GlobalManagement?: Record<string, unknown>;
}
/** A new leader's ACL initialisation (state/acl.ts aclInit). */
export interface AclInitCommand extends CommandBase {
  type: 'aclInit';
  GlobalManagement: Record<string, unknown>;
  Anonymous: Record<string, unknown>;
  ServerSecret: string;
  InitialManagement?: Record<string, unknown>;
}

export interface TxnCommand extends CommandBase {
  type: 'txn';
  Ops: TxnOp[];
}

export type Command =
  | CatalogRegisterCommand
  | CatalogDeregisterCommand
  | KvSetCommand
  | KvCasCommand
  | KvLockCommand
  | KvUnlockCommand
  | KvDeleteCommand
  | KvDeleteCasCommand
  | KvDeleteTreeCommand
  | KvTombstoneReapCommand
  | SessionCreateCommand
  | SessionDestroyCommand
  | ConfigEntrySetCommand
  | ConfigEntryDeleteCommand
  | ConnectCASetCommand
  | AclTokenSetCommand
  | AclTokenDeleteCommand
  | AclPolicySetCommand
  | AclPolicyDeleteCommand
  | AclRoleSetCommand
  | AclRoleDeleteCommand
  | AclBootstrapCommand
  | AclInitCommand
  | TxnCommand;
// Not commands, on purpose: user events (gossip, not Raft) and session renew (leader-local timer).

export type CommandType = Command['type'];

// ---------------------------------------------------------------------------------------------------
// Results

/** Consul's TxnResult: one field set. KV values are null for write verbs (as Consul does). */
export type TxnResult =
  | { KV: DirEntry }
  | { Node: Node }
  | { Service: NodeService }
  | { Check: HealthCheck };

/** Consul's TxnError. HTTP: 409 with `{"Results": null, "Errors": [...]}`. */
export interface TxnError {
  OpIndex: number;
  What: string;
}

export interface TxnResponse {
  Results: TxnResult[] | null;
  Errors: TxnError[] | null;
}

/** What a successful command returns. */
export interface CommandValueMap {
  catalogRegister: true;
  catalogDeregister: true;
  kvSet: true;
  kvCas: boolean;
  kvLock: boolean;
  kvUnlock: boolean;
  kvDelete: true;
  kvDeleteCas: boolean;
  kvDeleteTree: true;
  kvTombstoneReap: true;
  /** The session's ID. */
  sessionCreate: string;
  sessionDestroy: true;
  configEntrySet: boolean;
  configEntryDelete: boolean;
  connectCASet: boolean;
  aclTokenSet: ACLToken;
  aclTokenDelete: boolean;
  aclPolicySet: ACLPolicy;
  aclPolicyDelete: boolean;
  aclRoleSet: ACLRole;
  aclRoleDelete: boolean;
  aclBootstrap: ACLBootstrapResult;
  aclInit: boolean;
  /** A txn whose ops fail is still ok:true, with Errors set and nothing applied. */
  txn: TxnResponse;
}

/**
 * Stable error codes of a refused command. Suggested HTTP mapping (what Consul answers):
 * - ERR_INVALID_SESSION → 500, body `invalid session "<id>"` (clients match on the prefix)
 * - ERR_MISSING_NODE / ERR_MISSING_SERVICE / ERR_MISSING_CHECK / ERR_CHECK_CRITICAL /
 *   ERR_NODE_ID_CONFLICT / ERR_SESSION_EXISTS → 500 (Consul returns these as RPC errors)
 * - ERR_INVALID_REQUEST / ERR_INVALID_KEY → 400 (the HTTP edge should catch them first)
 * - ERR_INVALID_CONFIG_ENTRY → 400 (a config entry the rest of the table refuses: the protocol gate)
 * - ERR_BAD_COMMAND → 500 (undecodable entry or unknown command type: a bug or version skew)
 */
export type StateErrorCode =
  | 'ERR_INVALID_SESSION'
  | 'ERR_MISSING_NODE'
  | 'ERR_MISSING_SERVICE'
  | 'ERR_MISSING_CHECK'
  | 'ERR_CHECK_CRITICAL'
  | 'ERR_NODE_ID_CONFLICT'
  | 'ERR_SESSION_EXISTS'
  | 'ERR_INVALID_REQUEST'
  | 'ERR_INVALID_KEY'
  | 'ERR_INVALID_CONFIG_ENTRY'
  | 'ERR_BAD_COMMAND';

export interface CommandError {
  code: StateErrorCode;
  /** Consul's error text where Consul has one (e.g. `invalid session "x"`, `Missing node registration`). */
  message: string;
}

export interface CommandOk<T extends CommandType = CommandType> {
  ok: true;
  /** The Raft index the command was applied at. */
  index: number;
  value: CommandValueMap[T];
}

export interface CommandFailure {
  ok: false;
  index: number;
  error: CommandError;
}

/** Never thrown: a refused command changes nothing and returns ok:false. */
export type CommandResult<T extends CommandType = CommandType> = CommandOk<T> | CommandFailure;

// ---------------------------------------------------------------------------------------------------
// Queries

/**
 * Every query returns the index a blocking query compares against (X-Consul-Index, always ≥ 1) and
 * the value. Lists use their table's max index (Consul's choice); a single KV key its ModifyIndex
 * (the KV table index when missing); KV prefix lists the highest index under the prefix, tombstones
 * included (Consul's); service queries the per-service index.
 */
export interface QueryResult<T> {
  index: number;
  value: T;
}

export interface ServiceQueryOptions {
  /** Only instances carrying every one of these tags (case-insensitive, as Consul). */
  tag?: string | readonly string[];
  /** The service's Connect-capable instances: its proxies and its Connect-native instances (health/connect, catalog/connect). */
  connect?: boolean;
}

export interface HealthServiceQueryOptions extends ServiceQueryOptions {
  /** Only instances whose every check (node-level ones included) is passing. */
  passingOnly?: boolean;
}

export interface NodeServicesValue {
  Node: Node;
  Services: NodeService[];
}

/** Table names; tables for future Connect work are present (and empty) so adding one is small. */
export type TableName =
  | 'nodes' | 'services' | 'checks' | 'kvs' | 'tombstones' | 'sessions'
  | 'coordinates' | 'config-entries' | 'intentions' | 'connect-ca-roots' | 'acl-tokens' | 'acl-policies' | 'acl-roles';

/** The watch set a query records into; see watch.ts for the class. */
export interface WatchRecorder {
  /** A whole table (any write to it fires). */
  addTable(table: TableName): void;
  /** One topic, e.g. a KV key or a service name; see the store for the topics it fires. */
  addTopic(topic: string): void;
  /** Every KV key starting with `prefix`. */
  addKvPrefix(prefix: string): void;
}

/** The read API of the store (implemented by `StateStore` in store.ts). */
export interface StateReader {
  /** The Raft index of the last applied command (0 when empty). */
  lastIndex(): number;
  /** Max index over the given tables (≥ 1). */
  tableIndex(...tables: TableName[]): number;

  nodes(ws?: WatchRecorder): QueryResult<Node[]>;
  node(name: string, ws?: WatchRecorder): QueryResult<Node | null>;
  nodeServices(name: string, ws?: WatchRecorder): QueryResult<NodeServicesValue | null>;
  /** Service name → union of its instances' tags (sorted, de-duplicated). */
  services(ws?: WatchRecorder): QueryResult<Record<string, string[]>>;
  serviceNodes(service: string, opts?: ServiceQueryOptions, ws?: WatchRecorder): QueryResult<ServiceNode[]>;
  healthServiceNodes(service: string, opts?: HealthServiceQueryOptions, ws?: WatchRecorder): QueryResult<CheckServiceNode[]>;
  /** serfHealth first, then by CheckID. */
  nodeChecks(node: string, ws?: WatchRecorder): QueryResult<HealthCheck[]>;
  serviceChecks(service: string, ws?: WatchRecorder): QueryResult<HealthCheck[]>;
  checksInState(state: CheckStatusFilter, ws?: WatchRecorder): QueryResult<HealthCheck[]>;

  kvGet(key: string, ws?: WatchRecorder): QueryResult<DirEntry | null>;
  kvList(prefix: string, ws?: WatchRecorder): QueryResult<DirEntry[]>;
  /** Consul's `?keys&separator=`: keys under prefix, folded at the first separator after it. */
  /** `visible`: keys it refuses are left out before folding (ACLs), still counted in the index. */
  kvKeys(prefix: string, separator: string, ws?: WatchRecorder, visible?: (key: string) => boolean): QueryResult<string[]>;
  /** Lock-delay expiry (ms since epoch) of a key, 0 when none. Lets the edge answer false early. */
  kvLockDelay(key: string): number;
  /** Runs read-only txn ops locally, without Raft (Consul's TxnRO); see isReadOnlyTxn. */
  readTxn(ops: readonly TxnOp[]): TxnResponse;

  sessionGet(id: string, ws?: WatchRecorder): QueryResult<Session | null>;
  sessionList(ws?: WatchRecorder): QueryResult<Session[]>;
  nodeSessions(node: string, ws?: WatchRecorder): QueryResult<Session[]>;

  /** One config entry (Kind and Name case-insensitive); index: the config-entries table's. */
  configEntry(kind: string, name: string, ws?: WatchRecorder): QueryResult<ConfigEntry | null>;
  /** Entries of one kind, by name; index: the table's (Consul's ConfigEntriesByKind). */
  configEntries(kind: string, ws?: WatchRecorder): QueryResult<ConfigEntry[]>;
  /** Every entry, by kind then name. */
  configEntriesAll(ws?: WatchRecorder): QueryResult<ConfigEntry[]>;

  /** The CA roots, by ID; index: the connect-ca-roots table's. */
  caRoots(ws?: WatchRecorder): QueryResult<CARoot[]>;
  /** The CA configuration (null before the first leader made one); index: its ModifyIndex. */
  caConfig(ws?: WatchRecorder): QueryResult<CAConfiguration | null>;

  // ACLs (state/acl.ts). Rows carry SecretIDs: the HTTP layer redacts them for callers without acl:write.
  aclToken(accessorId: string, ws?: WatchRecorder): QueryResult<ACLToken | null>;
  aclTokenBySecret(secret: string): ACLToken | null;
  aclTokens(ws?: WatchRecorder): QueryResult<ACLToken[]>;
  aclPolicy(id: string, ws?: WatchRecorder): QueryResult<ACLPolicy | null>;
  aclPolicyByName(name: string, ws?: WatchRecorder): QueryResult<ACLPolicy | null>;
  aclPolicies(ws?: WatchRecorder): QueryResult<ACLPolicy[]>;
  aclRole(id: string, ws?: WatchRecorder): QueryResult<ACLRole | null>;
  aclRoleByName(name: string, ws?: WatchRecorder): QueryResult<ACLRole | null>;
  aclRoles(ws?: WatchRecorder): QueryResult<ACLRole[]>;
  /**
   * Changes whenever any ACL row may have changed (a write to an ACL table, a snapshot restore): a
   * number, compared on every request that carries a token (aclResolve.ts), so no string is built.
   */
  aclGeneration(): number;
  aclBootstrapIndex(): number;
}

// ---------------------------------------------------------------------------------------------------
// ACL rows (state/acl.ts)

/** A link from a token or role to a policy or role: Consul's ACLTokenPolicyLink / ACLTokenRoleLink. */
export interface ACLLink {
  ID: string;
  Name: string;
}

/** Consul's ACLServiceIdentity: a templated policy for one service and its sidecar. */
export interface ACLServiceIdentity {
  ServiceName: string;
  Datacenters?: string[];
}

/** Consul's ACLNodeIdentity: a templated policy for one node. */
export interface ACLNodeIdentity {
  NodeName: string;
  Datacenter: string;
}

export interface ACLToken {
  AccessorID: string;
  SecretID: string;
  Description: string;
  Policies: ACLLink[];
  Roles: ACLLink[];
  ServiceIdentities: ACLServiceIdentity[];
  NodeIdentities: ACLNodeIdentity[];
  /** Only in this datacenter: never replicated (Consul's Local). */
  Local: boolean;
  /** RFC 3339; '' for a token that never expires. */
  ExpirationTime: string;
  CreateTime: string;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface ACLPolicy {
  ID: string;
  Name: string;
  Description: string;
  Rules: string;
  Datacenters: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

export interface ACLRole {
  ID: string;
  Name: string;
  Description: string;
  Policies: ACLLink[];
  ServiceIdentities: ACLServiceIdentity[];
  NodeIdentities: ACLNodeIdentity[];
  CreateIndex: number;
  ModifyIndex: number;
}

/** Answer of the aclBootstrap command: refused once bootstrapped, unless the reset index matches. */
export interface ACLBootstrapResult {
  Bootstrapped: boolean;
  /** The index to write into <data dir>/acl-bootstrap-reset to allow one more bootstrap. */
  ResetIndex: number;
}
