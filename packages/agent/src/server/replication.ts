// Config entry replication into a secondary datacenter (Consul's leader_connect / config_replication):
// the leader of a datacenter whose primary_datacenter is another one keeps its config entries (every
// kind, service-intentions included, so intentions too) equal to the primary's.
//
//   loop (leader only; stops when leadership is lost or the server stops):
//     read every entry from the primary, blocking on the last index seen (GET of
//       /v1/internal/federation/config-entries over the server RPC across the WAN, server/wan.ts)
//     diff against the local table: upserts for entries missing here or differing (their content,
//       not the indexes, which each datacenter's Raft log assigns), deletes for entries the primary
//       no longer has
//     apply them through this datacenter's Raft log (configEntrySet / configEntryDelete), defaults
//       and resolvers before splitters and routers (the protocol checks read them), deletes in reverse
//   on failure (primary unreachable): wait with backoff and try again; reads in this datacenter keep
//   serving the last replicated state, and the first successful read after recovery converges.
//
// Writes never start here: config entry and intention writes received by a secondary are forwarded
// to the primary (http/server.ts, writesInPrimary).
import type { ForwardedResponse } from '../http/forward.ts';
import { CONFIG_ENTRIES_REPLICATION_PATH } from '../http/routes/replication.ts';
import type { Logger } from '../logger.ts';
import { FollowPrimary } from './followPrimary.ts';
import type { Command, CommandResult, ConfigEntry, StateStore } from '../state/index.ts';

/** Apply order of kinds: what others are validated against comes first (Consul's kind ordering). */
const KIND_ORDER = ['proxy-defaults', 'mesh', 'service-defaults', 'service-resolver', 'service-splitter', 'service-router'];
const kindRank = (kind: string): number => {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
};

/** Longest one blocking read of the primary waits (the primary answers sooner on any change). */
const WAIT = '5m';

export interface ConfigReplicationOptions {
  primary: string;
  store: StateStore;
  apply(cmd: Command, signal?: AbortSignal): Promise<CommandResult>;
  /** An HTTP GET answered by a server of the primary datacenter. */
  fetchPrimary(url: string, signal: AbortSignal): Promise<ForwardedResponse>;
  logger: Logger;
}

export interface ReplicationStatus {
  running: boolean;
  /** The primary's X-Consul-Index of the last state applied here (0: none yet). */
  lastRemoteIndex: number;
  /** Date.now() of the last successful round; 0 before the first. */
  lastSuccessMs: number;
  lastError: string;
}

/** Entry content without the indexes each datacenter assigns, as a comparable string. */
function contentKey(e: ConfigEntry): string {
  const { CreateIndex: _c, ModifyIndex: _m, ...rest } = e as ConfigEntry & { CreateIndex?: number; ModifyIndex?: number };
  return stableJson(rest);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const keyOf = (e: ConfigEntry): string => `${e.Kind}\u0000${e.Name}`;

/** What to change here so the local entries equal the primary's. Exported for tests. */
export function diffConfigEntries(local: ConfigEntry[], remote: ConfigEntry[]): { upserts: ConfigEntry[]; deletes: ConfigEntry[] } {
  const here = new Map(local.map((e) => [keyOf(e), e]));
  const there = new Map(remote.map((e) => [keyOf(e), e]));
  const upserts = remote.filter((e) => {
    const mine = here.get(keyOf(e));
    return mine === undefined || contentKey(mine) !== contentKey(e);
  });
  const deletes = local.filter((e) => !there.has(keyOf(e)));
  upserts.sort((a, b) => kindRank(a.Kind) - kindRank(b.Kind));
  deletes.sort((a, b) => kindRank(b.Kind) - kindRank(a.Kind));
  return { upserts, deletes };
}

export class ConfigReplication {
  readonly #o: ConfigReplicationOptions;
  readonly #log: Logger;
  readonly #loop: FollowPrimary;
  readonly #status: ReplicationStatus = { running: false, lastRemoteIndex: 0, lastSuccessMs: 0, lastError: '' };

  constructor(o: ConfigReplicationOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.server.replication.config_entry' });
    this.#loop = new FollowPrimary({
      what: 'config entry replication',
      log: this.#log,
      round: (index, signal) => this.#round(index, signal),
      failureMessage: 'config entry replication failed; the last replicated entries keep serving',
      onFailure: (err) => { this.#status.lastError = err.message; },
    });
  }

  status(): ReplicationStatus {
    return { ...this.#status };
  }

  /** On gaining leadership. */
  start(): void {
    if (!this.#loop.start(() => { this.#status.running = this.#loop.running; })) return;
    this.#status.running = true;
    this.#log.info({ primary: this.#o.primary }, 'started config entry replication from the primary datacenter');
  }

  /** On losing leadership, and when the server stops. */
  stop(): void {
    if (!this.#loop.stop()) return;
    this.#status.running = false;
    this.#log.info({}, 'stopped config entry replication');
  }

  /** One blocking read of the primary and the changes it calls for; returns the index to block on next. */
  async #round(index: number, signal: AbortSignal): Promise<number> {
    const url = `${CONFIG_ENTRIES_REPLICATION_PATH}?index=${index}&wait=${WAIT}`;
    const res = await this.#o.fetchPrimary(url, signal);
    if (res.status !== 200) throw new Error(`the primary datacenter answered ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
    const remoteIndex = Number(res.headers['x-consul-index'] ?? NaN);
    let remote: unknown;
    try {
      remote = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new Error('the primary datacenter answered a body that is not JSON');
    }
    if (!Array.isArray(remote) || !Number.isFinite(remoteIndex)) throw new Error('the primary datacenter answered no entry list or no X-Consul-Index');
    const { upserts, deletes } = diffConfigEntries(this.#o.store.configEntriesAll().value, remote as ConfigEntry[]);
    let failed = 0;
    for (const e of upserts) {
      if (signal.aborted) return index;
      const { CreateIndex: _c, ModifyIndex: _m, ...entry } = e as ConfigEntry & { CreateIndex?: number; ModifyIndex?: number };
      failed += await this.#applyOne({ type: 'configEntrySet', Entry: entry as ConfigEntry }, `upsert ${e.Kind}/${e.Name}`, signal);
    }
    for (const e of deletes) {
      if (signal.aborted) return index;
      failed += await this.#applyOne({ type: 'configEntryDelete', Kind: e.Kind, Name: e.Name }, `delete ${e.Kind}/${e.Name}`, signal);
    }
    if (upserts.length + deletes.length > 0) {
      this.#log.info({ upserts: upserts.length, deletes: deletes.length, failed, remoteIndex }, 'replicated config entries from the primary datacenter');
    }
    // Something refused: read again from scratch soon rather than block on an index already seen.
    if (failed > 0) throw new Error(`${failed} replicated config entry change(s) were refused`);
    this.#status.lastRemoteIndex = remoteIndex;
    this.#status.lastSuccessMs = Date.now();
    this.#status.lastError = '';
    // An index that went backwards (the primary restored a snapshot, or was rebuilt): start over.
    return remoteIndex < index ? 0 : Math.max(1, remoteIndex);
  }

  /** 0 when applied, 1 when refused (logged). Failures to reach Raft (no leader) are thrown. */
  async #applyOne(cmd: Command, what: string, signal: AbortSignal): Promise<number> {
    const r = await this.#o.apply(cmd, signal);
    if (!r.ok) {
      this.#log.warn({ change: what, err: r.error?.message ?? r.error?.code }, 'a replicated config entry change was refused');
      return 1;
    }
    return 0;
  }
}
