// `trellis services register|deregister`: Consul's command/services/*. Definitions come from config
// files (the agent's own format, JSON or HCL: "service" or "services") or from flags.

import fs from 'node:fs';
import type { Command, CommandContext } from '../command.ts';
import { apiErrorText, clientFor } from '../command.ts';
import { HTTP_CLIENT_FLAGS } from '../http.ts';
import { flagList, flagMap, flagNumber, flagString } from '../../config/flags.ts';
import { parseConfigText } from '../../config/file.ts';
import { ConfigError } from '../../config/errors.ts';
import { toServiceDefinition, type ServiceDefinition } from '../../config/serviceDefinition.ts';
import { CONFIG_SCHEMA, type RawConfig } from '../../config/schema.ts';
import { formatFromExtension, utf8Text } from '../../config/document.ts';

/** Reads service definitions from agent config files (the same decoder and checks as the agent's),
 *  HCL for *.hcl and JSON otherwise. */
export function servicesFromFiles(files: readonly string[]): ServiceDefinition[] {
  const out: ServiceDefinition[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError('ERR_CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`, { file });
    }
    const text = utf8Text(bytes, file);
    const format = formatFromExtension(file) || 'json';
    const raw = parseConfigText(text, file, [], CONFIG_SCHEMA, format) ?? {};
    const defs = (raw['services'] as RawConfig[] | undefined) ?? [];
    if (defs.length === 0) throw new ConfigError('ERR_CONFIG_INVALID', `${file}: no service definition found: the file needs a "service" block (or object) or a "services" list`, { file });
    defs.forEach((d, i) => out.push(toServiceDefinition(d, `services[${i}]`, file)));
  }
  return out;
}

/** "1.2.3.4:80" or "[::1]:80" → {Address, Port} (api.ParseServiceAddr). */
function parseServiceAddr(v: string): { Address: string; Port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
  if (m) return { Address: m[1] ?? m[2] ?? '', Port: Number(m[3]) };
  if (/^\d+$/.test(v)) return { Address: '', Port: Number(v) };
  return { Address: v, Port: 0 };
}

export const servicesRegisterCommand: Command = {
  name: 'services register',
  synopsis: 'Register services with the local agent',
  help: `Usage: trellis services register [options] [FILE...]

  Register one or more services using the local agent API. Services can
  be registered from agent configuration files (HCL or JSON) or using flags. The
  service is registered and the command returns. The caller must remember to
  call "trellis services deregister" or a similar API to deregister the
  service when complete.

      $ trellis services register web.json
      $ trellis services register -name=web -port=8080 -tag=v1`,
  flags: [
    { name: 'address', kind: 'string', placeholder: 'address', usage: 'Address of the service to register for arg-based registration.' },
    { name: 'id', kind: 'string', placeholder: 'id', usage: "ID of the service to register for arg-based registration. If this isn't set, it will default to the -name value." },
    { name: 'kind', kind: 'string', placeholder: 'kind', usage: "The services 'kind'" },
    { name: 'meta', kind: 'map', placeholder: 'key=value', usage: 'Metadata to set on the service, formatted as key=value. This flag may be specified multiple times to set multiple meta fields.' },
    { name: 'name', kind: 'string', placeholder: 'name', usage: 'Name of the service to register for arg-based registration.' },
    { name: 'port', kind: 'int', placeholder: 'port', usage: 'Port of the service to register for arg-based registration.' },
    { name: 'socket', kind: 'string', placeholder: 'path', usage: 'Path to the Unix domain socket to register for arg-based registration (conflicts with address and port).' },
    { name: 'tag', kind: 'list', placeholder: 'tag', usage: 'Tag to add to the service. This flag can be specified multiple times to set multiple tags.' },
    { name: 'tagged-address', kind: 'map', placeholder: 'key=value', usage: 'Tagged address to set on the service, formatted as key=value. This flag may be specified multiple times to set multiple addresses.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    const name = flagString(flags, 'name') ?? '';
    const fromFlags: ServiceDefinition = { Name: name };
    const id = flagString(flags, 'id');
    if (id) fromFlags.ID = id;
    const kind = flagString(flags, 'kind');
    if (kind) fromFlags.Kind = kind;
    const address = flagString(flags, 'address');
    if (address) fromFlags.Address = address;
    const port = flagNumber(flags, 'port');
    if (port) fromFlags.Port = port;
    const socket = flagString(flags, 'socket');
    if (socket) fromFlags.SocketPath = socket;
    const tags = flagList(flags, 'tag');
    if (tags.length) fromFlags.Tags = tags;
    const meta = flagMap(flags, 'meta');
    if (Object.keys(meta).length) fromFlags.Meta = meta;
    const tagged = flagMap(flags, 'tagged-address');
    if (Object.keys(tagged).length) {
      fromFlags.TaggedAddresses = Object.fromEntries(Object.entries(tagged).map(([k, v]) => [k, parseServiceAddr(v)]));
    }

    const args = flags.args;
    if (args.length === 0 && name === '') {
      ctx.ui.error('Service registration requires at least one argument or flags.');
      return 1;
    }
    if (args.length > 0 && name !== '') {
      ctx.ui.error('Service registration requires arguments or -id, not both.');
      return 1;
    }
    let services: ServiceDefinition[];
    if (args.length > 0) {
      try {
        services = servicesFromFiles(args).map((s) => combine(s, fromFlags));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        ctx.ui.error(`Error: ${err.message}`);
        return 1;
      }
    } else {
      services = [fromFlags];
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    for (const svc of services) {
      try {
        await client.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(svc) });
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error registering service ${JSON.stringify(svc.Name)}`, err));
        return 1;
      }
      ctx.ui.output(`Registered service: ${svc.Name}`);
    }
    return 0;
  },
};

/** Consul's CombineArgs: flag values fill what the file left unset; meta, addresses and tags add. */
function combine(file: ServiceDefinition, flags: ServiceDefinition): ServiceDefinition {
  const out: ServiceDefinition = { ...file };
  if (flags.ID && !out.ID) out.ID = flags.ID;
  if (flags.Address && !out.Address) out.Address = flags.Address;
  if (flags.Port && !out.Port) out.Port = flags.Port;
  if (flags.Kind && !out.Kind) out.Kind = flags.Kind;
  if (flags.SocketPath && !out.SocketPath) out.SocketPath = flags.SocketPath;
  if (flags.Meta) out.Meta = { ...(out.Meta ?? {}), ...flags.Meta };
  if (flags.TaggedAddresses) out.TaggedAddresses = { ...(out.TaggedAddresses ?? {}), ...flags.TaggedAddresses };
  if (flags.Tags) out.Tags = [...(out.Tags ?? []), ...flags.Tags];
  return out;
}

export const servicesDeregisterCommand: Command = {
  name: 'services deregister',
  synopsis: 'Deregister services with the local agent',
  help: `Usage: trellis services deregister [options] [FILE...]

  Deregister one or more services that were previously registered with
  the local agent.

      $ trellis services deregister web.json
      $ trellis services deregister -id=web`,
  flags: [
    { name: 'id', kind: 'string', placeholder: 'id', usage: 'ID to delete. This must not be set if arguments are given.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx: CommandContext, flags) {
    const id = flagString(flags, 'id') ?? '';
    const args = flags.args;
    if (args.length === 0 && id === '') {
      ctx.ui.error('Service deregistration requires at least one argument or -id.');
      return 1;
    }
    if (args.length > 0 && id !== '') {
      ctx.ui.error('Service deregistration requires arguments or -id, not both.');
      return 1;
    }
    let ids: string[];
    if (args.length > 0) {
      try {
        ids = servicesFromFiles(args).map((s) => s.ID || s.Name);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        ctx.ui.error(`Error: ${err.message}`);
        return 1;
      }
    } else {
      ids = [id];
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    for (const sid of ids) {
      try {
        await client.request('PUT', `/v1/agent/service/deregister/${encodeURIComponent(sid)}`);
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error deregistering service ${JSON.stringify(sid)}`, err));
        return 1;
      }
      ctx.ui.output(`Deregistered service: ${sid}`);
    }
    return 0;
  },
};
