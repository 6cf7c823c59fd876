// `trellis version`: the version and the RPC protocol line in Consul's words (tools grep for them).

import type { Command } from '../command.ts';
import { TRELLIS_VERSION } from '../../config/runtime.ts';
import { flagString } from '../../config/flags.ts';
import { goJsonIndent } from '../format.ts';

/** Consul's RPC protocol versions (consul.DefaultRPCProtocol, ProtocolVersionMin/Max). */
export const RPC_PROTOCOL = { Default: 2, Min: 2, Max: 3 } as const;

export function versionText(): string {
  const p = RPC_PROTOCOL;
  const supplement = p.Default < p.Max ? ` (agent will automatically use protocol >${p.Default} when speaking to compatible agents)` : '';
  return `Trellis v${TRELLIS_VERSION}\nProtocol ${p.Default} spoken by default, understands ${p.Min} to ${p.Max}${supplement}`;
}

export const versionCommand: Command = {
  name: 'version',
  synopsis: 'Prints the Trellis version',
  help: 'Usage: trellis version [options]',
  flags: [{ name: 'format', kind: 'string', placeholder: 'pretty|json', usage: 'Output format {pretty|json}' }],
  async run(ctx, flags) {
    const format = flagString(flags, 'format') ?? 'pretty';
    if (format === 'pretty') {
      ctx.ui.output(versionText());
      return 0;
    }
    if (format === 'json') {
      ctx.ui.output(goJsonIndent({ Version: TRELLIS_VERSION, Revision: '', Prerelease: '', RPC: { ...RPC_PROTOCOL } }, '  '));
      return 0;
    }
    ctx.ui.error(`Invalid format: ${format}; use pretty or json`);
    return 1;
  },
};
