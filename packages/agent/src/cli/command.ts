// The shape of a CLI command and the one place flags are parsed and errors become exit codes, so
// every command reports bad flags, help requests and unreachable agents the same way (as Consul's
// commands do: message on stderr, usage after a flag error, exit 1).

import { FlagError, formatUsage, parseFlags, type FlagSpec, type ParsedFlags } from '../config/flags.ts';
import { ApiClient, ApiError, clientOptionsFrom } from './http.ts';
import { Ui, type CliIO } from './io.ts';
import type { RuntimeConfig } from '../config/runtime.ts';

/** What ../agent.ts exports (written by the agent's lead engineer). */
export interface AgentHandle {
  /** `leave`: leave the cluster gracefully first. */
  stop(opts?: { leave?: boolean }): Promise<void>;
  /** Optional: applies a reloaded configuration (SIGHUP). */
  reload?(config: RuntimeConfig): Promise<void>;
}
export interface AgentModule {
  /** `reloadConfig` re-reads flags and files (PUT /v1/agent/reload does what SIGHUP does). */
  startAgent(config: RuntimeConfig, opts?: { reloadConfig?: () => RuntimeConfig }): Promise<AgentHandle>;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface CommandContext {
  readonly io: CliIO;
  readonly ui: Ui;
  /** Injected by tests; defaults to the global fetch. */
  readonly fetch?: FetchLike;
  /** Injected by tests; defaults to importing ../agent.ts. */
  readonly loadAgent?: () => Promise<AgentModule>;
}

export interface Command {
  /** Full command path, e.g. "kv get". */
  readonly name: string;
  readonly synopsis: string;
  /** "Usage: trellis kv get [options] KEY\n\n  What it does ..." */
  readonly help: string;
  readonly flags: readonly FlagSpec[];
  /** Exit code after a flag error; 1 unless the Consul command returns another (intention check: 2). */
  readonly flagErrorExitCode?: number;
  /** `argv` is the command's own arguments as given (the agent re-reads them on reload). */
  run(ctx: CommandContext, flags: ParsedFlags, argv: readonly string[]): Promise<number>;
}

export function helpText(cmd: Command): string {
  return formatUsage(cmd.help, cmd.flags);
}

export function makeContext(io: CliIO, extra: Partial<Omit<CommandContext, 'io' | 'ui'>> = {}): CommandContext {
  return { io, ui: new Ui(io), ...extra };
}

/** Parses the command's flags and runs it; returns the process exit code. */
export async function execute(cmd: Command, args: readonly string[], ctx: CommandContext): Promise<number> {
  let parsed: ParsedFlags;
  try {
    parsed = parseFlags(cmd.flags, args);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    if (err.code === 'ERR_HELP') {
      ctx.io.stdout.write(helpText(cmd));
      return 0;
    }
    ctx.ui.error(err.message);
    ctx.io.stderr.write(helpText(cmd));
    return cmd.flagErrorExitCode ?? 1;
  }
  try {
    return await cmd.run(ctx, parsed, args);
  } catch (err) {
    // Commands report the errors they expect with their own wording; this is the backstop so that
    // an unexpected failure is still one readable line and exit 1, not a stack trace.
    if (err instanceof ApiError) ctx.ui.error(`Error: ${err.message}`);
    else ctx.ui.error(`Error: ${(err as Error).message ?? String(err)}`);
    return 1;
  }
}

/** The API client for a command's HTTP flags; undefined (after printing why) if they are unusable. */
export function clientFor(ctx: CommandContext, flags: ParsedFlags): ApiClient | undefined {
  try {
    return new ApiClient(clientOptionsFrom(flags, ctx.io.env), ctx.fetch);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    ctx.ui.error(`Error connecting to agent: ${err.message}`);
    return undefined;
  }
}

/** "Error querying agent: connection refused to ... — is the agent running? ..." */
export function apiErrorText(prefix: string, err: unknown): string {
  if (err instanceof ApiError) return `${prefix}: ${err.message}`;
  throw err;
}

/** Consul's commands that act on the agent first check it answers: false (after the error) if not. */
export async function agentReachable(ctx: CommandContext, client: ApiClient): Promise<boolean> {
  try {
    await client.request('GET', '/v1/agent/self');
    return true;
  } catch (err) {
    ctx.ui.error(apiErrorText('Error querying agent', err));
    return false;
  }
}

export function tooManyArgs(ctx: CommandContext, expected: string, got: number): number {
  ctx.ui.error(`Too many arguments (expected ${expected}, got ${got})`);
  return 1;
}
