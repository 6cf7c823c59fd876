// User snapshots on a server: GET /v1/snapshot (the store as a verified file) and PUT /v1/snapshot,
// a restore replicated through Raft as a run of chunk entries (see fsm.ts), run on the leader.
import { randomUUID } from 'node:crypto';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { RpcClient } from '../rpc/client.ts';
import { StateStore, type CommandResult } from '../state/index.ts';
import { ServerError } from './errors.ts';
import { restoreEntries } from './fsm.ts';
import type { RaftServer } from './raftServer.ts';
import { decodeSnapshotFile, encodeSnapshotFile } from './snapshotFile.ts';
import type { Writes } from './writes.ts';

/** Restore data per Raft entry: well under the default maxEntryBytes (512 KiB). */
const RESTORE_ENTRY_BYTES = 256 * 1024;
/** Restore entries proposed ahead of the oldest one not yet applied. */
const RESTORE_WINDOW = 16;

export interface SnapshotsOptions {
  config: Pick<RuntimeConfig, 'datacenter' | 'nodeName'>;
  raft: RaftServer;
  store: StateStore;
  rpcClient: RpcClient;
  writes: Writes;
  /** A default-consistency read barrier (reads.ts). */
  defaultRead: (signal?: AbortSignal) => Promise<void>;
  logger: Logger;
}

export class Snapshots {
  readonly #o: SnapshotsOptions;
  readonly #log: Logger;
  #restoring: Promise<unknown> = Promise.resolve();

  constructor(o: SnapshotsOptions) {
    this.#o = o;
    this.#log = o.logger;
  }

  /** GET /v1/snapshot: the store as a verified file, as current as a read of the given mode. */
  async snapshot(o: { stale: boolean; signal?: AbortSignal }): Promise<{ file: Buffer; index: number }> {
    if (!o.stale) await this.#o.defaultRead(o.signal);
    const store = this.#o.store;
    const index = store.lastIndex();
    const state = store.snapshot();
    return { file: encodeSnapshotFile(state, { index, datacenter: this.#o.config.datacenter, node: this.#o.config.nodeName }), index };
  }

  /** PUT /v1/snapshot: replaces the state of every server, through Raft (see fsm.ts). */
  async restore(file: Uint8Array, signal?: AbortSignal): Promise<{ index: number }> {
    // Checked here too, so bad input fails fast without a round trip to the leader.
    const { state } = decodeSnapshotFile(file);
    new StateStore().restore(state);
    return this.#o.writes.onLeader('restore', { idempotent: true, signal },
      () => this.restoreOnLeader(file),
      (address, call) => this.#o.rpcClient.restore(address, file, { ...call, deadline: Date.now() + 10 * 60_000 })
        .then((r) => ({ index: r.index ?? 0 })));
  }

  async restoreOnLeader(file: Uint8Array): Promise<{ index: number }> {
    // One restore at a time: a second would discard the first one's chunks mid-way.
    const run = this.#restoring.then(() => this.#restoreNow(file), () => this.#restoreNow(file));
    this.#restoring = run.catch(() => { /* its caller reports it */ });
    return run;
  }

  async #restoreNow(file: Uint8Array): Promise<{ index: number }> {
    const { state, meta } = decodeSnapshotFile(file);
    new StateStore().restore(state); // throws ERR_SNAPSHOT_INVALID before anything is proposed
    const id = randomUUID();
    const node = this.#o.raft.node;
    const proposals: Array<Promise<CommandResult>> = [];
    const track = (p: Promise<CommandResult>) => {
      p.catch(() => { /* observed through Promise.all below */ });
      proposals.push(p);
      return p;
    };
    track(node.propose(restoreEntries.begin({ id, bytes: state.byteLength, sha256: meta.sha256 })));
    for (let off = 0; off < state.byteLength; off += RESTORE_ENTRY_BYTES) {
      // A window of entries in flight keeps a large restore from piling up in the log's memory and
      // the transport's queues (entries commit in order, so waiting on the oldest is enough).
      if (proposals.length > RESTORE_WINDOW) await proposals[proposals.length - RESTORE_WINDOW - 1];
      track(node.propose(restoreEntries.chunk(id, off, state.subarray(off, off + RESTORE_ENTRY_BYTES))));
    }
    const end = track(node.propose(restoreEntries.end(id)));
    await Promise.all(proposals);
    const r = await end;
    if (!r.ok) throw new ServerError('ERR_SNAPSHOT_INVALID', `snapshot restore failed: ${r.error.message}`);
    this.#log.info({ index: r.index, bytes: state.byteLength, from: meta.node, takenAt: meta.createdAt }, 'snapshot restored');
    return { index: r.index };
  }
}
