// The Raft state machine of a server: the state store's FSM (state/fsm.ts) plus two things only the
// cluster layer needs, both replicated through the log so every server does exactly the same:
//
// 1. Snapshot restore (PUT /v1/snapshot) as Raft entries. A snapshot can be far larger than one
//    entry (maxEntryBytes), so the leader proposes   begin{id,bytes,sha256}, chunk{id,offset}+data …,
//    end{id}. Every server collects the chunks of the restore in progress; at `end` it checks the
//    size and the checksum and swaps the whole store at once. Chunks of an unfinished restore are
//    part of this machine's snapshots, so a server that catches up from a Raft snapshot taken
//    mid-restore still ends in the same state. A new `begin` discards an unfinished restore (its
//    leader died), and a failed check fails the `end` identically everywhere.
//
// 2. An index offset. The store stamps rows with the index it is given, and refuses indexes at or
//    below its last one. A restored snapshot can come from a cluster whose indexes are far ahead of
//    this log (restoring into a fresh cluster is the main use). hashicorp/raft moves its log index
//    past the snapshot's on restore; our log cannot skip indexes, so the store's index is
//    raft index + offset instead, and a restore raises the offset so the next entry lands above the
//    restored state's last index. Indexes stay monotonic and blocking queries behave as in Consul.
//    The offset is 0 until the first such restore, so index = Raft index in every ordinary cluster.
//
// Control entries start with CONTROL_PREFIX, a byte the state codec never writes first (it writes
// its format version, 1 or 2).
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Entry, StateMachine } from '@trellis/raft';
import { createFsm, type CommandResult, type StateFsm, type StateStore } from '../state/index.ts';

export const CONTROL_PREFIX = 0xf0;
const KIND_RESTORE_BEGIN = 1;
const KIND_RESTORE_CHUNK = 2;
const KIND_RESTORE_END = 3;
const ENVELOPE_MAGIC = Buffer.from('TRELLIS-FSM\n');

interface PendingRestore {
  id: string;
  bytes: number;
  sha256: string;
  data: Buffer;
  received: number;
}

export interface RestoreBegin { id: string; bytes: number; sha256: string }

/** Encodes a control entry: prefix, kind, 4-byte header length, JSON header, payload. */
export function encodeControl(kind: number, header: object, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(6 + h.length + payload.byteLength);
  out[0] = CONTROL_PREFIX;
  out[1] = kind;
  out.writeUInt32BE(h.length, 2);
  h.copy(out, 6);
  out.set(payload, 6 + h.length);
  return out;
}

export const restoreEntries = {
  begin: (b: RestoreBegin) => encodeControl(KIND_RESTORE_BEGIN, b),
  chunk: (id: string, offset: number, data: Uint8Array) => encodeControl(KIND_RESTORE_CHUNK, { id, offset }, data),
  end: (id: string) => encodeControl(KIND_RESTORE_END, { id }),
};

function decodeControl(data: Uint8Array): { kind: number; header: Record<string, unknown>; payload: Uint8Array } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 6) throw new Error('control entry is truncated');
  const len = buf.readUInt32BE(2);
  if (6 + len > buf.length) throw new Error('control entry header overruns the entry');
  const header = JSON.parse(buf.subarray(6, 6 + len).toString('utf8')) as Record<string, unknown>;
  if (header === null || typeof header !== 'object') throw new Error('control entry header is not an object');
  return { kind: buf[1]!, header, payload: buf.subarray(6 + len) };
}

export interface ClusterFsmEvents {
  /** The store was replaced by a user snapshot (leader routines re-register, timers re-arm). */
  restored: [{ index: number }];
}

export class ClusterFsm implements StateMachine<CommandResult> {
  readonly events = new EventEmitter<ClusterFsmEvents>();
  readonly #store: StateStore;
  readonly #inner: StateFsm;
  /** Largest restore accepted (a begin announcing more is refused, identically everywhere). */
  readonly #maxRestoreBytes: number;
  #offset = 0;
  #pending: PendingRestore | undefined;

  constructor(store: StateStore, opts: { maxRestoreBytes?: number } = {}) {
    this.#store = store;
    this.#inner = createFsm(store);
    this.#maxRestoreBytes = opts.maxRestoreBytes ?? 2 * 1024 ** 3;
  }

  /** Store index = Raft index + this. */
  get indexOffset(): number {
    return this.#offset;
  }

  apply(entry: Entry): CommandResult {
    if (entry.data[0] === CONTROL_PREFIX) return this.#applyControl(entry);
    return this.#inner.apply({ index: entry.index + this.#offset, data: entry.data });
  }

  snapshot(): Uint8Array {
    const state = this.#inner.snapshot();
    if (this.#offset === 0 && this.#pending === undefined) return state; // the store's own format, as before clustering
    const p = this.#pending;
    const header = Buffer.from(JSON.stringify({
      version: 1, indexOffset: this.#offset,
      pending: p ? { id: p.id, bytes: p.bytes, sha256: p.sha256, received: p.received } : null,
    }));
    const pendingData = p ? p.data.subarray(0, p.received) : Buffer.alloc(0);
    const len = Buffer.alloc(8);
    len.writeUInt32BE(header.length, 0);
    len.writeUInt32BE(pendingData.length, 4);
    return Buffer.concat([ENVELOPE_MAGIC, len, header, pendingData, state]);
  }

  restore(data: Uint8Array): void {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (!buf.subarray(0, ENVELOPE_MAGIC.length).equals(ENVELOPE_MAGIC)) {
      this.#inner.restore(data);
      this.#offset = 0;
      this.#pending = undefined;
      return;
    }
    let at = ENVELOPE_MAGIC.length;
    const headerLen = buf.readUInt32BE(at);
    const pendingLen = buf.readUInt32BE(at + 4);
    at += 8;
    const header = JSON.parse(buf.subarray(at, at + headerLen).toString('utf8')) as {
      version: number; indexOffset: number; pending: { id: string; bytes: number; sha256: string; received: number } | null;
    };
    at += headerLen;
    if (header.version !== 1) throw new Error(`server FSM snapshot envelope version ${header.version} is not supported`);
    const pendingData = buf.subarray(at, at + pendingLen);
    at += pendingLen;
    this.#inner.restore(buf.subarray(at));
    this.#offset = header.indexOffset;
    if (header.pending) {
      const d = Buffer.alloc(header.pending.bytes);
      pendingData.copy(d, 0);
      this.#pending = { ...header.pending, data: d };
    } else {
      this.#pending = undefined;
    }
  }

  #applyControl(entry: Entry): CommandResult {
    const fail = (message: string): CommandResult => ({ ok: false, index: entry.index + this.#offset, error: { code: 'ERR_BAD_COMMAND', message } });
    let c;
    try {
      c = decodeControl(entry.data);
    } catch (err) {
      return fail(`undecodable control entry: ${(err as Error).message}`);
    }
    const h = c.header;
    switch (c.kind) {
      case KIND_RESTORE_BEGIN: {
        const { id, bytes, sha256 } = h as { id?: unknown; bytes?: unknown; sha256?: unknown };
        if (typeof id !== 'string' || typeof sha256 !== 'string' || typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
          return fail('restore begin entry lacks id, bytes or sha256');
        }
        if (bytes > this.#maxRestoreBytes) return fail(`restore of ${bytes} bytes exceeds the largest accepted (${this.#maxRestoreBytes})`);
        this.#pending = { id, bytes, sha256, data: Buffer.alloc(bytes), received: 0 };
        return this.#ok(entry);
      }
      case KIND_RESTORE_CHUNK: {
        const p = this.#pending;
        if (!p || p.id !== h.id) return fail('restore chunk for a restore that is not in progress');
        if (h.offset !== p.received || p.received + c.payload.byteLength > p.bytes) {
          this.#pending = undefined;
          return fail(`restore chunk at offset ${String(h.offset)} does not follow ${p.received} of ${p.bytes} bytes; restore abandoned`);
        }
        p.data.set(c.payload, p.received);
        p.received += c.payload.byteLength;
        return this.#ok(entry);
      }
      case KIND_RESTORE_END: {
        const p = this.#pending;
        this.#pending = undefined;
        if (!p || p.id !== h.id) return fail('restore end for a restore that is not in progress');
        if (p.received !== p.bytes) return fail(`restore ended after ${p.received} of ${p.bytes} bytes`);
        const sum = createHash('sha256').update(p.data).digest('hex');
        if (sum !== p.sha256) return fail(`restored data checksum mismatch (sha256 ${sum}, expected ${p.sha256})`);
        try {
          this.#inner.restore(p.data);
        } catch (err) {
          // The leader validated the data before proposing it; reaching here means this build reads
          // it differently, which every server of the same build does alike.
          return fail(`restore refused: ${(err as Error).message}`);
        }
        // The next entry (Raft index + 1) must land above everything the snapshot holds.
        this.#offset = Math.max(this.#offset, this.#store.lastIndex() - entry.index);
        const index = this.#store.lastIndex();
        // After apply returns: a listener's failure must never become an FSM failure.
        queueMicrotask(() => this.events.emit('restored', { index }));
        return { ok: true, index, value: true } as CommandResult;
      }
      default:
        return fail(`unknown control entry kind ${c.kind}`);
    }
  }

  #ok(entry: Entry): CommandResult {
    return { ok: true, index: entry.index + this.#offset, value: true } as CommandResult;
  }
}
