// Errors of the gossip layer. Each has a stable `code` so the agent's HTTP edge and CLI can branch
// on it, and a message that says what was wrong in words an operator can act on.

export type GossipErrorCode =
  | 'ERR_GOSSIP_CONFIG'        // a SwimConfig field is out of range (names the field and value)
  | 'ERR_MALFORMED_MESSAGE'    // bytes from the network do not decode to a valid message
  | 'ERR_MESSAGE_TOO_LARGE'    // an encoded message is larger than the frame limit
  | 'ERR_TAGS_TOO_LARGE'       // encoded member tags exceed the 512-byte limit (memberlist MetaMaxSize)
  | 'ERR_INVALID_TAGS'         // a tag key is empty or a value is not a string
  | 'ERR_EVENT_TOO_LARGE'      // user event name + payload exceed the limit (serf UserEventSizeLimit)
  | 'ERR_INVALID_EVENT'        // user event name empty or not valid UTF-8 text
  | 'ERR_MEMBER_REFUSED'       // a member was refused (e.g. another datacenter in a LAN pool)
  | 'ERR_UNKNOWN_MEMBER'       // force-leave of a member this agent has never heard of
  | 'ERR_NOT_RUNNING'          // an operation on a pool that has left or stopped
  | 'ERR_JOIN_FAILED'          // join contacted no member
  | 'ERR_KEY_MISMATCH'         // a dial stalled in the handshake: most likely a different -encrypt key
  | 'ERR_INVALID_KEY';         // the -encrypt key is not base64 of 32 bytes

export class GossipError extends Error {
  readonly code: GossipErrorCode;
  constructor(code: GossipErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GossipError';
    this.code = code;
  }
}
