// Consul's user events on top of the pool's serf-style events: Consul fires a serf event named
// "consul:event:<name>" whose payload is the whole UserEvent (ID, filters, payload...), so that
// every agent can apply the node/service/tag filters itself (agent/user_event.go). Trellis encodes
// that record as compact JSON; the serf limit (name + payload ≤ 512 bytes) applies to the result.
import { GossipError } from './core/errors.ts';

export const CONSUL_EVENT_PREFIX = 'consul:event:';

/** Consul's UserEvent (as agent/user_event.go carries it through serf). */
export interface ConsulUserEvent {
  ID: string;
  Name: string;
  Payload: Uint8Array | null;
  NodeFilter: string;
  ServiceFilter: string;
  TagFilter: string;
  Version: number;
  LTime: number;
}

export function consulEventName(name: string): string {
  return CONSUL_EVENT_PREFIX + name;
}

/** The Consul event name of a pool event, or undefined when it is not a Consul user event. */
export function rawConsulEventName(poolEventName: string): string | undefined {
  return poolEventName.startsWith(CONSUL_EVENT_PREFIX) ? poolEventName.slice(CONSUL_EVENT_PREFIX.length) : undefined;
}

/** Encodes the event for pool.fireEvent(consulEventName(ev.Name), ...). LTime is the pool's, so it is not sent. */
export function encodeConsulEvent(ev: ConsulUserEvent): Uint8Array {
  const o = {
    i: ev.ID, n: ev.Name, p: ev.Payload ? Buffer.from(ev.Payload).toString('base64') : null,
    nf: ev.NodeFilter || undefined, sf: ev.ServiceFilter || undefined, tf: ev.TagFilter || undefined, v: ev.Version,
  };
  return new TextEncoder().encode(JSON.stringify(o));
}

/** Decodes a received Consul event; `ltime` is the pool event's Lamport time. Throws ERR_MALFORMED_MESSAGE. */
export function decodeConsulEvent(bytes: Uint8Array, ltime: number): ConsulUserEvent {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new GossipError('ERR_MALFORMED_MESSAGE', `Consul user event payload is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const str = (k: string, required: boolean): string => {
    const v = o[k];
    if (v === undefined && !required) return '';
    if (typeof v !== 'string') throw new GossipError('ERR_MALFORMED_MESSAGE', `Consul user event field "${k}" must be a string`);
    return v;
  };
  const p = o.p;
  if (p !== null && typeof p !== 'string') throw new GossipError('ERR_MALFORMED_MESSAGE', 'Consul user event payload must be base64 or null');
  const version = o.v;
  if (typeof version !== 'number' || !Number.isInteger(version)) throw new GossipError('ERR_MALFORMED_MESSAGE', 'Consul user event version must be an integer');
  return {
    ID: str('i', true), Name: str('n', true), Payload: p === null ? null : new Uint8Array(Buffer.from(p, 'base64')),
    NodeFilter: str('nf', false), ServiceFilter: str('sf', false), TagFilter: str('tf', false), Version: version, LTime: ltime,
  };
}
