// User events (serf): a Lamport clock orders them across members, and a ring of recent Lamport
// times de-duplicates them so each member delivers an event exactly once however many copies the
// epidemic brings. An event older than the ring (or older than our join, for a joiner that asked
// to ignore old events) is dropped rather than delivered late.
import type { UserEventUpdate } from './types.ts';

/** serf LamportClock: time() is the next value to stamp; witness() moves past what others stamped. */
export class LamportClock {
  #t = 1;
  time(): number {
    return this.#t;
  }
  increment(): number {
    return this.#t++;
  }
  witness(v: number): void {
    if (v >= this.#t) this.#t = v + 1;
  }
}

interface Slot {
  ltime: number;
  events: UserEventUpdate[];
}

export type EventVerdict = 'new' | 'duplicate' | 'too-old' | 'before-join';

export class UserEventBuffer {
  readonly clock = new LamportClock();
  /** Events stamped before this are ignored (set from the cluster's clock when joining). */
  minLTime = 0;
  readonly #slots: (Slot | undefined)[];

  constructor(size: number) {
    this.#slots = new Array(size);
  }

  /** Classifies `ev` and, when new, remembers it. The clock witnesses every event, even refused ones. */
  admit(ev: UserEventUpdate): EventVerdict {
    this.clock.witness(ev.ltime);
    if (ev.ltime < this.minLTime) return 'before-join';
    const size = this.#slots.length;
    const cur = this.clock.time();
    if (cur > size && ev.ltime < cur - size) return 'too-old';
    const idx = ev.ltime % size;
    let slot = this.#slots[idx];
    if (slot && slot.ltime === ev.ltime) {
      if (slot.events.some((e) => e.name === ev.name && bytesEqual(e.payload, ev.payload))) return 'duplicate';
    } else {
      slot = { ltime: ev.ltime, events: [] };
      this.#slots[idx] = slot;
    }
    slot.events.push(ev);
    return 'new';
  }

  /** Every remembered event, oldest first (what a push-pull carries). */
  recent(): UserEventUpdate[] {
    const out: UserEventUpdate[] = [];
    for (const s of this.#slots) if (s) out.push(...s.events);
    return out.sort((a, b) => a.ltime - b.ltime);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
