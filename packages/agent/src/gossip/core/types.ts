// Plain data of the SWIM core: members, the messages members exchange, and what the core hands
// back to its driver. Everything here is a plain object so it can be logged, compared in tests,
// carried by the simulator without encoding, and encoded by codec.ts for the wire.

/** memberlist's node states plus `left` (a dead message sent by the member about itself). */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Who a member is and how to reach it. Immutable: a change of tags or address makes a new object. */
export interface MemberIdentity {
  readonly name: string;
  /** IP address other members use (Consul's advertise address). */
  readonly addr: string;
  readonly port: number;
  /** The transport's identity of the member: the libp2p PeerId in real agents, anything stable in the simulator. */
  readonly peerId: string;
  readonly tags: Readonly<Record<string, string>>;
}

/** Enough to reach a member: what a probe carries so the receiver can answer a sender it does not know yet. */
export type Endpoint = Pick<MemberIdentity, 'name' | 'addr' | 'port' | 'peerId'>;

/** A member as this core sees it. */
export interface MemberView extends MemberIdentity {
  readonly incarnation: number;
  readonly state: MemberState;
  /** `now` (driver clock, ms) of the last state change. */
  readonly stateChangeMs: number;
  /**
   * Serf's StatusLeaving for a live member: a force-leave was heard for it at its current
   * incarnation. It ends when the member refutes (alive at a newer incarnation) or fails (then it
   * is `left`, not `dead`).
   */
  readonly leaveIntent?: boolean;
}

// ---- broadcasts (what gossip and push-pull carry) ----

/** "This member is alive at this incarnation, with these tags" (memberlist alive). */
export interface AliveUpdate {
  type: 'alive';
  node: MemberIdentity;
  incarnation: number;
}

/** "`from` could not reach `node` at `incarnation`" (memberlist suspect). */
export interface SuspectUpdate {
  type: 'suspect';
  node: string;
  incarnation: number;
  from: string;
}

/** "`node` is dead at `incarnation`"; when `from` is `node` itself it left gracefully (memberlist dead). */
export interface DeadUpdate {
  type: 'dead';
  node: string;
  incarnation: number;
  from: string;
}

/** An operator removed a failed member (`consul force-leave`, serf RemoveFailedNode); `prune` forgets it at once. */
export interface ForceLeaveUpdate {
  type: 'forceLeave';
  node: string;
  incarnation: number;
  prune: boolean;
  from: string;
}

/** A user event (serf messageUserEvent), ordered and de-duplicated by its Lamport time. */
export interface UserEventUpdate {
  type: 'userEvent';
  ltime: number;
  name: string;
  payload: Uint8Array;
}

export type Update = AliveUpdate | SuspectUpdate | DeadUpdate | ForceLeaveUpdate | UserEventUpdate;

// ---- messages between members ----

/** Direct probe. `target` is the member the sender means: a ping that reaches someone else is dropped. */
export interface PingMessage { type: 'ping'; seq: number; from: string; replyTo: Endpoint; target: string; updates: Update[] }
export interface AckMessage { type: 'ack'; seq: number; from: string; updates: Update[] }
/** Lifeguard §4.1: a relay that did not hear from the target tells the prober, so a silent relay path means *we* are slow. */
export interface NackMessage { type: 'nack'; seq: number; from: string; updates: Update[] }
/** SWIM §4.2 indirect probe: `from` asks the receiver to ping `target` and relay the ack (and a nack if `nack`). */
export interface PingReqMessage { type: 'pingReq'; seq: number; from: string; replyTo: Endpoint; target: Endpoint; nack: boolean; updates: Update[] }
/** Broadcasts for the gossip interval (memberlist's compound message). */
export interface GossipMessage { type: 'gossip'; from: string; updates: Update[] }

/** One row of a full state exchange (memberlist pushNodeState). */
export interface MemberSnapshot {
  node: MemberIdentity;
  incarnation: number;
  state: MemberState;
}

/** Full state exchange (memberlist push-pull + serf's event state). `join` marks the exchange a join makes. */
export interface PushPullMessage {
  type: 'pushPull';
  from: string;
  join: boolean;
  reply: boolean;
  members: MemberSnapshot[];
  /** The sender's user event clock: a joiner ignores events before it (Consul joins with ignoreOld). */
  eventLTime: number;
  /** Recent user events, so a member that missed one converges. */
  events: UserEventUpdate[];
}

export type Message = PingMessage | AckMessage | NackMessage | PingReqMessage | GossipMessage | PushPullMessage;

// ---- what the core asks its driver to do ----

/** Send `msg` to `to`. Best effort: the core tolerates loss, delay and reordering. */
export interface SendOutput { kind: 'send'; to: Endpoint; msg: Message }
/**
 * Disseminate a broadcast that originated here over the driver's own broadcast medium (gossipsub
 * in real agents), in addition to the core's piggybacked gossip. Only emitted when
 * `publishLocalUpdates` is set; updates learned from others are never handed out again, so an
 * external flood is not re-flooded by every receiver.
 */
export interface PublishOutput { kind: 'publish'; update: Update }
export interface EventOutput { kind: 'event'; event: GossipEvent }
/** Something an operator should see (the driver logs it): a refused member, an address conflict, a misdirected ping. */
export interface WarnOutput { kind: 'warn'; code: WarnCode; message: string }
export type WarnCode = 'member-refused' | 'address-conflict' | 'misdirected-ping' | 'push-pull-refused' | 'relay-overflow';
export type Output = SendOutput | PublishOutput | EventOutput | WarnOutput;

export type MemberEventType = 'member-join' | 'member-update' | 'member-failed' | 'member-leave' | 'member-reap';

export interface MemberEvent { type: MemberEventType; member: MemberView }
export interface UserEventDelivery { type: 'user'; ltime: number; name: string; payload: Uint8Array }
export type GossipEvent = MemberEvent | UserEventDelivery;
