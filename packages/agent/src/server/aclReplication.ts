// ACL replication into a secondary datacenter (Consul's agent/consul/acl_replication.go and
// leader.go startACLReplication): the leader of a datacenter whose primary_datacenter is another
// one keeps its policies, roles and (with acl.enable_token_replication) global tokens equal to the
// primary's. Local tokens (Local = true) are this datacenter's own: never sent, never deleted here.
//
//   loop (leader only; stops when leadership is lost or the server stops):
//     read the primary's policies, roles and global tokens, blocking on the last index seen (GET of
//       /v1/internal/federation/acl across the WAN with acl.tokens.replication: the primary
//       answers only a token with acl:write, since the rows carry SecretIDs, as Consul's
//       TokenBatchRead does for replication)
//     diff against the local tables by content (indexes differ: each datacenter's Raft log assigns
//       its own), upserts for rows missing or different, deletes for rows the primary no longer has
//     apply them through this datacenter's Raft log: policies, then roles, then tokens (links resolve
//       to rows that exist); deletes the other way round
//   on failure (primary unreachable, token refused): LastError/LastErrorMessage, backoff, retry;
//   tokens keep resolving from the replicated rows here (storeResolver), which is Consul's
//   extend-cache behaviour for a secondary whose primary is down.
//
// Writes never start here: policy and role writes, and writes of global tokens, received by a
// secondary are forwarded to the primary (http/aclPrimaryWrites.ts).
import type { ForwardedResponse } from '../http/forward.ts';
import type { Logger } from '../logger.ts';
import { FollowPrimary } from './followPrimary.ts';
import type { ACLPolicy, ACLRole, ACLToken, Command, CommandResult, StateStore } from '../state/index.ts';

export const ACL_REPLICATION_PATH = '/v1/internal/federation/acl';

/** What the primary answers on ACL_REPLICATION_PATH. */
export interface AclReplicationWire {
  PolicyIndex: number;
  RoleIndex: number;
  TokenIndex: number;
  Policies: ACLPolicy[];
  Roles: ACLRole[];
  /** Global tokens only (Local = false); [] unless asked with ?tokens=1. */
  Tokens: ACLToken[];
}

const WAIT = '5m';

export interface AclReplicationOptions {
  primary: string;
  store: StateStore;
  apply(cmd: Command, signal?: AbortSignal): Promise<CommandResult>;
  /** An HTTP GET answered by a server of the primary datacenter, carrying `token`. */
  fetchPrimary(url: string, token: string, signal: AbortSignal): Promise<ForwardedResponse>;
  /** acl.tokens.replication (read on every round: a reload may set it). */
  replicationToken(): string;
  /** acl.enable_token_replication: global tokens too, not only policies and roles. */
  tokens: boolean;
  logger: Logger;
}

/** Consul's structs.ACLReplicationStatus, as GET /v1/acl/replication answers it. */
export interface AclReplicationStatusWire {
  Enabled: boolean;
  Running: boolean;
  SourceDatacenter: string;
  ReplicationType: string;
  ReplicatedIndex: number;
  ReplicatedRoleIndex: number;
  ReplicatedTokenIndex: number;
  LastSuccess: string;
  LastError: string;
  LastErrorMessage: string;
}

/** Go's zero time.Time in JSON: what Consul answers for a time that never happened. */
const ZERO_TIME = '0001-01-01T00:00:00Z';
const goTime = (ms: number): string => (ms === 0 ? ZERO_TIME : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** A row's content without what each datacenter assigns itself (indexes; a token's CreateTime is kept from its first write). */
function contentKey(row: object): string {
  const { CreateIndex: _c, ModifyIndex: _m, CreateTime: _t, ...rest } = row as Record<string, unknown>;
  return stableJson(rest);
}

function withoutIndexes<T extends object>(row: T): Record<string, unknown> {
  const { CreateIndex: _c, ModifyIndex: _m, ...rest } = row as Record<string, unknown>;
  return rest;
}

/** What to change here so `local` equals `remote` (rows keyed by `key`). Exported for tests. */
export function diffRows<T extends object>(local: T[], remote: T[], key: (r: T) => string): { upserts: { row: T; create: boolean }[]; deletes: T[] } {
  const here = new Map(local.map((r) => [key(r), r]));
  const there = new Set(remote.map(key));
  const upserts: { row: T; create: boolean }[] = [];
  for (const r of remote) {
    const mine = here.get(key(r));
    if (mine === undefined) upserts.push({ row: r, create: true });
    else if (contentKey(mine) !== contentKey(r)) upserts.push({ row: r, create: false });
  }
  return { upserts, deletes: local.filter((r) => !there.has(key(r))) };
}

export class AclReplication {
  readonly #o: AclReplicationOptions;
  readonly #log: Logger;
  readonly #loop: FollowPrimary;
  #indexes = { policy: 0, role: 0, token: 0 };
  #lastSuccessMs = 0;
  #lastErrorMs = 0;
  #lastErrorMessage = '';

  constructor(o: AclReplicationOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.server.replication.acl' });
    this.#loop = new FollowPrimary({
      what: 'ACL replication',
      log: this.#log,
      round: (index, signal) => this.#round(index, signal),
      failureMessage: 'ACL replication failed; the replicated ACLs keep serving',
      onFailure: (err) => {
        this.#lastErrorMs = Date.now();
        this.#lastErrorMessage = err.message;
      },
    });
  }

  status(): AclReplicationStatusWire {
    return {
      Enabled: true,
      Running: this.#loop.running,
      SourceDatacenter: this.#o.primary,
      ReplicationType: this.#o.tokens ? 'tokens' : 'policies',
      ReplicatedIndex: this.#indexes.policy,
      ReplicatedRoleIndex: this.#indexes.role,
      ReplicatedTokenIndex: this.#indexes.token,
      LastSuccess: goTime(this.#lastSuccessMs),
      LastError: goTime(this.#lastErrorMs),
      LastErrorMessage: this.#lastErrorMessage,
    };
  }

  start(): void {
    if (!this.#loop.start()) return;
    this.#log.info({ primary: this.#o.primary, tokens: this.#o.tokens }, 'started ACL replication from the primary datacenter');
  }

  stop(): void {
    if (!this.#loop.stop()) return;
    this.#log.info({}, 'stopped ACL replication');
  }

  async #round(index: number, signal: AbortSignal): Promise<number> {
    const url = `${ACL_REPLICATION_PATH}?index=${index}&wait=${WAIT}${this.#o.tokens ? '&tokens=1' : ''}`;
    const res = await this.#o.fetchPrimary(url, this.#o.replicationToken(), signal);
    if (res.status !== 200) {
      // The primary's own words (Consul's "Permission denied: ..."), so LastErrorMessage says why.
      throw new Error(`failed to retrieve remote ACLs from the primary datacenter (${res.status}): ${res.body.toString('utf8').slice(0, 200)}`);
    }
    const remoteIndex = Number(res.headers['x-consul-index'] ?? NaN);
    let wire: AclReplicationWire;
    try {
      wire = JSON.parse(res.body.toString('utf8')) as AclReplicationWire;
    } catch {
      throw new Error('the primary datacenter answered a body that is not JSON');
    }
    if (!Array.isArray(wire.Policies) || !Array.isArray(wire.Roles) || !Array.isArray(wire.Tokens) || !Number.isFinite(remoteIndex)) {
      throw new Error('the primary datacenter answered no ACL lists or no X-Consul-Index');
    }
    const store = this.#o.store;
    const policies = diffRows(store.aclPolicies().value, wire.Policies, (p) => p.ID);
    const roles = diffRows(store.aclRoles().value, wire.Roles, (r) => r.ID);
    // Local tokens are not the primary's business: they are neither compared nor deleted.
    const tokens = this.#o.tokens
      ? diffRows(store.aclTokens().value.filter((t) => !t.Local), wire.Tokens.filter((t) => !t.Local), (t) => t.AccessorID)
      : { upserts: [], deletes: [] };
    let failed = 0;
    const run = async (cmd: Command, what: string): Promise<void> => {
      if (signal.aborted) return;
      const r = await this.#o.apply(cmd, signal);
      if (!r.ok) {
        failed++;
        this.#log.warn({ change: what, err: r.error?.message ?? r.error?.code }, 'a replicated ACL change was refused');
      }
    };
    for (const { row, create } of policies.upserts) await run({ type: 'aclPolicySet', Policy: withoutIndexes(row), Create: create }, `upsert policy ${row.ID}`);
    for (const { row, create } of roles.upserts) await run({ type: 'aclRoleSet', Role: withoutIndexes(row), Create: create }, `upsert role ${row.ID}`);
    for (const { row, create } of tokens.upserts) await run({ type: 'aclTokenSet', Token: withoutIndexes(row), Create: create }, `upsert token ${row.AccessorID}`);
    for (const t of tokens.deletes) await run({ type: 'aclTokenDelete', AccessorID: t.AccessorID }, `delete token ${t.AccessorID}`);
    for (const r of roles.deletes) await run({ type: 'aclRoleDelete', ID: r.ID }, `delete role ${r.ID}`);
    for (const p of policies.deletes) await run({ type: 'aclPolicyDelete', ID: p.ID }, `delete policy ${p.ID}`);
    if (signal.aborted) return index;
    const changes = policies.upserts.length + policies.deletes.length + roles.upserts.length + roles.deletes.length + tokens.upserts.length + tokens.deletes.length;
    if (changes > 0) this.#log.info({ changes, failed, remoteIndex }, 'replicated ACLs from the primary datacenter');
    if (failed > 0) throw new Error(`${failed} replicated ACL change(s) were refused`);
    this.#indexes = { policy: wire.PolicyIndex, role: wire.RoleIndex, token: this.#o.tokens ? wire.TokenIndex : 0 };
    this.#lastSuccessMs = Date.now();
    return remoteIndex < index ? 0 : Math.max(1, remoteIndex);
  }
}
