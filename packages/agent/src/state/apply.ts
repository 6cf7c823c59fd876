// Proposing a command and turning a refusal into an error with the store's code (the HTTP edge maps
// it in http/errors.ts; the agent's local state and the HTTP routes both propose through it).

import type { Command, CommandResult, CommandType, CommandValueMap, StateErrorCode } from './types.ts';

/** A command the state machine refused; nothing was changed. `code` is the store's stable code. */
export class CommandRefusedError extends Error {
  readonly code: StateErrorCode;
  readonly index: number;
  constructor(code: StateErrorCode, message: string, index: number) {
    super(message);
    this.name = 'CommandRefusedError';
    this.code = code;
    this.index = index;
  }
}

type ApplyFn = (cmd: Command) => Promise<CommandResult>;

/** Applies `cmd` and returns its value; throws CommandRefusedError when the store refused it. */
export async function applyOk<C extends Command>(apply: ApplyFn, cmd: C): Promise<{ value: CommandValueMap[C['type'] & CommandType]; index: number }> {
  const res = await apply(cmd);
  if (!res.ok) throw new CommandRefusedError(res.error.code, res.error.message, res.index);
  return { value: res.value as CommandValueMap[C['type'] & CommandType], index: res.index };
}
