// `trellis members`: GET /v1/agent/members, printed as Consul's `consul members` prints it.

import net from 'node:net';
import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS } from '../http.ts';
import { columnize } from '../format.ts';
import { flagBool, flagString } from '../../config/flags.ts';

export interface AgentMember {
  Name: string;
  Addr: string;
  Port: number;
  Tags?: Record<string, string>;
  Status: number;
}

/** serf.MemberStatus.String(). */
export function memberStatus(n: number): string {
  return ['none', 'alive', 'leaving', 'left', 'failed'][n] ?? 'unknown';
}

/** Go's net.TCPAddr.String(): IPv6 in brackets. */
function hostPort(addr: string, port: number): string {
  return net.isIPv6(addr) ? `[${addr}]:${port}` : `${addr}:${port}`;
}

const isDefault = (p: string) => p === '' || p === 'default';

/** Consul's order: servers first, then the default partition, then by segment, partition, name. */
function compareMembers(a: AgentMember, b: AgentMember): number {
  const ta = a.Tags ?? {};
  const tb = b.Tags ?? {};
  const sa = ta['role'] === 'consul';
  const sb = tb['role'] === 'consul';
  if (sa !== sb) return sa ? -1 : 1;
  const da = isDefault(ta['ap'] ?? '');
  const db = isDefault(tb['ap'] ?? '');
  if (da !== db) return da ? -1 : 1;
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return cmp(ta['segment'] ?? '', tb['segment'] ?? '') || cmp(ta['ap'] ?? '', tb['ap'] ?? '') || cmp(a.Name, b.Name);
}

export function formatMembers(members: AgentMember[], detailed: boolean, segmentFilterAll = true): string {
  const list = members.map((m) => {
    const tags = { ...(m.Tags ?? {}) };
    if (!tags['ap']) tags['ap'] = 'default';
    if (isDefault(tags['ap'])) {
      if (segmentFilterAll && tags['role'] === 'consul') tags['segment'] = '<all>';
      else if (!tags['segment']) tags['segment'] = '<default>';
    } else {
      tags['segment'] = '';
    }
    return { ...m, Tags: tags };
  });
  list.sort(compareMembers);
  if (detailed) {
    const rows = [['Node', 'Address', 'Status', 'Tags']];
    for (const m of list) {
      const tags = Object.keys(m.Tags).sort().map((k) => `${k}=${m.Tags[k]}`).join(',');
      rows.push([m.Name, hostPort(m.Addr, m.Port), memberStatus(m.Status), tags]);
    }
    return columnize(rows);
  }
  const rows = [['Node', 'Address', 'Status', 'Type', 'Build', 'Protocol', 'DC', 'Partition', 'Segment']];
  for (const m of list) {
    const t = m.Tags;
    let build = t['build'] ?? '';
    if (build === '') build = '< 0.3';
    else if (build.includes(':')) build = build.slice(0, build.indexOf(':'));
    const status = memberStatus(m.Status);
    const type = t['role'] === 'consul' ? 'server' : t['role'] === 'node' ? 'client' : undefined;
    if (type) rows.push([m.Name, hostPort(m.Addr, m.Port), status, type, build, t['vsn'] ?? '', t['dc'] ?? '', t['ap'] ?? '', t['segment'] ?? '']);
    else rows.push([m.Name, hostPort(m.Addr, m.Port), status, 'unknown', '', '', '', '', '']);
  }
  return columnize(rows);
}

export const membersCommand: Command = {
  name: 'members',
  synopsis: 'Lists the members of a Trellis cluster',
  help: 'Usage: trellis members [options]\n\n  Outputs the members of a running Trellis agent.',
  flags: [
    { name: 'detailed', kind: 'bool', usage: 'Provides detailed information about nodes.' },
    { name: 'wan', kind: 'bool', usage: 'If the agent is in server mode, this can be used to return the other peers in the WAN pool.' },
    { name: 'status', kind: 'string', placeholder: 'regexp', usage: 'If provided, output is filtered to only nodes matching the regular expression for status.' },
    { name: 'segment', kind: 'string', placeholder: 'name', usage: '(Enterprise-only) If provided, output is filtered to only nodes in the given segment.' },
    { name: 'filter', kind: 'string', placeholder: 'expression', usage: 'Filter to use with the request' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    let statusRe: RegExp;
    try {
      statusRe = new RegExp(flagString(flags, 'status') ?? '.*');
    } catch (err) {
      ctx.ui.error(`Failed to compile status regexp: ${(err as Error).message}`);
      return 1;
    }
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    let members: AgentMember[];
    try {
      const segment = flagString(flags, 'segment');
      ({ value: members } = await client.json<AgentMember[]>('GET', '/v1/agent/members', {
        query: { wan: flagBool(flags, 'wan') ? 1 : undefined, segment, filter: flagString(flags, 'filter') },
      }));
    } catch (err) {
      ctx.ui.error(apiErrorText('Error retrieving members', err));
      return 1;
    }
    // Go's regexp.MatchString is unanchored, like RegExp.test.
    const matching = (members ?? []).filter((m) => statusRe.test(memberStatus(m.Status)));
    if (matching.length === 0) return 2; // Consul: no matching members → exit 2, no output
    ctx.ui.output(formatMembers(matching, flagBool(flags, 'detailed') ?? false, flagString(flags, 'segment') === undefined));
    return 0;
  },
};
