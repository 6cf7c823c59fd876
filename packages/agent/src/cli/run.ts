// `trellis <command> [<args>]`: finds the command (commands nest: "kv get", "operator raft
// list-peers") and runs it. The usage layout and messages follow Consul's (mitchellh/cli).

import type { Command, CommandContext } from './command.ts';
import { execute, makeContext } from './command.ts';
import type { CliIO } from './io.ts';
import { ACL_COMMANDS, ACL_GROUPS } from './commands/acl.ts';
import { agentCommand } from './commands/agent.ts';
import { catalogDatacentersCommand, catalogNodesCommand, catalogServicesCommand } from './commands/catalog.ts';
import { configDeleteCommand, configListCommand, configReadCommand, configWriteCommand } from './commands/config.ts';
import { connectCAGetConfigCommand, connectCASetConfigCommand } from './commands/connectCA.ts';
import { connectGatewayCommand } from './commands/connectGateway.ts';
import { connectProxyCommand } from './commands/connectProxy.ts';
import { eventCommand } from './commands/event.ts';
import { infoCommand } from './commands/info.ts';
import { INTENTION_COMMANDS } from './commands/intention.ts';
import { keygenCommand } from './commands/keygen.ts';
import { kvDeleteCommand, kvExportCommand, kvGetCommand, kvImportCommand, kvPutCommand } from './commands/kv.ts';
import { leaveCommand, reloadCommand } from './commands/lifecycle.ts';
import { lockCommand } from './commands/lock.ts';
import { membersCommand } from './commands/members.ts';
import { forceLeaveCommand, joinCommand } from './commands/membership.ts';
import { raftListPeersCommand, raftRemovePeerCommand, raftTransferLeaderCommand } from './commands/operator.ts';
import { servicesDeregisterCommand, servicesRegisterCommand } from './commands/services.ts';
import { snapshotRestoreCommand, snapshotSaveCommand } from './commands/snapshot.ts';
import { versionCommand, versionText } from './commands/version.ts';

export const COMMANDS: readonly Command[] = [
  ...ACL_COMMANDS,
  agentCommand,
  catalogDatacentersCommand, catalogNodesCommand, catalogServicesCommand,
  configDeleteCommand, configListCommand, configReadCommand, configWriteCommand,
  connectCAGetConfigCommand, connectCASetConfigCommand,
  connectGatewayCommand, connectProxyCommand,
  eventCommand, forceLeaveCommand,
  infoCommand, ...INTENTION_COMMANDS, joinCommand, keygenCommand,
  kvDeleteCommand, kvExportCommand, kvGetCommand, kvImportCommand, kvPutCommand,
  leaveCommand, lockCommand, membersCommand,
  raftListPeersCommand, raftRemovePeerCommand, raftTransferLeaderCommand, reloadCommand,
  servicesDeregisterCommand, servicesRegisterCommand,
  snapshotRestoreCommand, snapshotSaveCommand,
  versionCommand,
];

/** Synopses of the command groups, which only list their subcommands. */
const GROUPS: Readonly<Record<string, string>> = {
  ...ACL_GROUPS,
  catalog: 'Interact with the catalog',
  config: 'Interact with Trellis\'s centralized configurations',
  connect: 'Interact with Trellis Connect',
  'connect ca': 'Interact with the Trellis Connect Certificate Authority (CA)',
  intention: 'Interact with Connect service intentions',
  kv: 'Interact with the key-value store',
  operator: 'Provides cluster-level tools for Trellis operators',
  'operator raft': 'Provides cluster-level tools for Trellis operators',
  services: 'Interact with services',
  snapshot: 'Saves and restores snapshots of Trellis server state',
};

function listing(entries: Array<[string, string]>): string {
  const width = Math.max(...entries.map(([n]) => n.length)) + 4;
  return entries.map(([n, s]) => `    ${n.padEnd(width)}${s}`).join('\n');
}

/** The direct children of a command path ('' = top level): [name, synopsis]. */
function children(path: string): Array<[string, string]> {
  const depth = path === '' ? 0 : path.split(' ').length;
  const names = new Map<string, string>();
  for (const c of COMMANDS) {
    const parts = c.name.split(' ');
    if (parts.length <= depth || parts.slice(0, depth).join(' ') !== path) continue;
    const child = parts[depth]!;
    const full = [...parts.slice(0, depth), child].join(' ');
    names.set(child, parts.length === depth + 1 ? c.synopsis : (GROUPS[full] ?? ''));
  }
  return [...names.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function topUsage(): string {
  return `Usage: trellis [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n${listing(children(''))}\n`;
}

function groupUsage(path: string): string {
  return `Usage: trellis ${path} <subcommand> [options] [args]\n\n  ${GROUPS[path] ?? ''}\n\nSubcommands:\n${listing(children(path))}\n`;
}

/** Runs the CLI; resolves with the process exit code. */
export async function runCli(argv: readonly string[], io: CliIO, extra: Partial<Omit<CommandContext, 'io' | 'ui'>> = {}): Promise<number> {
  const ctx = makeContext(io, extra);
  const first = argv[0];
  if (first === undefined) {
    io.stderr.write(topUsage());
    return 1;
  }
  if (first === '-h' || first === '-help' || first === '--help' || first === 'help') {
    io.stdout.write(topUsage());
    return 0;
  }
  if (first === '-v' || first === '-version' || first === '--version') {
    ctx.ui.output(versionText());
    return 0;
  }

  // Longest command path that matches the leading words.
  let path = '';
  let used = 0;
  for (let i = 0; i < argv.length; i++) {
    const candidate = path ? `${path} ${argv[i]}` : argv[i]!;
    if (!COMMANDS.some((c) => c.name === candidate || c.name.startsWith(`${candidate} `))) break;
    path = candidate;
    used = i + 1;
  }
  if (path === '') {
    ctx.ui.error(`Unknown command: "${first}". Run "trellis -h" for the list of commands.`);
    io.stderr.write(topUsage());
    return 1;
  }
  const cmd = COMMANDS.find((c) => c.name === path);
  if (!cmd) {
    const next = argv[used];
    const asksHelp = next === '-h' || next === '-help' || next === '--help';
    if (asksHelp) {
      io.stdout.write(groupUsage(path));
      return 0;
    }
    if (next !== undefined && !next.startsWith('-')) ctx.ui.error(`Unknown command: "${path} ${next}".`);
    io.stderr.write(groupUsage(path));
    return 1;
  }
  return execute(cmd, argv.slice(used), ctx);
}
