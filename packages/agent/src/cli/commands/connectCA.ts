// `trellis connect ca get-config` and `set-config -config-file <file>` (Consul's
// command/connect/ca/get and set): the CA configuration through GET|PUT /v1/connect/ca/configuration.
import fs from 'node:fs';
import type { Command } from '../command.ts';
import { apiErrorText, clientFor } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS } from '../http.ts';
import { goJsonIndent } from '../format.ts';
import { flagBool, flagString } from '../../config/flags.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];

/** Go sorts map keys when it encodes; api.CAConfig's Config is a map. */
function sortedKeys(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]));
}

export const connectCAGetConfigCommand: Command = {
  name: 'connect ca get-config',
  synopsis: 'Display the current Connect Certificate Authority (CA) configuration',
  help: `Usage: trellis connect ca get-config [options]

  Displays the current Connect Certificate Authority (CA) configuration.`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let config: Record<string, unknown>;
    try {
      const stale = flagBool(flags, 'stale') ?? false;
      ({ value: config } = await client.json<Record<string, unknown>>('GET', '/v1/connect/ca/configuration', stale ? { query: { stale: true } } : {}));
    } catch (err) {
      ctx.ui.error(apiErrorText('Error querying CA configuration', err));
      return 1;
    }
    // Consul's api.CAConfig, field by field (the cluster id is not one of them).
    ctx.ui.output(goJsonIndent({
      Provider: config.Provider ?? '',
      Config: sortedKeys(config.Config ?? null),
      State: config.State ?? null,
      ForceWithoutCrossSigning: config.ForceWithoutCrossSigning ?? false,
      CreateIndex: config.CreateIndex ?? 0,
      ModifyIndex: config.ModifyIndex ?? 0,
    }));
    return 0;
  },
};

export const connectCASetConfigCommand: Command = {
  name: 'connect ca set-config',
  synopsis: 'Modify the current Connect CA configuration',
  help: `Usage: trellis connect ca set-config [options]

  Modifies the current Connect Certificate Authority (CA) configuration.`,
  flags: [
    { name: 'config-file', kind: 'string', placeholder: 'value', usage: 'The path to the config file to use.' },
    { name: 'force-without-cross-signing', kind: 'bool', usage: "Indicates that the CA reconfiguration should go ahead even if the current CA is unable to cross sign certificates. This risks temporary connection failures during the rollout as new leafs will be rejected by proxies that have not yet observed the new root cert but is the only option if a CA that doesn't support cross signing needs to be reconfigured or mirated away from." },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const file = flagString(flags, 'config-file') ?? '';
    if (file === '') {
      ctx.ui.error('The -config-file flag is required');
      return 1;
    }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      ctx.ui.error(`Error reading config file: ${(err as Error).message}`);
      return 1;
    }
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (err) {
      ctx.ui.error(`Error parsing config file: ${(err as Error).message}`);
      return 1;
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      ctx.ui.error('Error parsing config file: json: cannot unmarshal into Go value of type api.CAConfig');
      return 1;
    }
    const body = { ...(config as Record<string, unknown>), ForceWithoutCrossSigning: flagBool(flags, 'force-without-cross-signing') ?? false };
    try {
      await client.request('PUT', '/v1/connect/ca/configuration', { body: JSON.stringify(body) });
    } catch (err) {
      ctx.ui.error(apiErrorText('Error setting CA configuration', err));
      return 1;
    }
    ctx.ui.output('Configuration updated!');
    return 0;
  },
};
