// SWIM + Lifeguard settings, one typed object with every default in one place. The defaults are
// Consul's LAN pool (memberlist DefaultLANConfig as Consul uses it); `WAN_DEFAULTS` is Consul's WAN
// pool. Durations are milliseconds and say so in their names; `validateSwimConfig` turns every
// mistake into a message naming the field, the value and what is allowed.
import { GossipError } from './errors.ts';

export interface SwimConfig {
  /** One member is probed per interval (SWIM protocol period). Scaled by the local health multiplier. */
  probeIntervalMs: number;
  /** Wait this long for a direct ack before asking `indirectChecks` members to probe (scaled by health). */
  probeTimeoutMs: number;
  /** Members asked to ping-req an unresponsive target (SWIM §4.2 k). */
  indirectChecks: number;
  /** Suspicion timeout = suspicionMult × max(1, log10(N)) × probeIntervalMs (memberlist suspicionTimeout). */
  suspicionMult: number;
  /** Lifeguard §4.2: a suspicion starts at this multiple of the minimum timeout and shrinks with confirmations. */
  suspicionMaxTimeoutMult: number;
  /** Piggybacked broadcasts are sent to `gossipNodes` random members every interval. */
  gossipIntervalMs: number;
  gossipNodes: number;
  /** Dead and left members still receive gossip this long, so they can learn of and refute a false death. */
  gossipToTheDeadTimeMs: number;
  /** A full state exchange with one random member every interval (scaled up above 32 members). 0 turns it off. */
  pushPullIntervalMs: number;
  /** A broadcast is sent retransmitMult × ceil(log10(N + 1)) times before it leaves the queue. */
  retransmitMult: number;
  /** Lifeguard §4.1: the local health score ranges over 0 .. awarenessMaxMultiplier - 1; timeouts scale by score + 1. */
  awarenessMaxMultiplier: number;
  /** Lifeguard on: local health multiplier, nacks, dynamic suspicion and the buddy system. Off: plain SWIM (for comparison). */
  lifeguard: boolean;
  /** Failed (dead) members are forgotten after this long (Consul reconnect_timeout, 72 h). */
  reconnectTimeoutMs: number;
  /** Members that left are forgotten after this long (serf TombstoneTimeout, 24 h). */
  tombstoneTimeoutMs: number;
  /** How often the reaper looks for members to forget (serf ReapInterval). */
  reapIntervalMs: number;
  /** How often a failed member is tried again with a push-pull (serf ReconnectInterval); 0 turns it off. */
  reconnectIntervalMs: number;
  /** A dead member's name may be taken by a new address or peer after this long; left members at once (memberlist DeadNodeReclaimTime). */
  deadNodeReclaimTimeMs: number;
  /** Name + payload of a user event may not exceed this (serf UserEventSizeLimit). */
  userEventSizeLimitBytes: number;
  /** User events remembered for de-duplication, by Lamport time (serf EventBuffer). */
  eventBufferSize: number;
  /** Budget of one gossip message and of what is piggybacked on a probe message (memberlist's UDP buffer). */
  maxGossipBytes: number;
  /** Broadcasts beyond this depth are pruned, oldest and most transmitted first (serf MinQueueDepth). */
  maxQueueDepth: number;
}

export const LAN_DEFAULTS: Readonly<SwimConfig> = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadTimeMs: 30_000,
  pushPullIntervalMs: 30_000,
  retransmitMult: 4,
  awarenessMaxMultiplier: 8,
  lifeguard: true,
  reconnectTimeoutMs: 72 * 3600_000,
  tombstoneTimeoutMs: 24 * 3600_000,
  reapIntervalMs: 15_000,
  reconnectIntervalMs: 30_000,
  deadNodeReclaimTimeMs: 0,
  userEventSizeLimitBytes: 512,
  eventBufferSize: 512,
  maxGossipBytes: 1400,
  maxQueueDepth: 4096,
});

/** Consul's WAN pool (memberlist DefaultWANConfig): slower probes, longer suspicion. */
export const WAN_DEFAULTS: Readonly<SwimConfig> = Object.freeze({
  ...LAN_DEFAULTS,
  probeIntervalMs: 5000,
  probeTimeoutMs: 3000,
  suspicionMult: 6,
  gossipIntervalMs: 500,
  gossipNodes: 4,
  gossipToTheDeadTimeMs: 60_000,
  pushPullIntervalMs: 60_000,
});

type IntRule = { field: keyof SwimConfig; min: number; max?: number };
const RULES: IntRule[] = [
  { field: 'probeIntervalMs', min: 1 },
  { field: 'probeTimeoutMs', min: 1 },
  { field: 'indirectChecks', min: 0, max: 64 },
  { field: 'suspicionMult', min: 1 },
  { field: 'suspicionMaxTimeoutMult', min: 1 },
  { field: 'gossipIntervalMs', min: 1 },
  { field: 'gossipNodes', min: 0, max: 64 },
  { field: 'gossipToTheDeadTimeMs', min: 0 },
  { field: 'pushPullIntervalMs', min: 0 },
  { field: 'retransmitMult', min: 1 },
  { field: 'awarenessMaxMultiplier', min: 1, max: 64 },
  { field: 'reconnectTimeoutMs', min: 1 },
  { field: 'tombstoneTimeoutMs', min: 1 },
  { field: 'reapIntervalMs', min: 1 },
  { field: 'reconnectIntervalMs', min: 0 },
  { field: 'deadNodeReclaimTimeMs', min: 0 },
  { field: 'userEventSizeLimitBytes', min: 1, max: 9 * 1024 },
  { field: 'eventBufferSize', min: 1 },
  { field: 'maxGossipBytes', min: 256 },
  { field: 'maxQueueDepth', min: 16 },
];

/** Defaults (LAN unless `base` is given) overlaid with `overrides`, validated. */
export function swimConfig(overrides: Partial<SwimConfig> = {}, base: Readonly<SwimConfig> = LAN_DEFAULTS): SwimConfig {
  const c: SwimConfig = { ...base, ...overrides };
  validateSwimConfig(c);
  return c;
}

/** Throws ERR_GOSSIP_CONFIG naming the first field that is out of range. */
export function validateSwimConfig(c: SwimConfig): void {
  for (const { field, min, max } of RULES) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || (max !== undefined && v > max)) {
      const allowed = max === undefined ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
      throw new GossipError('ERR_GOSSIP_CONFIG', `gossip config ${field} = ${JSON.stringify(v)} is invalid: must be ${allowed}`);
    }
  }
  if (typeof c.lifeguard !== 'boolean') {
    throw new GossipError('ERR_GOSSIP_CONFIG', `gossip config lifeguard = ${JSON.stringify(c.lifeguard)} is invalid: must be true or false`);
  }
  if (c.probeTimeoutMs > c.probeIntervalMs) {
    throw new GossipError('ERR_GOSSIP_CONFIG',
      `gossip config probeTimeoutMs (${c.probeTimeoutMs}) must not exceed probeIntervalMs (${c.probeIntervalMs}): the indirect probes need the rest of the interval`);
  }
}
