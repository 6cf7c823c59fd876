// The Raft state machine over the state store (@trellis/raft's StateMachine contract: apply is
// deterministic and never throws; snapshot/restore move the whole state).
import { decodeCommand } from './codec.ts';
import { CommandDecodeError } from './errors.ts';
import type { StateStore } from './store.ts';
import type { CommandResult } from './types.ts';

/** The parts of a Raft entry the FSM reads (structurally @trellis/raft's Entry). */
export interface FsmEntry {
  index: number;
  data: Uint8Array;
}

/** Structurally @trellis/raft's `StateMachine<CommandResult>`. */
export interface StateFsm {
  apply(entry: FsmEntry): CommandResult;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
}

export function createFsm(store: StateStore): StateFsm {
  return {
    apply(entry: FsmEntry): CommandResult {
      let cmd;
      try {
        cmd = decodeCommand(entry.data);
      } catch (e) {
        // Data this build cannot read (a newer version's command, or corruption): refuse it the same
        // way on every replica rather than stop the node.
        const message = e instanceof CommandDecodeError ? e.message : `undecodable command: ${String(e)}`;
        return { ok: false, index: entry.index, error: { code: 'ERR_BAD_COMMAND', message } };
      }
      return store.apply(entry.index, cmd);
    },
    snapshot(): Uint8Array {
      return store.snapshot();
    },
    restore(data: Uint8Array): void {
      store.restore(data);
    },
  };
}
