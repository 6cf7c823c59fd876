// `trellis leave` and `trellis reload`: PUT /v1/agent/leave and /v1/agent/reload.

import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS } from '../http.ts';

export const leaveCommand: Command = {
  name: 'leave',
  synopsis: 'Gracefully leaves the Trellis cluster and shuts down',
  help: `Usage: trellis leave [options]

  Causes the agent to gracefully leave the cluster and shutdown.`,
  flags: HTTP_CLIENT_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length > 0) {
      ctx.ui.error(`Error! Too many arguments (expected 0, got ${flags.args.length})`);
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      await client.request('PUT', '/v1/agent/leave');
    } catch (err) {
      ctx.ui.error(apiErrorText('Error leaving', err));
      return 1;
    }
    ctx.ui.output('Graceful leave complete');
    return 0;
  },
};

export const reloadCommand: Command = {
  name: 'reload',
  synopsis: 'Triggers the agent to reload configuration files',
  help: `Usage: trellis reload

  Causes the agent to reload configurations. This can be used instead
  of sending the SIGHUP signal to the agent.`,
  flags: HTTP_CLIENT_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      await client.request('PUT', '/v1/agent/reload');
    } catch (err) {
      ctx.ui.error(apiErrorText('Error reloading', err));
      return 1;
    }
    ctx.ui.output('Configuration reload triggered');
    return 0;
  },
};
