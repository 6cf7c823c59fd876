// `trellis kv get|put|delete|export|import`: Consul's command/kv/*, same flags, output and exit codes.

import fs from 'node:fs';
import type { Command, CommandContext } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS, keyPath, parseJson } from '../http.ts';
import { kvDelete, kvGet, kvList, kvPut, type KVPair } from '../api/kv.ts';
import { goJsonIndent, tabwrite } from '../format.ts';
import { readAll } from '../io.ts';
import { flagBigint, flagBool, flagString } from '../../config/flags.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];

function valueBytes(p: KVPair): Buffer {
  return p.Value ? Buffer.from(p.Value, 'base64') : Buffer.alloc(0);
}

/** Consul: keys cannot start with "/", so a leading one is dropped as a courtesy. */
function stripSlash(key: string): string {
  return key.startsWith('/') ? key.slice(1) : key;
}

/** Consul's prettyKVPair, through a tabwriter (padding 6). */
export function formatDetailed(p: KVPair, base64: boolean): string {
  const v = valueBytes(p);
  return tabwrite([
    ['CreateIndex', String(p.CreateIndex)],
    ['Flags', String(p.Flags)],
    ['Key', p.Key],
    ['LockIndex', String(p.LockIndex)],
    ['ModifyIndex', String(p.ModifyIndex)],
    ['Session', p.Session ? p.Session : '-'],
    ['Value', base64 ? v.toString('base64') : v.toString('utf8')],
  ]);
}

export const kvGetCommand: Command = {
  name: 'kv get',
  synopsis: 'Retrieves or lists data from the KV store',
  help: `Usage: trellis kv get [options] [KEY_OR_PREFIX]

  Retrieves the value from the key-value store at the given key name. If no
  key exists with that name, an error is returned. If a key exists with that
  name but has no data, nothing is returned. If the name or prefix is omitted,
  it defaults to "" which is the root of the key-value store.

      $ trellis kv get foo
      $ trellis kv get -detailed foo
      $ trellis kv get -recurse foo
      $ trellis kv get -keys foo`,
  flags: [
    { name: 'base64', kind: 'bool', usage: 'Base64 encode the value. The default value is false.' },
    { name: 'detailed', kind: 'bool', usage: 'Provide additional metadata about the key in addition to the value such as the ModifyIndex and any flags that may have been set on the key. The default value is false.' },
    { name: 'keys', kind: 'bool', usage: 'List keys which start with the given prefix, but not their values. This is especially useful if you only need the key names themselves. This option is commonly combined with the -separator option. The default value is false.' },
    { name: 'recurse', kind: 'bool', usage: 'Recursively look at all keys prefixed with the given path. The default value is false.' },
    { name: 'separator', kind: 'string', placeholder: 'string', usage: 'String to use as a separator between keys. The default value is "/", but this option is only taken into account when paired with the -keys flag.' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 1) return tooManyArgs(ctx, '1', flags.args.length);
    const key = stripSlash(flags.args[0] ?? '');
    const recurse = flagBool(flags, 'recurse') ?? false;
    const keys = flagBool(flags, 'keys') ?? false;
    const detailed = flagBool(flags, 'detailed') ?? false;
    const b64 = flagBool(flags, 'base64') ?? false;
    if (key === '' && !(recurse || keys)) {
      ctx.ui.error('Error! Missing KEY argument');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      if (keys) {
        const res = await client.json<string[]>('GET', `/v1/kv/${keyPath(key)}`, {
          query: { keys: true, separator: flagString(flags, 'separator') ?? '/' }, accept: [404],
        });
        for (const k of res.status === 404 ? [] : res.value ?? []) ctx.ui.info(k);
        return 0;
      }
      if (recurse) {
        const { pairs } = await kvList(client, key);
        pairs.forEach((p, i) => {
          if (detailed) {
            ctx.ui.info(formatDetailed(p, b64));
            if (i < pairs.length - 1) ctx.ui.info('');
          } else {
            ctx.io.stdout.write(`${p.Key}:`);
            ctx.ui.bytes(b64 ? Buffer.from(valueBytes(p).toString('base64')) : valueBytes(p));
          }
        });
        return 0;
      }
      const { pair } = await kvGet(client, key);
      if (!pair) {
        ctx.ui.error(`Error! No key exists at: ${key}`);
        return 1;
      }
      if (detailed) ctx.ui.info(formatDetailed(pair, b64));
      else ctx.ui.bytes(b64 ? Buffer.from(valueBytes(pair).toString('base64')) : valueBytes(pair));
      return 0;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error querying agent', err));
      return 1;
    }
  },
};

/** Consul's dataFromArgs: "@file" reads a file, "-" reads stdin, anything else is the data. */
async function dataArg(ctx: CommandContext, data: string): Promise<Buffer> {
  if (data.startsWith('@')) {
    try {
      return fs.readFileSync(data.slice(1));
    } catch (err) {
      throw new Error(`Failed to read file: ${(err as Error).message}`);
    }
  }
  if (data === '-') {
    try {
      return await readAll(ctx.io.stdin);
    } catch (err) {
      throw new Error(`Failed to read stdin: ${(err as Error).message}`);
    }
  }
  return Buffer.from(data);
}

export const kvPutCommand: Command = {
  name: 'kv put',
  synopsis: 'Sets or updates data in the KV store',
  help: `Usage: trellis kv put [options] KEY [DATA]

  Writes the data to the given path in the key-value store. The data can be of
  any type.

      $ trellis kv put config/redis/maxconns 5

  The data can also be consumed from a file on disk by prefixing with the "@"
  symbol, or read from stdin using the "-" symbol:

      $ trellis kv put config/program/license @license.lic
      $ echo "abcd1234" | trellis kv put config/program/license -

  To perform a Check-And-Set operation, specify the -cas flag with the
  appropriate -modify-index flag corresponding to the key you want to perform
  the CAS operation on:

      $ trellis kv put -cas -modify-index=844 config/redis/maxconns 5`,
  flags: [
    { name: 'acquire', kind: 'bool', usage: 'Obtain a lock on the key. If the key does not exist, this operation will create the key and obtain the lock. The session must already exist and be specified via the -session flag. The default value is false.' },
    { name: 'base64', kind: 'bool', usage: 'Treat the data as base 64 encoded. The default value is false.' },
    { name: 'cas', kind: 'bool', usage: 'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set. The default value is false.' },
    { name: 'flags', kind: 'uint64', placeholder: 'uint', usage: 'Unsigned integer value to assign to this key-value pair. This value is not read by the agent, so clients can use this value however makes sense for their use case. The default value is 0 (no flags).' },
    { name: 'modify-index', kind: 'uint64', placeholder: 'uint', usage: 'Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.' },
    { name: 'release', kind: 'bool', usage: 'Forfeit the lock on the key at the given path. This requires the -session flag to be set. The key must be held by the session in order to be unlocked. The default value is false.' },
    { name: 'session', kind: 'string', placeholder: 'string', usage: 'User-defined identifier for this session as a string. This is commonly used with the -acquire and -release operations to build robust locking, but it can be set on any key. The default value is empty (no session).' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    const args = flags.args;
    if (args.length === 0) { ctx.ui.error('Error! Missing KEY argument'); return 1; }
    if (args.length > 2) { ctx.ui.error(`Error! Too many arguments (expected 1 or 2, got ${args.length})`); return 1; }
    const key = args[0]!;
    let data: Buffer;
    try {
      data = args.length === 2 && args[1] !== '' ? await dataArg(ctx, args[1]!) : Buffer.alloc(0);
    } catch (err) {
      ctx.ui.error(`Error! ${(err as Error).message}`);
      return 1;
    }
    if (flagBool(flags, 'base64')) {
      const text = data.toString('utf8').trim();
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
        ctx.ui.error('Error! Cannot base 64 decode data: illegal base64 data');
        return 1;
      }
      data = Buffer.from(text, 'base64');
    }
    const session = flagString(flags, 'session') ?? '';
    const acquire = flagBool(flags, 'acquire') ?? false;
    const release = flagBool(flags, 'release') ?? false;
    const cas = flagBool(flags, 'cas') ?? false;
    const modifyIndex = flagBigint(flags, 'modify-index') ?? 0n;
    const kvFlags = flagBigint(flags, 'flags') ?? 0n;
    if ((acquire || release) && session === '') {
      ctx.ui.error('Error! Missing -session (required with -acquire and -release)');
      return 1;
    }
    if (cas && modifyIndex === 0n) {
      ctx.ui.error('Must specify -modify-index with -cas!');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      if (cas) {
        if (!(await kvPut(client, key, data, { flags: kvFlags, cas: modifyIndex }))) {
          ctx.ui.error(`Error! Did not write to ${key}: CAS failed`);
          return 1;
        }
        ctx.ui.info(`Success! Data written to: ${key}`);
        return 0;
      }
      if (acquire) {
        if (!(await kvPut(client, key, data, { flags: kvFlags, acquire: session }))) {
          ctx.ui.error('Error! Did not acquire lock');
          return 1;
        }
        ctx.ui.info(`Success! Lock acquired on: ${key}`);
        return 0;
      }
      if (release) {
        if (!(await kvPut(client, key, data, { flags: kvFlags, release: session }))) {
          ctx.ui.error('Error! Did not release lock');
          return 1;
        }
        ctx.ui.info(`Success! Lock released on: ${key}`);
        return 0;
      }
      await kvPut(client, key, data, { flags: kvFlags });
      ctx.ui.info(`Success! Data written to: ${key}`);
      return 0;
    } catch (err) {
      const prefix = cas ? `Error! Did not write to ${key}` : 'Error! Failed writing data';
      ctx.ui.error(apiErrorText(prefix, err));
      return 1;
    }
  },
};

export const kvDeleteCommand: Command = {
  name: 'kv delete',
  synopsis: 'Removes data from the KV store',
  help: `Usage: trellis kv delete [options] KEY_OR_PREFIX

  Removes the value from the key-value store at the given path. If no key
  exists at the path, no action is taken.

      $ trellis kv delete foo
      $ trellis kv delete -recurse foo`,
  flags: [
    { name: 'cas', kind: 'bool', usage: 'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set. The default value is false.' },
    { name: 'modify-index', kind: 'uint64', placeholder: 'uint', usage: 'Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.' },
    { name: 'recurse', kind: 'bool', usage: 'Recursively delete all keys with the path. The default value is false.' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 1) return tooManyArgs(ctx, '1', flags.args.length);
    const key = stripSlash(flags.args[0] ?? '');
    const recurse = flagBool(flags, 'recurse') ?? false;
    const cas = flagBool(flags, 'cas') ?? false;
    const modifyIndex = flagBigint(flags, 'modify-index') ?? 0n;
    if (key === '' && !recurse) { ctx.ui.error('Error! Missing KEY argument'); return 1; }
    if (cas && modifyIndex === 0n) { ctx.ui.error('Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.'); return 1; }
    if (modifyIndex !== 0n && !cas) { ctx.ui.error('Cannot specify -modify-index without -cas!'); return 1; }
    if (recurse && cas) { ctx.ui.error('Cannot specify both -cas and -recurse!'); return 1; }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    if (recurse) {
      try {
        await kvDelete(client, key, { recurse: true });
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error! Did not delete prefix ${key}`, err));
        return 1;
      }
      ctx.ui.info(`Success! Deleted keys with prefix: ${key}`);
      return 0;
    }
    if (cas) {
      let ok: boolean;
      try {
        ok = await kvDelete(client, key, { cas: modifyIndex });
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error! Did not delete key ${key}`, err));
        return 1;
      }
      if (!ok) { ctx.ui.error(`Error! Did not delete key ${key}: CAS failed`); return 1; }
      ctx.ui.info(`Success! Deleted key: ${key}`);
      return 0;
    }
    try {
      await kvDelete(client, key);
    } catch (err) {
      ctx.ui.error(apiErrorText(`Error deleting key ${key}`, err));
      return 1;
    }
    ctx.ui.info(`Success! Deleted key: ${key}`);
    return 0;
  },
};

/** Consul's impexp.Entry: {"key", "flags", "value" (base64)}. */
export interface ExportEntry {
  key: string;
  flags: number | bigint;
  value: string;
}

export const kvExportCommand: Command = {
  name: 'kv export',
  synopsis: 'Exports a tree from the KV store as JSON',
  help: `Usage: trellis kv export [KEY_OR_PREFIX]

  Retrieves key-value pairs for the given prefix from the key-value store, and
  writes a JSON representation to stdout. This can be used with the command
  "trellis kv import" to move entire trees between clusters.

      $ trellis kv export vault`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length > 1) return tooManyArgs(ctx, '1', flags.args.length);
    const prefix = stripSlash(flags.args[0] ?? '');
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let pairs: KVPair[];
    try {
      ({ pairs } = await kvList(client, prefix));
    } catch (err) {
      ctx.ui.error(apiErrorText('Error querying agent', err));
      return 1;
    }
    const entries: ExportEntry[] = pairs.map((p) => ({ key: p.Key, flags: p.Flags, value: p.Value ?? '' }));
    ctx.ui.info(goJsonIndent(entries));
    return 0;
  },
};

export const kvImportCommand: Command = {
  name: 'kv import',
  synopsis: 'Imports a tree stored as JSON to the KV store',
  help: `Usage: trellis kv import [DATA]

  Imports key-value pairs to the key-value store from the JSON representation
  generated by the "trellis kv export" command.

      $ trellis kv import @filename.json
      $ cat filename.json | trellis kv import -`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    const args = flags.args;
    if (args.length === 0) { ctx.ui.error('Error! Missing DATA argument'); return 1; }
    if (args.length > 1) { ctx.ui.error(`Error! Too many arguments (expected 1, got ${args.length})`); return 1; }
    if (args[0] === '') { ctx.ui.error('Error! Empty DATA argument'); return 1; }
    let data: Buffer;
    try {
      data = await dataArg(ctx, args[0]!);
    } catch (err) {
      ctx.ui.error(`Error! ${(err as Error).message}`);
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let entries: ExportEntry[];
    try {
      entries = parseJson<ExportEntry[]>(data.toString('utf8'), 'the import data');
      if (!Array.isArray(entries)) throw new Error('expected a JSON array of {"key", "flags", "value"} entries');
    } catch (err) {
      ctx.ui.error(`Cannot unmarshal data: ${(err as Error).message}`);
      return 1;
    }
    for (const e of entries) {
      const key = String(e?.key ?? '');
      const v = typeof e?.value === 'string' ? e.value : '';
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
        ctx.ui.error(`Error base 64 decoding value for key ${key}: illegal base64 data`);
        return 1;
      }
      const flags = e?.flags ?? 0;
      if (!(typeof flags === 'bigint' || Number.isSafeInteger(flags)) || BigInt(flags) < 0n || BigInt(flags) >= 1n << 64n) {
        ctx.ui.error(`Error! Invalid flags for key ${key}: ${String(flags)} is not an unsigned 64-bit integer`);
        return 1;
      }
      try {
        await kvPut(client, key, Buffer.from(v, 'base64'), { flags });
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error! Failed writing data for key ${key}`, err));
        return 1;
      }
      ctx.ui.info(`Imported: ${key}`);
    }
    return 0;
  },
};
