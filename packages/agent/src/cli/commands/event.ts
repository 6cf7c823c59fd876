// `trellis event`: fires a user event (PUT /v1/event/fire/<name>, the payload as the body and the
// -node/-service/-tag regular expressions as query parameters), as Consul's `consul event` does:
// the filters are compiled here first so a typo is reported before anything is sent, and the
// agent is asked who it is (GET /v1/agent/self) before firing so an unreachable agent or a
// token it refuses is reported as such rather than as a failed event.

import type { Command } from '../command.ts';
import { agentReachable, apiErrorText, clientFor } from '../command.ts';
import { ApiError, HTTP_CLIENT_FLAGS } from '../http.ts';
import { flagString } from '../../config/flags.ts';
import { usageError } from './membership.ts';

export const eventCommand: Command = {
  name: 'event',
  synopsis: 'Fire a new event',
  help: `Usage: trellis event [options] [payload]

  Dispatches a custom user event across a datacenter. An event must provide
  a name, but a payload is optional. Events support filtering using
  regular expressions on node name, service, and tag definitions.`,
  flags: [
    { name: 'name', kind: 'string', placeholder: 'name', usage: 'Name of the event.' },
    { name: 'node', kind: 'string', placeholder: 'regexp', usage: 'Regular expression to filter on node names.' },
    { name: 'service', kind: 'string', placeholder: 'regexp', usage: 'Regular expression to filter on service instances.' },
    { name: 'tag', kind: 'string', placeholder: 'regexp', usage: 'Regular expression to filter on service tags. Must be used with -service.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    const name = flagString(flags, 'name') ?? '';
    if (name === '') return usageError(ctx, eventCommand, 'Event name must be specified');
    const filters = { node: flagString(flags, 'node') ?? '', service: flagString(flags, 'service') ?? '', tag: flagString(flags, 'tag') ?? '' };
    for (const [kind, pattern] of Object.entries(filters)) {
      if (pattern === '') continue;
      try {
        // The agent matches with the same engine (an unanchored RegExp), so what compiles here
        // compiles there.
        new RegExp(pattern);
      } catch (err) {
        ctx.ui.error(`Failed to compile ${kind} filter regexp: ${(err as Error).message}`);
        return 1;
      }
    }
    if (filters.tag !== '' && filters.service === '') {
      ctx.ui.error('Cannot provide tag filter without service filter.');
      return 1;
    }
    if (flags.args.length > 1) return usageError(ctx, eventCommand, 'Too many command line arguments.');
    const payload = flags.args[0];

    const client = clientFor(ctx, flags);
    if (!client) return 1;
    if (!(await agentReachable(ctx, client))) return 1;
    let id: string;
    try {
      const { value } = await client.json<{ ID?: unknown } | null>('PUT', `/v1/event/fire/${encodeURIComponent(name)}`, {
        query: { node: filters.node || undefined, service: filters.service || undefined, tag: filters.tag || undefined },
        ...(payload !== undefined ? { body: payload } : {}),
      });
      if (typeof value?.ID !== 'string' || value.ID === '') {
        throw new ApiError('ERR_BAD_RESPONSE', 'the agent answered without an event ID');
      }
      id = value.ID;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error firing event', err));
      return 1;
    }
    ctx.ui.output(`Event ID: ${id}`);
    return 0;
  },
};
