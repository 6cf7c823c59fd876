// The agent's node ID: -node-id, else kept in <data-dir>/node-id (made once), else (-dev) new each start.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RuntimeConfig } from './config/runtime.ts';

export async function resolveNodeId(config: RuntimeConfig): Promise<string> {
  if (config.nodeId) return config.nodeId.toLowerCase();
  if (config.devMode || !config.dataDir) return randomUUID();
  const file = path.join(config.dataDir, 'node-id');
  try {
    const id = (await readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return id.toLowerCase();
    throw new Error(`${file} holds "${id}", which is not a UUID: fix or delete the file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(`${file}.tmp`, id + '\n');
  await rename(`${file}.tmp`, file);
  return id;
}
