// The file `GET /v1/snapshot` hands out and `PUT /v1/snapshot` takes back (trellis snapshot
// save/restore). It is the state store's own snapshot with a small header that makes a damaged or
// foreign file fail loudly before anything is restored:
//
//   TRELLIS-SNAPSHOT\n
//   {"version":1,"index":…,"datacenter":"dc1","node":"…","createdAt":"…","stateBytes":…,"sha256":"…"}\n
//   <state store snapshot: stateBytes bytes>
//
// (Consul's is a gzipped tar of meta.json, state.bin and SHA256SUMS; what matters to users is the
// same: one opaque file, verified on restore.)
import { createHash } from 'node:crypto';

const MAGIC = Buffer.from('TRELLIS-SNAPSHOT\n');
export const SNAPSHOT_FILE_VERSION = 1;
const MAX_HEADER_BYTES = 64 * 1024;

export interface SnapshotFileMeta {
  version: number;
  /** The state store index the snapshot was taken at (X-Consul-Index of the GET). */
  index: number;
  datacenter: string;
  node: string;
  createdAt: string;
  stateBytes: number;
  sha256: string;
}

export class SnapshotFileError extends Error {
  // 400 at the HTTP edge: the uploaded file is bad input.
  readonly code = 'ERR_SNAPSHOT_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotFileError';
  }
}

export function encodeSnapshotFile(state: Uint8Array, meta: { index: number; datacenter: string; node: string; now?: Date }): Buffer {
  const header: SnapshotFileMeta = {
    version: SNAPSHOT_FILE_VERSION,
    index: meta.index,
    datacenter: meta.datacenter,
    node: meta.node,
    createdAt: (meta.now ?? new Date()).toISOString(),
    stateBytes: state.byteLength,
    sha256: createHash('sha256').update(state).digest('hex'),
  };
  return Buffer.concat([MAGIC, Buffer.from(JSON.stringify(header) + '\n'), state]);
}

/** Checks the header and the checksum; returns the state store bytes (a view into `file`). */
export function decodeSnapshotFile(file: Uint8Array): { meta: SnapshotFileMeta; state: Uint8Array } {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SnapshotFileError('not a Trellis snapshot file (it does not start with TRELLIS-SNAPSHOT); was it made by `trellis snapshot save`?');
  }
  const nl = buf.indexOf(0x0a, MAGIC.length);
  if (nl < 0 || nl - MAGIC.length > MAX_HEADER_BYTES) throw new SnapshotFileError('snapshot file header is missing or damaged');
  let meta: SnapshotFileMeta;
  try {
    meta = JSON.parse(buf.subarray(MAGIC.length, nl).toString('utf8')) as SnapshotFileMeta;
  } catch (err) {
    throw new SnapshotFileError(`snapshot file header is not valid JSON: ${(err as Error).message}`);
  }
  if (meta === null || typeof meta !== 'object') throw new SnapshotFileError('snapshot file header is not an object');
  if (meta.version !== SNAPSHOT_FILE_VERSION) {
    throw new SnapshotFileError(`snapshot file version ${String(meta.version)} is not supported (this build reads version ${SNAPSHOT_FILE_VERSION})`);
  }
  if (!Number.isSafeInteger(meta.stateBytes) || meta.stateBytes < 0 || typeof meta.sha256 !== 'string') {
    throw new SnapshotFileError('snapshot file header lacks stateBytes or sha256');
  }
  const state = buf.subarray(nl + 1);
  if (state.length !== meta.stateBytes) {
    throw new SnapshotFileError(`snapshot file is truncated or padded: the header announces ${meta.stateBytes} bytes of state, the file holds ${state.length}`);
  }
  const sum = createHash('sha256').update(state).digest('hex');
  if (sum !== meta.sha256) throw new SnapshotFileError(`snapshot file checksum mismatch (sha256 ${sum}, header says ${meta.sha256}): the file is damaged`);
  return { meta, state };
}
