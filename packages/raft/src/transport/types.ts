import type { Message, NodeId } from '../core/types.ts';

/**
 * Moves Raft messages between nodes. Contract:
 * - `send` never throws and never blocks the caller: delivery is best effort, like a lossy network.
 *   Raft tolerates loss, duplication and reordering; a transport may drop when a peer is down.
 *   Messages to one peer should arrive in send order when the connection holds (pipelining relies
 *   on it for speed, not for safety).
 * - A 'snap' message carries snapshot.data; a transport may stream it in chunks, and must deliver it
 *   to the receiver's handler whole, or not at all.
 * - Incoming messages go to the handler given to `start`. The handler never throws.
 * - `setPeers` tells the transport every member's address; unknown destinations are dropped.
 * - `reportUnreachable`: the transport calls `onUnreachable(peer)` when a send failed, so the
 *   leader can fall back to probing that peer (optional).
 */
export interface Transport {
  start(handler: (msg: Message) => void, onUnreachable?: (peer: NodeId) => void): Promise<void>;
  send(messages: Message[]): void;
  setPeers(addresses: Record<NodeId, string>): void;
  /** The address peers use to reach this node. */
  localAddress(): string;
  stop(): Promise<void>;
}
