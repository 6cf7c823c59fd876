// `trellis operator raft list-peers`: GET /v1/operator/raft/configuration as Consul's table.

import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS } from '../http.ts';
import { columnize } from '../format.ts';

export interface RaftServer {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
  ProtocolVersion?: string;
}

export function formatPeers(servers: RaftServer[]): string {
  const rows = [['Node', 'ID', 'Address', 'State', 'Voter', 'RaftProtocol']];
  for (const s of servers) {
    rows.push([s.Node, s.ID, s.Address, s.Leader ? 'leader' : 'follower', String(s.Voter), s.ProtocolVersion || '<=1']);
  }
  return columnize(rows);
}

export const raftListPeersCommand: Command = {
  name: 'operator raft list-peers',
  synopsis: 'Display the current Raft peer configuration',
  help: 'Usage: trellis operator raft list-peers [options]\n\n  Displays the current Raft peer configuration.',
  flags: [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let servers: RaftServer[];
    try {
      const { value } = await client.json<{ Servers?: RaftServer[] }>('GET', '/v1/operator/raft/configuration');
      servers = value?.Servers ?? [];
    } catch (err) {
      ctx.ui.error(apiErrorText('Error getting peers: Failed to retrieve raft configuration', err));
      return 1;
    }
    ctx.ui.output(formatPeers(servers));
    return 0;
  },
};
