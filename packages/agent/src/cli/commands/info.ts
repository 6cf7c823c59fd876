// `trellis info`: the agent's GET /v1/agent/self "Stats", printed section by section as Consul does.

import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS } from '../http.ts';

/** Go's %s of a JSON-decoded value, close enough for the strings the stats hold. */
function goString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export function formatInfo(stats: Record<string, Record<string, unknown>>): string {
  const lines: string[] = [];
  for (const section of Object.keys(stats).sort()) {
    lines.push(`${section}:`);
    const sub = stats[section] ?? {};
    for (const k of Object.keys(sub).sort()) lines.push(`\t${k} = ${goString(sub[k])}`);
  }
  return lines.join('\n');
}

export const infoCommand: Command = {
  name: 'info',
  synopsis: 'Provides debugging information for operators.',
  help: 'Usage: trellis info [options]\n\n  Provides debugging information for operators',
  flags: HTTP_CLIENT_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    type Self = { Stats?: Record<string, Record<string, unknown>> } | undefined;
    let self: Self;
    try {
      ({ value: self } = await client.json<Self>('GET', '/v1/agent/self'));
    } catch (err) {
      ctx.ui.error(apiErrorText('Error querying agent', err));
      return 1;
    }
    const stats = self?.Stats;
    if (!stats || typeof stats !== 'object') {
      ctx.ui.error("Agent response did not contain 'Stats' key");
      return 1;
    }
    for (const [k, v] of Object.entries(stats)) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        ctx.ui.error(`Got invalid subkey in stats: ${k}`);
        return 1;
      }
    }
    ctx.ui.output(formatInfo(stats));
    return 0;
  },
};
