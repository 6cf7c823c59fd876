// The byte format of a stored snapshot, shared by the file store, the memory store and the chunked
// transfer helpers. Streaming a snapshot to a peer sends exactly these bytes, so the checksum made
// when the snapshot was written is the one the receiver verifies: corruption anywhere between the
// leader's disk and the follower's disk is caught.
//
//   offset 0  magic "TRSN" (4 bytes)
//          4  format version (1 byte, currently 1)
//          5  meta length M (uint32 BE)
//          9  meta as UTF-8 JSON (M bytes)
//      9 + M  state machine data (the rest)
//    end - 4  crc32 (uint32 BE) of every byte before it
import { crc32 } from 'node:zlib';
import type { ConfState, Snapshot, SnapshotMeta } from '../core/types.ts';
import { CorruptionError } from '../errors.ts';

export const SNAPSHOT_MAGIC = Uint8Array.of(0x54, 0x52, 0x53, 0x4e); // "TRSN"
export const SNAPSHOT_FORMAT_VERSION = 1;
/** Bytes before the meta JSON. */
export const SNAPSHOT_PREFIX_BYTES = 9;
export const SNAPSHOT_TRAILER_BYTES = 4;
/** Meta is membership plus addresses: far below this even for large clusters. A bigger length
 *  field means a damaged header, and must not make us allocate gigabytes to find out. */
export const MAX_SNAPSHOT_META_BYTES = 16 * 1024 * 1024;

export function encodeSnapshotHeader(meta: SnapshotMeta): Uint8Array {
  // Fixed field order so the same meta always encodes to the same bytes.
  const json = JSON.stringify({
    index: meta.index,
    term: meta.term,
    conf: { voters: meta.conf.voters, learners: meta.conf.learners },
    ...(meta.addresses !== undefined ? { addresses: meta.addresses } : {}),
  });
  const metaBytes = new TextEncoder().encode(json);
  const header = new Uint8Array(SNAPSHOT_PREFIX_BYTES + metaBytes.length);
  header.set(SNAPSHOT_MAGIC, 0);
  header[4] = SNAPSHOT_FORMAT_VERSION;
  new DataView(header.buffer).setUint32(5, metaBytes.length);
  header.set(metaBytes, SNAPSHOT_PREFIX_BYTES);
  return header;
}

/** The whole file image of a snapshot (used where the snapshot is in memory anyway). */
export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  const header = encodeSnapshotHeader(snapshot.meta);
  const out = new Uint8Array(header.length + snapshot.data.length + SNAPSHOT_TRAILER_BYTES);
  out.set(header, 0);
  out.set(snapshot.data, header.length);
  const sumAt = header.length + snapshot.data.length;
  new DataView(out.buffer).setUint32(sumAt, crc32(out.subarray(0, sumAt)));
  return out;
}

/**
 * Reads the header from the first bytes of a snapshot file. Returns the meta length needed when
 * `head` is too short to hold the whole header (`needBytes`), so callers reading from a stream or a
 * file can fetch more. `file` names the source in errors.
 */
export function parseSnapshotHeader(head: Uint8Array, file: string):
  { meta: SnapshotMeta; headerBytes: number } | { needBytes: number } {
  if (head.length < SNAPSHOT_PREFIX_BYTES) return { needBytes: SNAPSHOT_PREFIX_BYTES };
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) {
    if (head[i] !== SNAPSHOT_MAGIC[i]) throw new CorruptionError(file, 'not a snapshot file (bad magic bytes)');
  }
  if (head[4] !== SNAPSHOT_FORMAT_VERSION) {
    throw new CorruptionError(file, `unsupported snapshot format version ${head[4]} (this build reads version ${SNAPSHOT_FORMAT_VERSION})`);
  }
  const metaLen = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(5);
  if (metaLen > MAX_SNAPSHOT_META_BYTES) throw new CorruptionError(file, `snapshot meta length ${metaLen} is implausible`);
  const headerBytes = SNAPSHOT_PREFIX_BYTES + metaLen;
  if (head.length < headerBytes) return { needBytes: headerBytes };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(SNAPSHOT_PREFIX_BYTES, headerBytes)));
  } catch (err) {
    throw new CorruptionError(file, `snapshot meta is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  return { meta: checkMeta(parsed, file), headerBytes };
}

/** Decodes and verifies a whole snapshot file image. */
export function decodeSnapshot(bytes: Uint8Array, file: string): Snapshot {
  const minBytes = SNAPSHOT_PREFIX_BYTES + SNAPSHOT_TRAILER_BYTES;
  if (bytes.length < minBytes) throw new CorruptionError(file, `snapshot file is ${bytes.length} bytes, shorter than the smallest valid snapshot (${minBytes}); it was truncated`);
  verifySnapshotChecksum(bytes, file);
  const header = parseSnapshotHeader(bytes.subarray(0, bytes.length - SNAPSHOT_TRAILER_BYTES), file);
  if ('needBytes' in header) throw new CorruptionError(file, 'snapshot header is longer than the file');
  return { meta: header.meta, data: bytes.subarray(header.headerBytes, bytes.length - SNAPSHOT_TRAILER_BYTES) };
}

export function verifySnapshotChecksum(bytes: Uint8Array, file: string): void {
  const sumAt = bytes.length - SNAPSHOT_TRAILER_BYTES;
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(sumAt);
  const actual = crc32(bytes.subarray(0, sumAt));
  if (stored !== actual) throw new CorruptionError(file, `snapshot checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)}); the file is truncated or damaged`);
}

/**
 * Incremental checksum over a snapshot arriving in pieces: everything except the last four bytes is
 * hashed, and those four are the stored checksum. Since the end is unknown until the stream ends,
 * the latest four bytes are held back from the hash.
 */
export class SnapshotChecksum {
  #crc = 0;
  #tail = new Uint8Array(0);
  #bytes = 0;

  get bytes(): number { return this.#bytes; }

  update(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    if (chunk.length >= SNAPSHOT_TRAILER_BYTES) {
      // The held-back bytes are not the trailer after all: hash them, then hold back this chunk's end.
      if (this.#tail.length > 0) this.#crc = crc32(this.#tail, this.#crc);
      const cut = chunk.length - SNAPSHOT_TRAILER_BYTES;
      this.#crc = crc32(chunk.subarray(0, cut), this.#crc);
      this.#tail = Uint8Array.prototype.slice.call(chunk, cut); // a copy (Buffer#slice would be a view): the caller may reuse its chunk buffer
      return;
    }
    const all = concat(this.#tail, chunk);
    const hashable = Math.max(0, all.length - SNAPSHOT_TRAILER_BYTES);
    if (hashable > 0) this.#crc = crc32(all.subarray(0, hashable), this.#crc);
    this.#tail = all.slice(hashable);
  }

  /** Throws CorruptionError unless the bytes seen so far end in their own valid checksum. */
  verify(file: string): void {
    const minBytes = SNAPSHOT_PREFIX_BYTES + SNAPSHOT_TRAILER_BYTES;
    if (this.#bytes < minBytes) throw new CorruptionError(file, `snapshot is ${this.#bytes} bytes, shorter than the smallest valid snapshot (${minBytes}); it was truncated`);
    const stored = new DataView(this.#tail.buffer, this.#tail.byteOffset, 4).getUint32(0);
    if (stored !== this.#crc) throw new CorruptionError(file, `snapshot checksum mismatch (stored ${hex(stored)}, computed ${hex(this.#crc)}); the file is truncated or damaged`);
  }
}

export function compareSnapshotMeta(a: Pick<SnapshotMeta, 'index' | 'term'>, b: Pick<SnapshotMeta, 'index' | 'term'>): number {
  return a.index - b.index || a.term - b.term;
}

function checkMeta(v: unknown, file: string): SnapshotMeta {
  const bad = (what: string): never => { throw new CorruptionError(file, `snapshot meta ${what}`); };
  if (typeof v !== 'object' || v === null) return bad('is not an object');
  const m = v as Record<string, unknown>;
  if (!isIndex(m.index)) bad(`index ${String(m.index)} is not a non-negative integer`);
  if (!isIndex(m.term)) bad(`term ${String(m.term)} is not a non-negative integer`);
  const conf = m.conf as Record<string, unknown> | undefined;
  if (typeof conf !== 'object' || conf === null || !isStringArray(conf.voters) || !isStringArray(conf.learners)) {
    bad('conf must hold voters and learners as arrays of node ids');
  }
  const meta: SnapshotMeta = {
    index: m.index as number,
    term: m.term as number,
    conf: { voters: [...(conf as unknown as ConfState).voters], learners: [...(conf as unknown as ConfState).learners] },
  };
  if (m.addresses !== undefined) {
    const a = m.addresses;
    if (typeof a !== 'object' || a === null || Array.isArray(a) || !Object.values(a).every((x) => typeof x === 'string')) {
      bad('addresses must map node ids to address strings');
    }
    meta.addresses = { ...(a as Record<string, string>) };
  }
  return meta;
}

function isIndex(x: unknown): x is number { return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0; }
function isStringArray(x: unknown): x is string[] { return Array.isArray(x) && x.every((s) => typeof s === 'string'); }
function hex(n: number): string { return `0x${n.toString(16).padStart(8, '0')}`; }

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Snapshot file names sort by term then index (16 digits hold any safe integer), which for the
 *  snapshots of one log is the same order as by index, since terms never decrease along a log. */
export const SNAPSHOT_NAME_PATTERN = /^snap-(\d{16})-(\d{16})\.snap$/;

export function snapshotFileName(meta: Pick<SnapshotMeta, 'index' | 'term'>): string {
  return `snap-${String(meta.term).padStart(16, '0')}-${String(meta.index).padStart(16, '0')}.snap`;
}
