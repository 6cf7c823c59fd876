// `trellis join` and `trellis force-leave`: change the gossip pool's membership through the agent,
// with Consul's command texts and exit codes.
//   join         PUT /v1/agent/join/<address>[?wan=1], once per address; exit 0 if any joined
//   force-leave  PUT /v1/agent/force-leave/<node>[?prune=1][&wan=1]; prints nothing on success

import type { Command, CommandContext } from '../command.ts';
import { apiErrorText, clientFor, helpText } from '../command.ts';
import { HTTP_CLIENT_FLAGS } from '../http.ts';
import { flagBool } from '../../config/flags.ts';

/** Consul's usage errors: the message, a blank line, then the command's help, all on stderr; exit 1. */
export function usageError(ctx: CommandContext, cmd: Command, message: string): number {
  ctx.ui.error(message);
  ctx.ui.error('');
  ctx.io.stderr.write(helpText(cmd));
  return 1;
}

export const joinCommand: Command = {
  name: 'join',
  synopsis: 'Tell Trellis agent to join cluster',
  help: `Usage: trellis join [options] address ...

  Tells a running Trellis agent (with "trellis agent") to join the cluster
  by specifying at least one existing member.`,
  flags: [
    { name: 'wan', kind: 'bool', usage: 'Joins a server to another server in the WAN pool.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    const addrs = flags.args;
    if (addrs.length === 0) return usageError(ctx, joinCommand, 'At least one address to join must be specified.');
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const wan = flagBool(flags, 'wan') === true;
    // As Consul: every address is tried, each failure reported, and the command succeeds if any
    // one of them let the agent in (one live member is enough to learn the rest by gossip).
    let joins = 0;
    for (const addr of addrs) {
      try {
        // ':' stays literal (as Go's URL path escaping leaves it) so host:port reads as given.
        const path = `/v1/agent/join/${encodeURIComponent(addr).replace(/%3A/gi, ':')}`;
        await client.request('PUT', path, { query: { wan: wan ? 1 : undefined } });
        joins++;
      } catch (err) {
        ctx.ui.error(apiErrorText(`Error joining address '${addr}'`, err));
      }
    }
    if (joins === 0) {
      ctx.ui.error('Failed to join any nodes.');
      return 1;
    }
    ctx.ui.output(`Successfully joined cluster by contacting ${joins} nodes.`);
    return 0;
  },
};

export const forceLeaveCommand: Command = {
  name: 'force-leave',
  synopsis: 'Forces a member of the cluster to enter the "left" state',
  help: `Usage: trellis force-leave [options] name

  Forces a member of a Trellis cluster to enter the "left" state. Note
  that if the member is still actually alive, it will eventually rejoin
  the cluster. This command is most useful for cleaning out "failed" nodes
  that are never coming back. If you do not force leave a failed node,
  Trellis will attempt to reconnect to those failed nodes for some period of
  time before eventually reaping them.`,
  flags: [
    { name: 'prune', kind: 'bool', usage: 'Remove agent completely from list of members' },
    { name: 'wan', kind: 'bool', usage: 'Exclusively leave the agent from the WAN serf pool.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length !== 1) return usageError(ctx, forceLeaveCommand, 'A single node name must be specified to force leave.');
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      await client.request('PUT', `/v1/agent/force-leave/${encodeURIComponent(flags.args[0]!)}`, {
        query: { prune: flagBool(flags, 'prune') ? 1 : undefined, wan: flagBool(flags, 'wan') ? 1 : undefined },
      });
    } catch (err) {
      ctx.ui.error(apiErrorText('Error force leaving', err));
      return 1;
    }
    return 0;
  },
};
