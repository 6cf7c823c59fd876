// User events (`event/fire`, `event/list`). In Consul they ride serf gossip, not Raft: each agent
// keeps the last 256 events it processed in a ring and answers event/list from it. Until the gossip
// layer exists, a fired event is delivered to this agent alone (when its filters match this node).
//
// Index: Consul derives X-Consul-Index of event/list from the last event's ID, which is not
// monotonic, and blocks only while the client's index equals the current one. Trellis uses the
// last event's Lamport time + 1 (monotonic, and never the empty list's 1) and keeps Consul's
// "block while equal" rule, which works for clients that treat the index as opaque as well as for
// those that compare it.

import { randomUUID } from 'node:crypto';
import type { ConsulUserEvent } from '../gossip/consulEvents.ts';

/** Consul's UserEvent (agent/user_event.go) as JSON shows it: the record gossip carries (consulEvents.ts). */
export type UserEvent = ConsulUserEvent;

/**
 * Consul's shouldProcessUserEvent: do the event's filters (Go regular expressions, unanchored)
 * select this agent? An invalid pattern selects nothing.
 */
export function eventMatchesAgent(ev: Pick<UserEvent, 'NodeFilter' | 'ServiceFilter' | 'TagFilter'>, nodeName: string,
  services: ReadonlyArray<{ Service: string; Tags: readonly string[] }>): boolean {
  const re = (p: string): RegExp | null | undefined => {
    if (p === '') return undefined;
    try { return new RegExp(p); } catch { return null; }
  };
  const node = re(ev.NodeFilter);
  if (node === null || (node && !node.test(nodeName))) return false;
  const service = re(ev.ServiceFilter);
  if (service === null) return false;
  if (!service) return true;
  const tag = re(ev.TagFilter);
  if (tag === null) return false;
  return services.some((s) => service.test(s.Service) && (!tag || s.Tags.some((t) => tag.test(t))));
}

/** Consul's userEventBuffer size. */
export const EVENT_RING_SIZE = 256;

export class EventLog {
  readonly #ring: UserEvent[] = [];
  readonly #size: number;
  #ltime = 0;
  readonly #waiters = new Set<() => void>();

  constructor(size = EVENT_RING_SIZE) {
    this.#size = size;
  }

  /**
   * Fires an event: stamps its ID and Lamport time and, when `deliverHere` says the filters match
   * this agent, stores it. Returns the stamped event (what `event/fire` answers).
   * The gossip layer will broadcast here instead and call ingest() on every receiving agent.
   */
  fire(ev: Omit<UserEvent, 'ID' | 'LTime' | 'Version'>, deliverHere: (ev: UserEvent) => boolean): UserEvent {
    // Field order as Consul's JSON has it.
    const stamped: UserEvent = {
      ID: randomUUID(), Name: ev.Name, Payload: ev.Payload, NodeFilter: ev.NodeFilter,
      ServiceFilter: ev.ServiceFilter, TagFilter: ev.TagFilter, Version: 1, LTime: ++this.#ltime,
    };
    if (deliverHere(stamped)) this.ingest(stamped);
    return stamped;
  }

  /** Stores a received event (dropping the oldest beyond the ring size) and wakes list watchers. */
  ingest(ev: UserEvent): void {
    if (ev.LTime > this.#ltime) this.#ltime = ev.LTime;
    this.#ring.push(ev);
    if (this.#ring.length > this.#size) this.#ring.shift();
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Events in arrival order, optionally only those named `name`. */
  list(name?: string): UserEvent[] {
    return name ? this.#ring.filter((e) => e.Name === name) : [...this.#ring];
  }

  /** Resolves true on the next ingested event, false when `signal` aborts. */
  wait(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onEvent = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      };
      const onAbort = (): void => {
        this.#waiters.delete(onEvent);
        resolve(false);
      };
      this.#waiters.add(onEvent);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Pending list watchers (for leak tests). */
  waiterCount(): number {
    return this.#waiters.size;
  }
}
