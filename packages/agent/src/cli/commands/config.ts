// `trellis config write|read|list|delete`: Consul's command/config/*, same flags, output and exit codes.
// Files are HCL or JSON (by extension; `-` reads stdin), with snake_case or CamelCase keys; the entry
// is decoded here first, as Consul's CLI does, so a typo is reported before anything is sent.

import type { Command } from '../command.ts';
import { apiErrorText, clientFor } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS } from '../http.ts';
import { goJsonIndent } from '../format.ts';
import { readAll } from '../io.ts';
import { flagBigint, flagBool, flagString } from '../../config/flags.ts';
import { parseConfigEntryText, readConfigEntryFile } from '../../config/configEntry.ts';
import { ConfigError } from '../../config/errors.ts';
import { ConfigEntryDecodeError, decodeConfigEntry, type ConfigEntryBody } from '../../structs/configEntries/index.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];
const CAS_FLAGS = [
  { name: 'cas', kind: 'bool' as const, usage: 'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set. The default value is false.' },
  { name: 'modify-index', kind: 'uint64' as const, placeholder: 'uint', usage: 'Unsigned integer representing the ModifyIndex of the config entry. This is used in combination with the -cas flag.' },
];

/** Kind/name of a path segment, percent-encoded (a name may hold any character but '/'). */
const seg = (s: string): string => encodeURIComponent(s);

export const configWriteCommand: Command = {
  name: 'config write',
  synopsis: 'Create or update a centralized config entry',
  help: `Usage: trellis config write [options] <configuration>

  Request a config entry to be created or updated. The configuration
  argument is either a file path or '-' to indicate that the config
  should be read from stdin. The data should be either in HCL or
  JSON form.

  Example (from file):

    $ trellis config write web.service.hcl

  Example (from stdin):

    $ trellis config write -`,
  flags: [...CAS_FLAGS, ...HTTP_FLAGS],
  async run(ctx, flags) {
    if (flags.args.length !== 1) {
      ctx.ui.error('Must provide exactly one positional argument to specify the config entry to write');
      return 1;
    }
    const source = flags.args[0]!;
    let raw: Record<string, unknown>;
    try {
      if (source === '-') {
        let text: string;
        try {
          text = (await readAll(ctx.io.stdin)).toString('utf8');
        } catch (err) {
          ctx.ui.error(`Failed to load data: Failed to read stdin: ${(err as Error).message}`);
          return 1;
        }
        raw = parseConfigEntryText(text, '<stdin>', text.trimStart().startsWith('{') ? 'json' : 'hcl');
      } else {
        raw = readConfigEntryFile(source);
      }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const prefix = err.code === 'ERR_CONFIG_READ' ? 'Failed to load data' : 'Failed to decode config entry input';
      ctx.ui.error(`${prefix}: ${err.message}`);
      return 1;
    }
    let entry: ConfigEntryBody;
    try {
      entry = decodeConfigEntry(raw);
    } catch (err) {
      if (!(err instanceof ConfigEntryDecodeError)) throw err;
      ctx.ui.error(`Failed to decode config entry input: ${err.message}`);
      return 1;
    }
    const cas = flagBool(flags, 'cas') ?? false;
    const modifyIndex = flagBigint(flags, 'modify-index') ?? 0n;
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const what = `${entry.Kind}/${entry.Name}`;
    let written: boolean;
    try {
      const res = await client.json<boolean>('PUT', '/v1/config', {
        body: JSON.stringify(entry),
        ...(cas ? { query: { cas: modifyIndex } } : {}),
      });
      written = res.value === true;
    } catch (err) {
      ctx.ui.error(apiErrorText(`Error writing config entry ${what}`, err));
      return 1;
    }
    if (!written) {
      ctx.ui.error(`Config entry not updated: ${what}`);
      return 1;
    }
    ctx.ui.info(`Config entry written: ${what}`);
    return 0;
  },
};

export const configReadCommand: Command = {
  name: 'config read',
  synopsis: 'Read a centralized config entry',
  help: `Usage: trellis config read [options] -kind <config kind> -name <config name>

  Reads the config entry specified by the given kind and name and outputs its
  JSON representation.

  Example:

    $ trellis config read -kind proxy-defaults -name global`,
  flags: [
    { name: 'kind', kind: 'string', placeholder: 'string', usage: 'The kind of configuration to read.' },
    { name: 'name', kind: 'string', placeholder: 'string', usage: 'The name of configuration to read.' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    const kind = flagString(flags, 'kind') ?? '';
    const name = flagString(flags, 'name') ?? '';
    if (kind === '') {
      ctx.ui.error('Must specify the -kind parameter');
      return 1;
    }
    if (name === '') {
      ctx.ui.error('Must specify the -name parameter');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      const res = await client.json<unknown>('GET', `/v1/config/${seg(kind)}/${seg(name)}`);
      ctx.ui.info(goJsonIndent(res.value, '    '));
      return 0;
    } catch (err) {
      ctx.ui.error(apiErrorText(`Error reading config entry ${kind}/${name}`, err));
      return 1;
    }
  },
};

export const configListCommand: Command = {
  name: 'config list',
  synopsis: 'List centralized config entries of a given kind',
  help: `Usage: trellis config list [options] -kind <config kind>

  Lists all of the config entries for a given kind. The -kind parameter
  is required.

  Example:

    $ trellis config list -kind service-defaults`,
  flags: [
    { name: 'kind', kind: 'string', placeholder: 'string', usage: 'The kind of configurations to list.' },
    { name: 'filter', kind: 'string', placeholder: 'string', usage: 'Filter to use with the request' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    const kind = flagString(flags, 'kind') ?? '';
    if (kind === '') {
      ctx.ui.error('Must specify the -kind parameter');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      const filter = flagString(flags, 'filter');
      const res = await client.json<Array<{ Name: string }>>('GET', `/v1/config/${seg(kind)}`, filter ? { query: { filter } } : {});
      for (const e of res.value ?? []) ctx.ui.info(e.Name);
      return 0;
    } catch (err) {
      ctx.ui.error(apiErrorText(`Error listing config entries for kind ${JSON.stringify(kind)}`, err));
      return 1;
    }
  },
};

export const configDeleteCommand: Command = {
  name: 'config delete',
  synopsis: 'Delete a centralized config entry',
  help: `Usage: trellis config delete [options] -kind <config kind> -name <config name>

  Deletes the configuration entry specified by the kind and name.

  Example:

    $ trellis config delete -kind service-defaults -name web`,
  flags: [
    { name: 'kind', kind: 'string', placeholder: 'string', usage: 'The kind of configuration to delete.' },
    { name: 'name', kind: 'string', placeholder: 'string', usage: 'The name of configuration to delete.' },
    ...CAS_FLAGS,
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    const kind = flagString(flags, 'kind') ?? '';
    const name = flagString(flags, 'name') ?? '';
    const cas = flagBool(flags, 'cas') ?? false;
    const modifyIndex = flagBigint(flags, 'modify-index') ?? 0n;
    if (kind === '') {
      ctx.ui.error('Must specify the -kind parameter');
      return 1;
    }
    if (name === '') {
      ctx.ui.error('Must specify the -name parameter');
      return 1;
    }
    if (cas && modifyIndex === 0n) {
      ctx.ui.error('Must specify a -modify-index greater than 0 with -cas');
      return 1;
    }
    if (!cas && modifyIndex !== 0n) {
      ctx.ui.error('Cannot specify -modify-index without -cas');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let deleted: boolean;
    try {
      const res = await client.json<unknown>('DELETE', `/v1/config/${seg(kind)}/${seg(name)}`, cas ? { query: { cas: modifyIndex } } : {});
      // Without -cas the agent answers {} and any success is a deletion (Consul's api.Delete).
      deleted = cas ? res.value === true : true;
    } catch (err) {
      ctx.ui.error(apiErrorText(`Error deleting config entry ${kind}/${name}`, err));
      return 1;
    }
    if (!deleted) {
      ctx.ui.error(`Config entry not deleted: ${kind}/${name}`);
      return 1;
    }
    ctx.ui.info(`Config entry deleted: ${kind}/${name}`);
    return 0;
  },
};
