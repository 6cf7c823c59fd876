// `trellis snapshot save|restore`: GET and PUT /v1/snapshot. As Consul does, `save` writes to
// "<file>.unverified", checks it, makes it durable, and only then renames it over <file>, so a
// failed or interrupted save never leaves a truncated file under the name a backup job expects.

import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS, indexOf } from '../http.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];

export const snapshotSaveCommand: Command = {
  name: 'snapshot save',
  synopsis: 'Saves snapshot of Trellis server state',
  help: `Usage: trellis snapshot save [options] FILE

  Retrieves an atomic, point-in-time snapshot of the state of the servers
  which includes key/value entries, service catalog, sessions and ACLs.

      $ trellis snapshot save backup.snap
      $ trellis snapshot save -stale backup.snap`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length === 0) { ctx.ui.error('Missing FILE argument'); return 1; }
    if (flags.args.length > 1) return tooManyArgs(ctx, '1', flags.args.length);
    const file = flags.args[0]!;
    const client = clientFor(ctx, flags);
    if (!client) return 1;

    let res: Response;
    try {
      res = await client.stream('GET', '/v1/snapshot');
    } catch (err) {
      ctx.ui.error(apiErrorText('Error saving snapshot', err));
      return 1;
    }
    const index = indexOf(res);
    const unverified = `${file}.unverified`;
    try {
      if (!res.body) throw new Error('the agent sent no snapshot data');
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), fs.createWriteStream(unverified, { mode: 0o600 }));
    } catch (err) {
      removeQuietly(unverified);
      ctx.ui.error(`Error writing unverified snapshot file: ${(err as Error).message}`);
      return 1;
    }
    try {
      verifySnapshotFile(unverified, res.headers.get('content-length'));
    } catch (err) {
      removeQuietly(unverified);
      ctx.ui.error(`Error verifying snapshot file: ${(err as Error).message}`);
      return 1;
    }
    try {
      fsyncFile(unverified);
      fs.renameSync(unverified, file);
      fsyncDir(path.dirname(path.resolve(file)));
    } catch (err) {
      removeQuietly(unverified);
      ctx.ui.error(`Error renaming ${JSON.stringify(unverified)} to ${JSON.stringify(file)}: ${(err as Error).message}`);
      return 1;
    }
    ctx.ui.info(`Saved and verified snapshot to index ${index}`);
    return 0;
  },
};

/**
 * What the CLI can check without knowing the server's snapshot encoding: the file is not empty
 * and holds every byte the agent announced. (The agent verifies the contents on restore.)
 */
export function verifySnapshotFile(file: string, contentLength: string | null): void {
  const size = fs.statSync(file).size;
  if (size === 0) throw new Error('the snapshot is empty');
  if (contentLength !== null && /^\d+$/.test(contentLength) && Number(contentLength) !== size) {
    throw new Error(`received ${size} bytes but the agent announced ${contentLength}: the transfer was cut short`);
  }
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories (EINVAL/EISDIR); the rename itself succeeded.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function removeQuietly(file: string): void {
  try { fs.rmSync(file, { force: true }); } catch { /* best effort cleanup of a temp file; the error reported is the original one */ }
}

export const snapshotRestoreCommand: Command = {
  name: 'snapshot restore',
  synopsis: 'Restores snapshot of Trellis server state',
  help: `Usage: trellis snapshot restore [options] FILE

  Restores an atomic, point-in-time snapshot of the state of the servers
  which includes key/value entries, service catalog, sessions and ACLs.
  This is primarily intended to be used when recovering from a disaster,
  restoring into a fresh cluster of servers.

      $ trellis snapshot restore backup.snap`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length === 0) { ctx.ui.error('Missing FILE argument'); return 1; }
    if (flags.args.length > 1) return tooManyArgs(ctx, '1', flags.args.length);
    const file = flags.args[0]!;
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      ctx.ui.error(`Error opening snapshot file: ${(err as Error).message}`);
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      await client.request('PUT', '/v1/snapshot', { body: data });
    } catch (err) {
      ctx.ui.error(apiErrorText('Error restoring snapshot', err));
      return 1;
    }
    ctx.ui.info('Restored snapshot');
    return 0;
  },
};
