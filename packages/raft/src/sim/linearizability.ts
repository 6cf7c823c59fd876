// A linearizability checker in the style of Wing & Gong (1993) with Lowe's memoization (2017), as
// Porcupine implements it: depth-first search over the order in which operations take effect,
// pruning every (set of linearized operations, model state) pair already explored. Histories are
// split by the model's partition key first, which turns one exponential search into several small
// ones (linearizability is compositional: Herlihy & Wing §3.3).
//
// An operation whose client never learned the outcome (timed out, leader lost) returns at +∞ with
// an unknown output: it may take effect at any point after its call, or never (linearizing it after
// every other operation is the same as it never happening).

/** A sequential specification. States must be immutable values (the search keeps old ones). */
export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `state`; ok=false when `output` is not what the specification allows.
   *  `output` undefined = unknown: accept whatever the state yields. */
  step(state: S, input: I, output: O | undefined): { ok: boolean; state: S };
  /** Operations with different keys never interact and are checked separately. */
  partitionKey(input: I): string;
  /** A string that is equal for equal states (the memo key). */
  stateKey(state: S): string;
  describe(input: I, output: O | undefined): string;
}

export interface Operation<I, O> {
  client: number;
  input: I;
  /** undefined when the outcome is unknown (then `ret` must be +∞). */
  output: O | undefined;
  /** Invocation and response times; any totally ordered clock. ret = Infinity for unknown outcomes. */
  call: number;
  ret: number;
  /** Free text for reports (e.g. the simulation steps and node involved). */
  label?: string;
}

export type CheckResult<I, O> =
  | { ok: true; searched: number }
  /** Gave up after `maxSearchSteps`: neither proven nor refuted. */
  | { ok: 'unknown'; searched: number; partition: string }
  | {
    ok: false;
    searched: number;
    /** The partition (key) whose history has no linearization. */
    partition: string;
    /** That partition's operations by call time. */
    operations: Operation<I, O>[];
    /** The longest prefix order that was legal, then the operations that could not follow it. */
    longestPrefix: Operation<I, O>[];
    explanation: string;
  };

export interface CheckOptions {
  /** Search steps (DFS moves) allowed across all partitions before answering 'unknown'. */
  maxSearchSteps?: number;
}

interface ListNode {
  /** Index into the partition's operations; -1 for the list head. */
  op: number;
  isCall: boolean;
  /** On a call node: its return node. */
  ret: ListNode | null;
  prev: ListNode | null;
  next: ListNode | null;
}

export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult<I, O> {
  const budget = { left: opts.maxSearchSteps ?? 5_000_000 };
  const partitions = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    if (op.output === undefined && op.ret !== Infinity) {
      throw new RangeError(`operation ${model.describe(op.input, op.output)} has an unknown output but returned at ${op.ret}; unknown outcomes must return at Infinity`);
    }
    if (!(op.ret >= op.call)) throw new RangeError(`operation ${model.describe(op.input, op.output)} returns (${op.ret}) before its call (${op.call})`);
    const key = model.partitionKey(op.input);
    let list = partitions.get(key);
    if (!list) partitions.set(key, (list = []));
    list.push(op);
  }
  let searched = 0;
  // Sorted for a deterministic order of checking (and so of any report).
  for (const key of [...partitions.keys()].sort()) {
    const ops = partitions.get(key)!.slice().sort((a, b) => a.call - b.call);
    const before = budget.left;
    const r = checkPartition(model, ops, budget);
    searched += before - budget.left;
    if (r === 'unknown') return { ok: 'unknown', searched, partition: key };
    if (r !== true) {
      const longestPrefix = r.map((i) => ops[i]!);
      return {
        ok: false,
        searched,
        partition: key,
        operations: ops,
        longestPrefix,
        explanation: explain(model, key, ops, longestPrefix),
      };
    }
  }
  return { ok: true, searched };
}

/** true, 'unknown' (budget spent), or the longest legal prefix found (indexes into ops). */
function checkPartition<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], budget: { left: number }): true | 'unknown' | number[] {
  // Events by time; at equal times calls come first, so operations that touch are concurrent.
  const events: Array<{ time: number; isCall: boolean; op: number }> = [];
  ops.forEach((op, i) => {
    events.push({ time: op.call, isCall: true, op: i });
    events.push({ time: op.ret, isCall: false, op: i });
  });
  events.sort((a, b) => (a.time - b.time) || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));

  const head: ListNode = { op: -1, isCall: false, ret: null, prev: null, next: null };
  const retNodes: ListNode[] = new Array(ops.length);
  let tail = head;
  // Build back to front would need the return nodes first; build front to back and patch calls.
  const callNodes: ListNode[] = new Array(ops.length);
  for (const ev of events) {
    const node: ListNode = { op: ev.op, isCall: ev.isCall, ret: null, prev: tail, next: null };
    tail.next = node;
    tail = node;
    if (ev.isCall) callNodes[ev.op] = node; else retNodes[ev.op] = node;
  }
  for (let i = 0; i < ops.length; i++) callNodes[i]!.ret = retNodes[i]!;

  const words = Math.ceil(ops.length / 32) || 1;
  const linearized = new Uint32Array(words);
  const seen = new Set<string>();
  const stack: Array<{ node: ListNode; state: S }> = [];
  let state = model.init();
  let longest: number[] = [];
  let entry: ListNode | null = head.next;

  while (head.next !== null) {
    if (--budget.left < 0) return 'unknown';
    // The last node of the list is always a return, so entry is never null here.
    const node = entry!;
    if (node.isCall) {
      const op = ops[node.op]!;
      const r = model.step(state, op.input, op.output);
      if (r.ok) {
        linearized[node.op >>> 5]! |= 1 << (node.op & 31);
        const memo = `${linearized.join(',')}|${model.stateKey(r.state)}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          stack.push({ node, state });
          state = r.state;
          lift(node);
          entry = head.next;
          continue;
        }
        linearized[node.op >>> 5]! &= ~(1 << (node.op & 31));
      }
      entry = node.next;
    } else {
      // An operation returned before we found a place for it: undo the last choice.
      if (stack.length > longest.length) longest = stack.map((s) => s.node.op);
      const top = stack.pop();
      if (!top) return longest;
      state = top.state;
      linearized[top.node.op >>> 5]! &= ~(1 << (top.node.op & 31));
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return true;
}

/** Unlinks a call node and its return node. */
function lift(call: ListNode): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.ret!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** Relinks them, in reverse order of lift (both nodes' own pointers were left intact). */
function unlift(call: ListNode): void {
  const ret = call.ret!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

function explain<S, I, O>(model: Model<S, I, O>, key: string, ops: Operation<I, O>[], prefix: Operation<I, O>[]): string {
  const fmt = (op: Operation<I, O>) =>
    `c${op.client} [${op.call}, ${op.ret === Infinity ? '∞' : op.ret}] ${model.describe(op.input, op.output)}${op.label ? `  (${op.label})` : ''}`;
  const lines = [`key ${JSON.stringify(key)}: no linearization of its ${ops.length} operations exists.`];
  let state = model.init();
  const states: string[] = [];
  for (const op of prefix) {
    state = model.step(state, op.input, op.output).state;
    states.push(model.stateKey(state));
  }
  const shown = 10;
  lines.push(`The longest legal order found has ${prefix.length} operations; its end${prefix.length > shown ? ` (last ${shown})` : ''}:`);
  prefix.forEach((op, i) => {
    if (i >= prefix.length - shown) lines.push(`  ${fmt(op)}   ⇒ ${states[i]}`);
  });
  // The blocking operations are the ones that returned earliest among those left over: one of
  // them can be placed neither here nor anywhere after.
  const placed = new Set(prefix);
  const rest = ops.filter((op) => !placed.has(op)).sort((a, b) => a.ret - b.ret);
  lines.push(`None of these can come next (earliest returns first):`);
  for (const op of rest.slice(0, 6)) lines.push(`  ${fmt(op)}`);
  if (rest.length > 6) lines.push(`  … ${rest.length - 6} more`);
  return lines.join('\n');
}
