// `trellis operator raft ...`, Consul's commands of the same names and output:
//   list-peers       GET    /v1/operator/raft/configuration, as Consul's table
//   remove-peer      DELETE /v1/operator/raft/peer?id=|address=
//   transfer-leader  POST   /v1/operator/raft/transfer-leader[?id=]

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

export const raftRemovePeerCommand: Command = {
  name: 'operator raft remove-peer',
  synopsis: 'Remove a Trellis server from the Raft configuration',
  help: [
    'Usage: trellis operator raft remove-peer [options]',
    '',
    '  Remove the Trellis server with given -id or -address from the Raft configuration.',
    '',
    '  There are rare cases where a peer may be left behind in the Raft quorum even',
    '  though the server is no longer present and known to the cluster. This command',
    '  removes the failed server so that it no longer affects the Raft quorum.',
  ].join('\n'),
  flags: [
    { name: 'address', kind: 'string', placeholder: 'ip:port', usage: 'The address to remove from the Raft configuration.' },
    { name: 'id', kind: 'string', placeholder: 'id', usage: 'The ID to remove from the Raft configuration.' },
    ...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const address = (flags.values.get('address') as string | undefined) ?? '';
    const id = (flags.values.get('id') as string | undefined) ?? '';
    // Checked before any request, with Consul's wording, so a typo never reaches the cluster.
    if (!address && !id) {
      ctx.ui.error('Error removing peer: an address or id is required for the peer to remove');
      return 1;
    }
    if (address && id) {
      ctx.ui.error('Error removing peer: cannot give both an address and id');
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      await client.request('DELETE', '/v1/operator/raft/peer', { query: id ? { id } : { address } });
    } catch (err) {
      ctx.ui.error(apiErrorText('Error removing peer', err));
      return 1;
    }
    ctx.ui.output(address ? `Removed peer with address ${JSON.stringify(address)}` : `Removed peer with id ${JSON.stringify(id)}`);
    return 0;
  },
};

export const raftTransferLeaderCommand: Command = {
  name: 'operator raft transfer-leader',
  synopsis: 'Transfer raft leadership to another node',
  help: [
    'Usage: trellis operator raft transfer-leader [options]',
    '',
    '  Transfer raft leadership to another node: the server with -id, or else the most',
    '  up-to-date other voter.',
  ].join('\n'),
  flags: [
    { name: 'id', kind: 'string', placeholder: 'id', usage: 'The ID of the node to transfer leadership to.' },
    ...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const id = (flags.values.get('id') as string | undefined) ?? '';
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let success: boolean;
    try {
      const { value } = await client.json<{ Success?: boolean } | null>('POST', '/v1/operator/raft/transfer-leader', { query: { id: id || undefined } });
      success = value?.Success === true;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error transferring leadership: Failed to transfer leadership', err));
      return 1;
    }
    if (!success) {
      ctx.ui.error('Error transferring leadership: Failed to transfer leadership');
      return 1;
    }
    ctx.ui.output('Success');
    return 0;
  },
};
