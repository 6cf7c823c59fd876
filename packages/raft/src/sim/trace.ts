// The run's trace: what happened, step by step. The last events are kept for a failure report; every
// event also feeds a running digest, so two runs of one seed can be compared without storing either.
import type { Message } from '../core/types.ts';

export class Trace {
  private readonly ring: string[];
  private next = 0;
  private count = 0;
  // Two independent FNV-1a lanes: 64 bits of digest from 32-bit integer arithmetic.
  private h1 = 0x811c9dc5;
  private h2 = 0x01000193 ^ 0x5bd1e995;

  constructor(keep = 400) {
    this.ring = new Array<string>(Math.max(1, keep));
  }

  add(step: number, text: string): void {
    const line = `${step} ${text}`;
    this.ring[this.next] = line;
    this.next = (this.next + 1) % this.ring.length;
    this.count++;
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h2 >>> 15);
    }
    h1 = Math.imul(h1 ^ 10, 0x01000193);
    this.h1 = h1;
    this.h2 = h2;
  }

  /** Number of events recorded over the run. */
  get events(): number {
    return this.count;
  }

  /** The last `n` events, oldest first. */
  tail(n = this.ring.length): string[] {
    const kept = Math.min(this.count, this.ring.length, n);
    const out: string[] = [];
    for (let i = kept; i > 0; i--) out.push(this.ring[(this.next - i + this.ring.length) % this.ring.length]!);
    return out;
  }

  digest(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, '0') + (this.h2 >>> 0).toString(16).padStart(8, '0') + `:${this.count}`;
  }
}

export function describeMessage(m: Message): string {
  let s = `${m.type} ${m.from}→${m.to} t${m.term}`;
  switch (m.type) {
    case 'app':
      s += ` prev=${m.index}/${m.logTerm} n=${m.entries?.length ?? 0} commit=${m.commit}`;
      break;
    case 'appResp':
      s += ` idx=${m.index}${m.reject ? ` REJECT hint=${m.hintIndex}/${m.hintTerm}` : ''}`;
      break;
    case 'vote':
    case 'preVote':
      s += ` last=${m.index}/${m.logTerm}${m.transfer ? ' transfer' : ''}`;
      break;
    case 'voteResp':
    case 'preVoteResp':
      s += m.reject ? ' REJECT' : ' grant';
      break;
    case 'heartbeat':
      s += ` commit=${m.commit}${m.context ? ` ctx=${m.context}` : ''}`;
      break;
    case 'heartbeatResp':
      if (m.context) s += ` ctx=${m.context}`;
      break;
    case 'snap':
      s += ` snap=${m.snapshot?.meta.index}/${m.snapshot?.meta.term}`;
      break;
    default:
      break;
  }
  return s;
}
