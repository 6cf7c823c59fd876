// Membership as a function of the log (Raft thesis §4.1): a server uses the latest configuration in
// its log, whether or not that entry is committed. Appending a conf entry changes membership at
// once; truncating it away reverts to the configuration before it.
import { decodeConfChange } from './types.ts';
import type { ConfChange, ConfState, Entry, NodeId } from './types.ts';

export function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

export function isMember(c: ConfState, id: NodeId): boolean {
  return c.voters.includes(id) || c.learners.includes(id);
}

/**
 * Why `cc` cannot be applied to `conf` (one server at a time), or undefined if it can.
 * Used by the leader before it appends; followers apply whatever the leader appended.
 */
export function confChangeProblem(conf: ConfState, cc: ConfChange): string | undefined {
  if (typeof cc !== 'object' || cc === null) return 'the change must be an object';
  if (typeof cc.node !== 'string' || cc.node === '') return 'node must be a non-empty node id';
  const voter = conf.voters.includes(cc.node);
  const learner = conf.learners.includes(cc.node);
  switch (cc.type) {
    case 'addVoter':
      if (voter) return `${cc.node} is already a voter`;
      if (learner) return `${cc.node} is a learner; promote it instead of adding it again`;
      return undefined;
    case 'addLearner':
      if (voter) return `${cc.node} is already a voter`;
      if (learner) return `${cc.node} is already a learner`;
      return undefined;
    case 'promote':
      if (voter) return `${cc.node} is already a voter`;
      if (!learner) return `${cc.node} is not a learner, so it cannot be promoted`;
      return undefined;
    case 'remove':
      if (!voter && !learner) return `${cc.node} is not a member`;
      if (voter && conf.voters.length === 1) return `${cc.node} is the last voter; removing it would leave no one to elect a leader`;
      return undefined;
    default:
      return `unknown change type ${JSON.stringify((cc as { type: unknown }).type)}`;
  }
}

/** Applies a change leniently (a no-op where it does not fit): every replica must compute the same
 *  configuration from the same log, including from entries a buggy leader should not have written. */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.node);
  const learners = conf.learners.filter((l) => l !== cc.node);
  const wasVoter = conf.voters.includes(cc.node);
  switch (cc.type) {
    case 'addVoter':
    case 'promote':
      return { voters: [...voters, cc.node], learners };
    case 'addLearner':
      // Demotion is not a supported change: a voter stays a voter.
      return wasVoter ? cloneConf(conf) : { voters, learners: [...learners, cc.node] };
    case 'remove':
      return { voters, learners };
    default:
      return cloneConf(conf);
  }
}

/** Decodes a conf entry, or undefined if its data is not a well-formed ConfChange. */
export function decodeConfEntry(e: Entry): ConfChange | undefined {
  let cc: unknown;
  try {
    cc = decodeConfChange(e.data);
  } catch {
    // Not JSON: the entry is treated as a no-op on every replica alike (counted by the caller).
    return undefined;
  }
  if (typeof cc !== 'object' || cc === null) return undefined;
  const { type, node } = cc as Record<string, unknown>;
  if (typeof node !== 'string' || !['addVoter', 'addLearner', 'promote', 'remove'].includes(type as string)) return undefined;
  return cc as ConfChange;
}

interface ConfPoint {
  /** Index of the conf entry (or of the snapshot / bootstrap base). */
  index: number;
  conf: ConfState;
}

/** The configurations along the log: a base (snapshot or bootstrap) plus one point per conf entry. */
export class MembershipHistory {
  private points: ConfPoint[];
  malformed = 0;

  constructor(baseIndex: number, base: ConfState) {
    this.points = [{ index: baseIndex, conf: cloneConf(base) }];
  }

  current(): ConfState {
    return this.points[this.points.length - 1]!.conf;
  }

  /** Index of the latest conf entry in the log (the base index when there is none). */
  lastConfIndex(): number {
    return this.points[this.points.length - 1]!.index;
  }

  /** Whether the log holds a conf entry above `index`. */
  hasConfEntryAfter(index: number): boolean {
    return this.points.length > 1 && this.lastConfIndex() > index;
  }

  /** Replays conf entries among freshly appended entries (those above the base index only). */
  append(entries: readonly Entry[]): boolean {
    let changed = false;
    for (const e of entries) {
      if (e.kind !== 'conf' || e.index <= this.points[0]!.index) continue;
      const cc = decodeConfEntry(e);
      if (!cc) {
        this.malformed++;
        continue;
      }
      this.points.push({ index: e.index, conf: applyConfChange(this.current(), cc) });
      changed = true;
    }
    return changed;
  }

  /** Forgets conf entries at or after `index` (their log suffix was overwritten). */
  truncateFrom(index: number): boolean {
    let changed = false;
    while (this.points.length > 1 && this.points[this.points.length - 1]!.index >= index) {
      this.points.pop();
      changed = true;
    }
    return changed;
  }

  /** Folds points ≤ index into the base (the log below it was compacted). */
  compact(index: number): void {
    let i = 0;
    while (i + 1 < this.points.length && this.points[i + 1]!.index <= index) i++;
    if (i > 0) this.points.splice(0, i);
  }

  reset(baseIndex: number, base: ConfState): void {
    this.points = [{ index: baseIndex, conf: cloneConf(base) }];
  }
}
