// `trellis intention create|delete|get|list|check|match`: Consul's command/intention/*, same flags,
// output and exit codes, over the legacy intentions API (http/routes/intentions.ts).
//   create  "Created: web => db (allow)"; -replace upserts an existing one (silently, as Consul)
//   check   "Allowed" exit 0, "Denied" exit 1, errors exit 2
//   list    columns ID Source Action Destination Precedence; none: "There are no intentions." exit 2

import fs from 'node:fs';
import type { Command, CommandContext } from '../command.ts';
import { apiErrorText, clientFor } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS, type ApiClient } from '../http.ts';
import { columnize } from '../format.ts';
import { readAll } from '../io.ts';
import { flagBool, flagMap } from '../../config/flags.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];

/** api.Intention, the fields the CLI reads. */
interface ApiIntention {
  ID?: string;
  Description?: string;
  SourceNS?: string;
  SourceName: string;
  DestinationNS?: string;
  DestinationName: string;
  SourcePartition?: string;
  DestinationPartition?: string;
  SourceType?: string;
  Action?: string;
  Permissions?: unknown[];
  Meta?: Record<string, string>;
  Precedence?: number;
  CreatedAt?: string;
}

/** api's partitionedAndNamespacedString: the bare name in the default namespace and partition. */
function targetString(partition: string | undefined, ns: string | undefined, name: string): string {
  if (partition && partition !== 'default') return `${partition}/${ns || 'default'}/${name}`;
  if (ns && ns !== 'default') return `${ns}/${name}`;
  return name;
}
const sourceString = (i: ApiIntention): string => targetString(i.SourcePartition, i.SourceNS, i.SourceName);
const destinationString = (i: ApiIntention): string => targetString(i.DestinationPartition, i.DestinationNS, i.DestinationName);
/** api.Intention.String(): "web => db (allow)". */
const ixnString = (i: ApiIntention): string => `${sourceString(i)} => ${destinationString(i)} (${i.Action ?? ''})`;

/** command/intention's ParseIntentionTarget: name, ns/name or partition/ns/name. */
function parseTarget(input: string): { name: string; ns: string; partition: string } {
  const ss = input.split('/');
  switch (ss.length) {
    case 1: return { name: ss[0]!, ns: '', partition: '' };
    case 2: return { name: ss[1]!, ns: ss[0]!, partition: '' };
    case 3: return { name: ss[2]!, ns: ss[1]!, partition: ss[0]! };
    default: throw new Error("input can contain at most two '/'");
  }
}

/** Go's time.RFC850 ("Monday, 02-Jan-06 15:04:05 MST"), in UTC; Go's zero time when absent. */
function rfc850(iso: string | undefined): string {
  const d = iso ? new Date(iso) : undefined;
  if (!d || Number.isNaN(d.getTime())) return 'Monday, 01-Jan-01 00:00:00 UTC';
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${p(d.getUTCDate())}-${months[d.getUTCMonth()]}-${p(d.getUTCFullYear() % 100)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

/** api.IntentionGetExact: undefined on a 404. */
async function getExact(client: ApiClient, source: string, destination: string): Promise<ApiIntention | undefined> {
  const res = await client.json<ApiIntention>('GET', '/v1/connect/intentions/exact', { query: { source, destination }, accept: [404] });
  return res.status === 404 ? undefined : res.value;
}

/** command/intention's GetFromArgs: by ID (one argument) or by source and destination (two). */
async function getFromArgs(client: ApiClient, args: readonly string[]): Promise<ApiIntention> {
  if (args.length === 1) {
    const id = args[0]!;
    let res;
    try {
      res = await client.json<ApiIntention>('GET', `/v1/connect/intentions/${encodeURIComponent(id)}`, { accept: [404] });
    } catch (err) {
      throw new Error(apiErrorText('Error reading the intention', err));
    }
    if (res.status === 404) throw new Error(`Intention not found with ID ${JSON.stringify(id)}`);
    return res.value;
  }
  if (args.length === 2) {
    const [source, destination] = args as [string, string];
    let ixn;
    try {
      ixn = await getExact(client, source, destination);
    } catch (err) {
      throw new Error(apiErrorText('Error reading the intention', err));
    }
    if (!ixn) throw new Error(`Intention not found with source ${JSON.stringify(source)} and destination ${JSON.stringify(destination)}`);
    return ixn;
  }
  throw new Error('command requires exactly 1 or 2 arguments');
}

async function readFileArg(ctx: CommandContext, path: string): Promise<string> {
  if (path === '-') return (await readAll(ctx.io.stdin)).toString('utf8');
  return fs.readFileSync(path, 'utf8');
}

export const intentionCreateCommand: Command = {
  name: 'intention create',
  synopsis: 'Create intentions for service connections.',
  help: `Usage: trellis intention create [options] SRC DST
Usage: trellis intention create [options] -file FILE...

  Create one or more intentions. The data can be specified as a single
  source and destination pair or via a set of files when the "-file" flag
  is specified.

      $ trellis intention create web db

  To consume data from a set of files:

      $ trellis intention create -file one.json two.json

  When specifying the "-file" flag, "-" may be used once to read from stdin:

      $ echo "{ ... }" | trellis intention create -file -

  An "allow" intention is created by default (allowlist). To create a
  "deny" intention, the "-deny" flag should be specified.

  If a conflicting intention is found, creation will fail. To replace any
  conflicting intentions, specify the "-replace" flag. This will replace any
  conflicting intentions with the intention specified in this command.
  Metadata and any other fields of the previous intention will not be
  preserved.`,
  flags: [
    { name: 'allow', kind: 'bool', usage: 'Create an intention that allows when matched.' },
    { name: 'deny', kind: 'bool', usage: 'Create an intention that denies when matched.' },
    { name: 'file', kind: 'bool', usage: 'Read intention data from one or more files.' },
    { name: 'replace', kind: 'bool', usage: 'Replace matching intentions.' },
    { name: 'meta', kind: 'map', placeholder: 'value', usage: 'Metadata to set on the intention, formatted as key=value. This flag may be specified multiple times to set multiple meta fields.' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    let allow = flagBool(flags, 'allow') ?? false;
    const deny = flagBool(flags, 'deny') ?? false;
    if (!allow && !deny) allow = true;
    if (allow && deny) {
      ctx.ui.error('Only one of -allow or -deny may be specified.');
      return 1;
    }
    const args = flags.args;
    const ixns: ApiIntention[] = [];
    try {
      if (flagBool(flags, 'file') ?? false) {
        for (const path of args) {
          const ixn = JSON.parse(await readFileArg(ctx, path)) as ApiIntention;
          if (Array.isArray(ixn.Permissions) && ixn.Permissions.length > 0) {
            throw new Error(`cannot create L7 intention from file ${JSON.stringify(path)} using this CLI; use 'trellis config write' instead`);
          }
          ixns.push(ixn);
        }
      } else {
        if (args.length !== 2) throw new Error('Must specify two arguments: source and destination');
        let src, dst;
        try {
          src = parseTarget(args[0]!);
        } catch (err) {
          throw new Error(`Invalid intention source: ${(err as Error).message}`);
        }
        try {
          dst = parseTarget(args[1]!);
        } catch (err) {
          throw new Error(`Invalid intention destination: ${(err as Error).message}`);
        }
        const meta = flagMap(flags, 'meta');
        ixns.push({
          ...(src.partition ? { SourcePartition: src.partition } : {}), ...(src.ns ? { SourceNS: src.ns } : {}), SourceName: src.name,
          ...(dst.partition ? { DestinationPartition: dst.partition } : {}), ...(dst.ns ? { DestinationNS: dst.ns } : {}), DestinationName: dst.name,
          SourceType: 'consul', Action: allow ? 'allow' : 'deny',
          ...(Object.keys(meta).length > 0 ? { Meta: meta } : {}),
        });
      }
    } catch (err) {
      ctx.ui.error(`Error: ${(err as Error).message}`);
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    for (const ixn of ixns) {
      const source = sourceString(ixn);
      const destination = destinationString(ixn);
      if (flagBool(flags, 'replace') ?? false) {
        let old;
        try {
          old = await getExact(client, source, destination);
        } catch (err) {
          ctx.ui.error(apiErrorText(`Error looking up intention for replacement with source ${JSON.stringify(source)} and destination ${JSON.stringify(destination)}`, err));
          return 1;
        }
        if (old) {
          try {
            if (old.ID) {
              // Consul updates the old intention in place, keeping its ID.
              await client.request('PUT', `/v1/connect/intentions/${encodeURIComponent(old.ID)}`, { body: JSON.stringify({ ...ixn, ID: old.ID }) });
            } else {
              // A config-entry intention has no ID: upsert it by name instead (Meta belongs to the
              // entry and is not sent, as the help says nothing of the old one is kept).
              await client.request('PUT', '/v1/connect/intentions/exact', {
                query: { source, destination },
                body: JSON.stringify({ SourceType: ixn.SourceType ?? 'consul', Action: ixn.Action, ...(ixn.Description ? { Description: ixn.Description } : {}) }),
              });
            }
          } catch (err) {
            ctx.ui.error(apiErrorText(`Error replacing intention with source ${JSON.stringify(source)} and destination ${JSON.stringify(destination)}`, err));
            return 1;
          }
          continue;
        }
      }
      try {
        await client.request('POST', '/v1/connect/intentions', { body: JSON.stringify(ixn) });
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error creating intention ${JSON.stringify(ixnString(ixn))}`, err));
        return 1;
      }
      ctx.ui.output(`Created: ${ixnString(ixn)}`);
    }
    return 0;
  },
};

export const intentionDeleteCommand: Command = {
  name: 'intention delete',
  synopsis: 'Delete an intention.',
  help: `Usage: trellis intention delete [options] SRC DST
Usage: trellis intention delete [options] ID

  Delete an intention. This cannot be reversed. The intention can be looked
  up via an exact source/destination match or via the unique intention ID.

      $ trellis intention delete web db`,
  flags: [...HTTP_FLAGS],
  async run(ctx, flags) {
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const args = flags.args;
    try {
      if (args.length === 1) {
        await client.request('DELETE', `/v1/connect/intentions/${encodeURIComponent(args[0]!)}`);
      } else if (args.length === 2) {
        await client.request('DELETE', '/v1/connect/intentions/exact', { query: { source: args[0]!, destination: args[1]! } });
      } else {
        ctx.ui.error('command requires exactly 1 or 2 arguments');
        return 1;
      }
    } catch (err) {
      ctx.ui.error(apiErrorText('Error deleting the intention', err));
      return 1;
    }
    ctx.ui.output('Intention deleted.');
    return 0;
  },
};

export const intentionGetCommand: Command = {
  name: 'intention get',
  synopsis: 'Show information about an intention.',
  help: `Usage: trellis intention get [options] SRC DST
Usage: trellis intention get [options] ID

  Read and show the details about an intention. The intention can be looked
  up via an exact source/destination match or via the unique intention ID.

      $ trellis intention get web db`,
  flags: [...HTTP_FLAGS],
  async run(ctx, flags) {
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let ixn: ApiIntention;
    try {
      ixn = await getFromArgs(client, flags.args);
    } catch (err) {
      ctx.ui.error((err as Error).message);
      return 1;
    }
    const rows: string[][] = [['Source:', sourceString(ixn)], ['Destination:', destinationString(ixn)]];
    if (ixn.Action) rows.push(['Action:', ixn.Action]);
    if (ixn.ID) rows.push(['ID:', ixn.ID]);
    if (ixn.Description) rows.push(['Description:', ixn.Description]);
    for (const k of Object.keys(ixn.Meta ?? {}).sort()) rows.push([`Meta[${k}]:`, ixn.Meta![k]!]);
    rows.push(['Created At:', rfc850(ixn.CreatedAt)]);
    ctx.ui.output(columnize(rows));
    if (ixn.Permissions && ixn.Permissions.length > 0) ctx.ui.output(`Permissions:\n${JSON.stringify(ixn.Permissions, null, 2)}`);
    return 0;
  },
};

export const intentionListCommand: Command = {
  name: 'intention list',
  synopsis: 'List intentions.',
  help: `Usage: trellis intention list

  List all intentions.`,
  flags: [...HTTP_FLAGS],
  async run(ctx, flags) {
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let ixns: ApiIntention[];
    try {
      ixns = (await client.json<ApiIntention[]>('GET', '/v1/connect/intentions')).value ?? [];
    } catch (err) {
      ctx.ui.error(apiErrorText('Failed to retrieve the intentions list', err));
      return 1;
    }
    if (ixns.length === 0) {
      ctx.ui.error('There are no intentions.');
      return 2;
    }
    const rows = [['ID', 'Source', 'Action', 'Destination', 'Precedence']];
    for (const i of ixns) rows.push([i.ID ?? '', i.SourceName, i.Action ?? '', i.DestinationName, String(i.Precedence ?? 0)]);
    ctx.ui.output(columnize(rows));
    return 0;
  },
};

export const intentionCheckCommand: Command = {
  name: 'intention check',
  synopsis: 'Check whether a connection between two services is allowed.',
  help: `Usage: trellis intention check [options] SRC DST

  Check whether a connection between SRC and DST would be allowed by
  Connect given the current Trellis configuration.

      $ trellis intention check web db`,
  flags: [...HTTP_FLAGS],
  flagErrorExitCode: 2,
  async run(ctx, flags) {
    if (flags.args.length !== 2) {
      ctx.ui.error('Error: command requires exactly two arguments: src and dst');
      return 2;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 2;
    let allowed: boolean;
    try {
      const res = await client.json<{ Allowed: boolean }>('GET', '/v1/connect/intentions/check', {
        query: { source: flags.args[0]!, destination: flags.args[1]!, 'source-type': 'consul' },
      });
      allowed = res.value.Allowed === true;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error checking the connection', err));
      return 2;
    }
    ctx.ui.output(allowed ? 'Allowed' : 'Denied');
    return allowed ? 0 : 1;
  },
};

export const intentionMatchCommand: Command = {
  name: 'intention match',
  synopsis: 'Show intentions that match a source or destination.',
  help: `Usage: trellis intention match [options] SRC|DST

  Show the list of intentions that would be enforced for a given source
  or destination. The intentions are listed in the order they would be
  evaluated.

      $ trellis intention match db
      $ trellis intention match -source web`,
  flags: [
    { name: 'source', kind: 'bool', usage: 'Match intentions with the given source.' },
    { name: 'destination', kind: 'bool', usage: 'Match intentions with the given destination.' },
    ...HTTP_FLAGS,
  ],
  flagErrorExitCode: 2,
  async run(ctx, flags) {
    if (flags.args.length !== 1) {
      ctx.ui.error('Error: command requires exactly one argument: src or dst');
      return 1;
    }
    const bySource = flagBool(flags, 'source') ?? false;
    if (bySource && (flagBool(flags, 'destination') ?? false)) {
      ctx.ui.error('Error: only one of -source or -destination may be specified');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const name = flags.args[0]!;
    let matches: Record<string, ApiIntention[] | null>;
    try {
      matches = (await client.json<Record<string, ApiIntention[] | null>>('GET', '/v1/connect/intentions/match', {
        query: { by: bySource ? 'source' : 'destination', name },
      })).value;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error matching the connection', err));
      return 1;
    }
    for (const ixn of matches[name] ?? []) ctx.ui.output(ixnString(ixn));
    return 0;
  },
};

export const INTENTION_COMMANDS: readonly Command[] = [
  intentionCheckCommand, intentionCreateCommand, intentionDeleteCommand, intentionGetCommand, intentionListCommand, intentionMatchCommand,
];
