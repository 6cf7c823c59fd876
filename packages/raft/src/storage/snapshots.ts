// Snapshots as files in one directory, one file per snapshot: snap-<term>-<index>.snap in the format
// of snapshotFormat.ts. A snapshot becomes visible only by rename after its bytes are synced, and the
// directory is synced after the rename, so a crash leaves either the old set or the new one, plus at
// most a stray .tmp file that open() deletes. Snapshots stay on disk: latest() reads one into memory
// because its callers need the bytes, and everything else streams.
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Snapshot, SnapshotMeta } from '../core/types.ts';
import { CorruptionError, InvalidSnapshotError, RaftError, StaleSnapshotError, StorageIOError, StoreClosedError } from '../errors.ts';
import {
  compareSnapshotMeta, decodeSnapshot, encodeSnapshotHeader, parseSnapshotHeader, SNAPSHOT_NAME_PATTERN,
  SNAPSHOT_TRAILER_BYTES, SnapshotChecksum, snapshotFileName,
} from './snapshotFormat.ts';
import { assertSameSnapshot, checkChunkBytes, checkRetain } from './snapshotStream.ts';
import type { SnapshotReader, SnapshotWriter, StreamingSnapshotStore } from './snapshotStream.ts';

const TMP_SUFFIX = '.tmp';
/** Read size when verifying a whole file. */
const VERIFY_CHUNK_BYTES = 1 << 20;
/** First read when looking for the header; meta is usually far smaller. */
const HEADER_PROBE_BYTES = 64 * 1024;

export interface FileSnapshotStoreOptions {
  /** How many snapshots to keep (default 2, at least 1). */
  retain?: number;
  /** Told about problems that did not fail the operation (an old snapshot that could not be deleted
   *  now and will be retried). Wire it to the node's logger. */
  onWarning?: (message: string, err: unknown) => void;
}

interface Stored {
  name: string;
  index: number;
  term: number;
}

/**
 * SnapshotStore over a directory (created if missing) that this store alone writes to.
 * Mutations are serialized; chunk writes and chunk reads run outside that order.
 */
export class FileSnapshotStore implements StreamingSnapshotStore {
  readonly dir: string;
  readonly retain: number;
  readonly #onWarning: (message: string, err: unknown) => void;
  #isOpen = false;
  /** Oldest first. */
  #stored: Stored[] = [];
  /** Files whose checksum has been verified (or that this process wrote) since open. */
  #verified = new Set<string>();
  #writers = new Set<FileSnapshotWriter>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, opts: FileSnapshotStoreOptions = {}) {
    this.dir = dir;
    this.retain = checkRetain(opts.retain);
    this.#onWarning = opts.onWarning ?? (() => {});
  }

  async open(): Promise<void> {
    return this.#serial(async () => {
      if (this.#isOpen) return;
      let names: string[];
      try {
        await mkdir(this.dir, { recursive: true });
        names = await readdir(this.dir);
      } catch (err) {
        throw new StorageIOError(this.dir, 'opening the snapshot directory', err);
      }
      const stored: Stored[] = [];
      for (const name of names) {
        if (name.endsWith(TMP_SUFFIX)) {
          // A write that never reached its rename: by construction nothing refers to it.
          await this.#unlink(name, 'removing a partial snapshot left by a crash', true);
          continue;
        }
        const m = SNAPSHOT_NAME_PATTERN.exec(name);
        if (m) stored.push({ name, term: Number(m[1]), index: Number(m[2]) });
      }
      this.#stored = stored.sort(compareSnapshotMeta);
      this.#verified.clear();
      this.#isOpen = true;
      // A crash between a rename and the pruning that follows it leaves extra snapshots.
      await this.#prune();
    });
  }

  async save(snapshot: Snapshot): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      checkMeta(snapshot.meta);
      this.#assertNotStale(snapshot.meta);
      const name = snapshotFileName(snapshot.meta);
      const tmp = join(this.dir, name + TMP_SUFFIX);
      const header = encodeSnapshotHeader(snapshot.meta);
      const trailer = new Uint8Array(SNAPSHOT_TRAILER_BYTES);
      new DataView(trailer.buffer).setUint32(0, crc32(snapshot.data, crc32(header)));
      let fh: FileHandle | undefined;
      try {
        fh = await open(tmp, 'wx');
        await writeAll(fh, header);
        await writeAll(fh, snapshot.data);
        await writeAll(fh, trailer);
        await fh.sync();
        await fh.close();
        fh = undefined;
      } catch (err) {
        await fh?.close().catch(() => undefined); // the write error below is the one worth reporting
        await unlink(tmp).catch(() => undefined); // best effort: open() removes leftovers anyway
        throw asIOError(err, tmp, writeFailure(err, name));
      }
      await this.#install(name, tmp, snapshot.meta);
    });
  }

  async latest(): Promise<Snapshot | undefined> {
    return this.#serial(async () => {
      this.#assertOpen();
      const newest = this.#stored.at(-1);
      if (!newest) return undefined;
      const path = join(this.dir, newest.name);
      let bytes: Buffer;
      try {
        bytes = await readWhole(path);
      } catch (err) {
        throw new StorageIOError(path, 'reading the latest snapshot', err);
      }
      const snap = decodeSnapshot(bytes, path);
      checkNameMatches(newest, snap.meta, path);
      this.#verified.add(newest.name);
      // A plain view rather than the Buffer, without copying the (possibly large) data.
      return { meta: snap.meta, data: new Uint8Array(snap.data.buffer, snap.data.byteOffset, snap.data.byteLength) };
    });
  }

  async latestMeta(): Promise<SnapshotMeta | undefined> {
    return this.#serial(async () => {
      this.#assertOpen();
      const newest = this.#stored.at(-1);
      if (!newest) return undefined;
      const path = join(this.dir, newest.name);
      const fh = await openForRead(path);
      try {
        const meta = await readHeader(fh, path);
        checkNameMatches(newest, meta, path);
        if (!this.#verified.has(newest.name)) {
          // Same guarantee as latest(), streamed so the data never sits in memory.
          const sum = new SnapshotChecksum();
          const buf = Buffer.allocUnsafe(VERIFY_CHUNK_BYTES);
          for (let pos = 0; ;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead === 0) break;
            sum.update(buf.subarray(0, bytesRead));
            pos += bytesRead;
          }
          sum.verify(path);
          this.#verified.add(newest.name);
        }
        return meta;
      } finally {
        await fh.close();
      }
    });
  }

  async list(): Promise<Array<{ index: number; term: number }>> {
    return this.#serial(async () => {
      this.#assertOpen();
      return this.#stored.map((s) => ({ index: s.index, term: s.term })).reverse();
    });
  }

  async openWriter(meta: SnapshotMeta): Promise<SnapshotWriter> {
    return this.#serial(async () => {
      this.#assertOpen();
      checkMeta(meta);
      this.#assertNotStale(meta);
      const name = snapshotFileName(meta);
      const tmp = join(this.dir, name + TMP_SUFFIX);
      let fh: FileHandle;
      try {
        fh = await open(tmp, 'wx+');
      } catch (err) {
        throw asIOError(err, tmp, writeFailure(err, name));
      }
      const writer: FileSnapshotWriter = new FileSnapshotWriter(meta, name, tmp, fh, {
        finish: (got) => this.#serial(async () => {
          this.#assertOpen();
          this.#assertNotStale(got);
          await this.#install(name, tmp, got);
        }),
        forget: () => { this.#writers.delete(writer); },
      });
      this.#writers.add(writer);
      return writer;
    });
  }

  async openReader(): Promise<SnapshotReader | undefined> {
    return this.#serial(async () => {
      this.#assertOpen();
      const newest = this.#stored.at(-1);
      if (!newest) return undefined;
      const path = join(this.dir, newest.name);
      // The open handle keeps the bytes readable even if a newer snapshot prunes this file.
      const fh = await openForRead(path);
      try {
        const meta = await readHeader(fh, path);
        checkNameMatches(newest, meta, path);
        const { size } = await fh.stat();
        return new FileSnapshotReader(fh, path, meta, size);
      } catch (err) {
        await fh.close();
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    const writers = [...this.#writers];
    await Promise.all(writers.map((w) => w.abort()));
    return this.#serial(async () => {
      this.#isOpen = false;
    });
  }

  /** Renames a synced tmp file into place, syncs the directory, and prunes old snapshots. */
  async #install(name: string, tmp: string, meta: SnapshotMeta): Promise<void> {
    const path = join(this.dir, name);
    try {
      await rename(tmp, path);
      await syncDir(this.dir);
    } catch (err) {
      await unlink(tmp).catch(() => undefined); // best effort; open() removes leftovers anyway
      throw new StorageIOError(path, 'installing the snapshot', err);
    }
    this.#stored = this.#stored.filter((s) => s.name !== name);
    this.#stored.push({ name, index: meta.index, term: meta.term });
    this.#stored.sort(compareSnapshotMeta);
    this.#verified.add(name);
    await this.#prune();
  }

  async #prune(): Promise<void> {
    while (this.#stored.length > this.retain) {
      const old = this.#stored[0]!;
      if (!(await this.#unlink(old.name, 'deleting an old snapshot', false))) return;
      this.#stored.shift();
      this.#verified.delete(old.name);
    }
  }

  /** Returns false (after warning) when the file could not be deleted; it stays listed to retry later. */
  async #unlink(name: string, what: string, required: boolean): Promise<boolean> {
    const path = join(this.dir, name);
    try {
      await unlink(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      if (required) throw new StorageIOError(path, what, err);
      // Pruning runs after the new snapshot is durable: failing the save now would misreport it.
      this.#onWarning(`${what} ${path} failed; will retry after the next snapshot`, err);
      return false;
    }
  }

  #assertNotStale(meta: SnapshotMeta): void {
    const latest = this.#stored.at(-1);
    if (latest && compareSnapshotMeta(meta, latest) < 0) throw new StaleSnapshotError(meta.index, meta.term, latest.index, latest.term);
  }

  #assertOpen(): void {
    if (!this.#isOpen) throw new StoreClosedError(`snapshot store at ${this.dir}`);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined); // the caller gets the error; the queue moves on
    return run;
  }
}

/** How a writer hands its verified file back to the store. */
interface WriterHooks {
  /** Installs the synced tmp file as the snapshot `meta` (serialized with the store's other changes). */
  finish(meta: SnapshotMeta): Promise<void>;
  /** The writer is done (committed or aborted). */
  forget(): void;
}

class FileSnapshotWriter implements SnapshotWriter {
  readonly meta: SnapshotMeta;
  readonly name: string;
  readonly tmp: string;
  readonly #hooks: WriterHooks;
  #fh: FileHandle | undefined;
  #sum = new SnapshotChecksum();
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';

  constructor(meta: SnapshotMeta, name: string, tmp: string, fh: FileHandle, hooks: WriterHooks) {
    this.#hooks = hooks;
    this.meta = meta;
    this.name = name;
    this.tmp = tmp;
    this.#fh = fh;
  }

  async write(chunk: Uint8Array): Promise<void> {
    const fh = this.#usable();
    try {
      await writeAll(fh, chunk);
    } catch (err) {
      await this.abort();
      throw new StorageIOError(this.tmp, 'writing a received snapshot chunk', err);
    }
    this.#sum.update(chunk);
  }

  async commit(): Promise<SnapshotMeta> {
    const fh = this.#usable();
    this.#state = 'committing';
    try {
      this.#sum.verify(this.tmp);
      const meta = await readHeader(fh, this.tmp);
      assertSameSnapshot(meta, this.meta, this.tmp);
      await fh.sync();
      await fh.close();
      this.#fh = undefined;
      await this.#hooks.finish(meta);
      this.#state = 'committed';
      this.#hooks.forget();
      return meta;
    } catch (err) {
      this.#state = 'open';
      await this.abort();
      throw err instanceof RaftError ? err : new StorageIOError(this.tmp, 'committing a received snapshot', err);
    }
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    this.#hooks.forget();
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => undefined); // the handle is being thrown away with the file
    // If this fails the leftover .tmp is harmless (never listed) and open() removes it.
    await unlink(this.tmp).catch(() => undefined);
  }

  #usable(): FileHandle {
    if (this.#state !== 'open' || !this.#fh) throw new StoreClosedError(`snapshot writer for ${this.tmp}`, `is ${this.#state}`);
    return this.#fh;
  }
}

class FileSnapshotReader implements SnapshotReader {
  readonly meta: SnapshotMeta;
  readonly sizeBytes: number;
  readonly #path: string;
  #fh: FileHandle | undefined;
  #used = false;

  constructor(fh: FileHandle, path: string, meta: SnapshotMeta, sizeBytes: number) {
    this.#fh = fh;
    this.#path = path;
    this.meta = meta;
    this.sizeBytes = sizeBytes;
  }

  async *readChunks(chunkBytes: number): AsyncGenerator<Uint8Array, void, undefined> {
    checkChunkBytes(chunkBytes);
    if (this.#used || !this.#fh) throw new StoreClosedError(`snapshot reader for ${this.#path}`, 'has already been read or closed');
    this.#used = true;
    const fh = this.#fh;
    const sum = new SnapshotChecksum();
    try {
      for (let pos = 0; pos < this.sizeBytes;) {
        // A fresh buffer per chunk: the consumer may hold on to it (e.g. queued in a gRPC stream).
        const buf = new Uint8Array(Math.min(chunkBytes, this.sizeBytes - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) throw new CorruptionError(this.#path, `snapshot file ended at ${pos} bytes while ${this.sizeBytes} were expected`);
        const chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
        sum.update(chunk);
        pos += bytesRead;
        yield chunk;
      }
      sum.verify(this.#path);
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.#used = true;
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}

function checkMeta(meta: SnapshotMeta): void {
  for (const f of ['index', 'term'] as const) {
    if (!Number.isSafeInteger(meta[f]) || meta[f] < 0) throw new InvalidSnapshotError(`${f} ${meta[f]} is not a non-negative integer`);
  }
}

function checkNameMatches(stored: Stored, meta: SnapshotMeta, path: string): void {
  if (stored.index !== meta.index || stored.term !== meta.term) {
    throw new CorruptionError(path, `the file name says index ${stored.index} term ${stored.term} but the snapshot inside is index ${meta.index} term ${meta.term}`);
  }
}

/** Reads and parses the header at the start of an open snapshot file (without checking the data). */
async function readHeader(fh: FileHandle, path: string): Promise<SnapshotMeta> {
  const truncated = (size: number, need: number) =>
    new CorruptionError(path, `snapshot file is ${size} bytes, shorter than the ${need} bytes its header and checksum need; it was truncated`);
  for (let want = HEADER_PROBE_BYTES; ;) {
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await fh.read(buf, 0, want, 0);
    const parsed = parseSnapshotHeader(buf.subarray(0, bytesRead), path);
    const need = ('meta' in parsed ? parsed.headerBytes : parsed.needBytes) + SNAPSHOT_TRAILER_BYTES;
    // A short read means bytesRead is the file's size.
    if (bytesRead < want && bytesRead < need) throw truncated(bytesRead, need);
    if ('meta' in parsed) return parsed.meta;
    want = need;
  }
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new StorageIOError(path, 'opening the snapshot', err);
  }
}

async function readWhole(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  // write() may write less than asked (large buffers, signals): loop until all of it is out.
  for (let off = 0; off < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
    off += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Windows cannot open a directory for fsync; it journals renames.
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function writeFailure(err: unknown, name: string): string {
  return (err as NodeJS.ErrnoException).code === 'EEXIST'
    ? `writing snapshot ${name} (another write of the same snapshot is in progress)`
    : `writing snapshot ${name}`;
}

function asIOError(err: unknown, path: string, what: string): RaftError {
  return err instanceof RaftError ? err : new StorageIOError(path, what, err);
}
