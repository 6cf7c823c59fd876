// Records client operations as they are invoked and answered, on one logical clock, in the shape
// the linearizability checker reads. The clock is an event counter: every invoke and every answer
// gets a distinct, increasing time, so the real-time order of the run is kept exactly.
import type { Operation } from './linearizability.ts';

export type OpId = number;

interface Pending<I> {
  client: number;
  input: I;
  call: number;
  label: string;
}

export class HistoryRecorder<I, O> {
  private clock = 0;
  private readonly pending = new Map<OpId, Pending<I>>();
  private readonly done: Operation<I, O>[] = [];
  private nextId = 1;
  /** Counts per outcome, for the run's statistics. */
  readonly counts = { invoked: 0, ok: 0, failed: 0, indeterminate: 0 };

  /** `label` says where and when, for reports (e.g. "step 40→n2"). */
  invoke(client: number, input: I, label = ''): OpId {
    const id = this.nextId++;
    this.pending.set(id, { client, input, call: ++this.clock, label });
    this.counts.invoked++;
    return id;
  }

  /** The client received `output`: the operation took effect exactly once, between call and now. */
  ok(id: OpId, output: O, label = ''): void {
    const p = this.take(id);
    this.done.push({ client: p.client, input: p.input, output, call: p.call, ret: ++this.clock, label: joinLabel(p.label, label) });
    this.counts.ok++;
  }

  /** The client knows the operation did not and never will take effect (e.g. refused by a
   *  non-leader, or its log slot was taken by another entry). It is left out of the history. */
  fail(id: OpId): void {
    this.take(id);
    this.counts.failed++;
  }

  /** The client gave up without learning the outcome: it may take effect at any later time or never.
   *  `keep` false drops it (a read with an unknown result constrains nothing). */
  indeterminate(id: OpId, keep: boolean): void {
    const p = this.take(id);
    this.counts.indeterminate++;
    if (keep) this.done.push({ client: p.client, input: p.input, output: undefined, call: p.call, ret: Infinity, label: joinLabel(p.label, 'no answer') });
  }

  isPending(id: OpId): boolean {
    return this.pending.has(id);
  }

  pendingCount(): number {
    return this.pending.size;
  }

  /** The history so far; operations still pending are included as indeterminate (unless `dropPending`
   *  says they constrain nothing, as for reads). */
  operations(dropPending?: (input: I) => boolean): Operation<I, O>[] {
    const out = this.done.slice();
    for (const p of this.pending.values()) {
      if (dropPending?.(p.input)) continue;
      out.push({ client: p.client, input: p.input, output: undefined, call: p.call, ret: Infinity, label: joinLabel(p.label, 'pending') });
    }
    return out;
  }

  private take(id: OpId): Pending<I> {
    const p = this.pending.get(id);
    if (!p) throw new Error(`history: operation ${id} is not pending (answered twice, or never invoked)`);
    this.pending.delete(id);
    return p;
  }
}

function joinLabel(a: string, b: string): string {
  return a && b ? `${a}, ${b}` : a || b;
}
