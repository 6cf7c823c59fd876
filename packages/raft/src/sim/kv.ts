// The simulator's replicated state machine: a string→string map with put/get/cas, plus the
// sequential specification the linearizability checker holds histories against.
//
// Commands travel as JSON in Entry.data. Every command carries the client's operation id so the
// node that proposed it can match the applied entry to the waiting client, and so the simulator
// can tell when one operation was applied twice (a Raft bug: a client op is proposed exactly once).
import type { Model } from './linearizability.ts';

export type KvInput =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'cas'; key: string; expected: string | null; value: string };

export type KvOutput =
  | { kind: 'put' }
  | { kind: 'get'; value: string | null }
  | { kind: 'cas'; ok: boolean };

/** What a normal entry carries. */
export interface KvCommand {
  /** Globally unique operation id. */
  id: string;
  /** Absent = an entry that changes nothing (reserved; the leader's own no-op has empty data). */
  op?: KvInput;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

/** Decodes a normal entry's data; undefined for the empty no-op a leader appends on election. */
export function decodeCommand(data: Uint8Array): KvCommand | undefined {
  if (data.length === 0) return undefined;
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

/** The state machine one simulated node applies committed entries to. */
export class KvStateMachine {
  private data = new Map<string, string>();

  apply(op: KvInput): KvOutput {
    switch (op.kind) {
      case 'put':
        this.data.set(op.key, op.value);
        return { kind: 'put' };
      case 'get':
        return { kind: 'get', value: this.data.get(op.key) ?? null };
      case 'cas': {
        const cur = this.data.get(op.key) ?? null;
        if (cur !== op.expected) return { kind: 'cas', ok: false };
        this.data.set(op.key, op.value);
        return { kind: 'cas', ok: true };
      }
    }
  }

  /** A local read (served by a leader after ReadIndex confirmed it may). */
  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** The whole state as JSON bytes with keys sorted, so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const entries = [...this.data.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return encoder.encode(JSON.stringify(entries));
  }

  restore(bytes: Uint8Array): void {
    const entries = JSON.parse(decoder.decode(bytes)) as Array<[string, string]>;
    this.data = new Map(entries);
  }
}

/**
 * The sequential specification of one key (histories are partitioned by key, which is sound for a
 * map whose operations each touch one key: linearizability is compositional, Herlihy & Wing §3.3).
 * State is the key's value, null when absent. An undefined output means the client never learned
 * the outcome (it timed out): any outcome the state allows is accepted.
 */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  partitionKey: (input) => input.key,
  step(state, input, output) {
    switch (input.kind) {
      case 'put':
        return { ok: true, state: input.value };
      case 'get':
        return { ok: output === undefined || (output.kind === 'get' && output.value === state), state };
      case 'cas': {
        const hit = state === input.expected;
        if (output !== undefined && (output.kind !== 'cas' || output.ok !== hit)) return { ok: false, state };
        return { ok: true, state: hit ? input.value : state };
      }
    }
  },
  stateKey: (state) => (state === null ? '\u0000' : `=${state}`),
  describe(input, output) {
    const out = output === undefined ? '?' : output.kind === 'get' ? JSON.stringify(output.value) : output.kind === 'cas' ? String(output.ok) : 'ok';
    switch (input.kind) {
      case 'put': return `put(${input.key}, ${JSON.stringify(input.value)}) → ${out}`;
      case 'get': return `get(${input.key}) → ${out}`;
      case 'cas': return `cas(${input.key}, ${JSON.stringify(input.expected)} → ${JSON.stringify(input.value)}) → ${out}`;
    }
  },
};
