// The pure SWIM + Lifeguard core: state machine, messages, codec and configuration.
export { SwimCore, pushPullIntervalFor, type SwimCoreOptions, type SwimStats } from './swim.ts';
export { LAN_DEFAULTS, WAN_DEFAULTS, swimConfig, validateSwimConfig, type SwimConfig } from './config.ts';
export { GossipError, type GossipErrorCode } from './errors.ts';
export { decodeMessage, encodeMessage, updateSize, tagsSize, TAGS_MAX_BYTES, CODEC_VERSION } from './codec.ts';
export { Suspicion, suspicionMinTimeoutMs, suspicionTimeoutMs } from './suspicion.ts';
export { Awareness } from './awareness.ts';
export { BroadcastQueue, retransmitLimit } from './broadcastQueue.ts';
export { LamportClock, UserEventBuffer } from './userEvents.ts';
export type * from './types.ts';
