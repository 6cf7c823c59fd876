// A forwarded write with the ACL token it was made with. Client agents send their anti-entropy
// writes with the agent's (or the service's) token and servers forward writes with their own secret,
// so the leader can check every write that reaches it over the server port (Consul's RPCs carry
// the token in every request). The frame wraps the command's bytes:
//   [0x54 'T'][u16 BE token length][token UTF-8][command bytes]
// A command without the frame is a write with no token (the anonymous token, when ACLs are on).
// The token never reaches the Raft log: the leader unwraps it before proposing.

export const TOKEN_FRAME = 0x54;
const MAX_TOKEN_BYTES = 0xffff;

export function wrapToken(token: string, command: Uint8Array): Uint8Array {
  const t = Buffer.from(token, 'utf8');
  if (t.length > MAX_TOKEN_BYTES) throw new Error('ACL token too long to forward');
  const out = Buffer.allocUnsafe(3 + t.length + command.byteLength);
  out[0] = TOKEN_FRAME;
  out.writeUInt16BE(t.length, 1);
  t.copy(out, 3);
  out.set(command, 3 + t.length);
  return out;
}

/** Splits a forwarded write into its token (undefined without a frame) and the command bytes. */
export function unwrapToken(data: Buffer): { token: string | undefined; command: Buffer } {
  if (data.length < 3 || data[0] !== TOKEN_FRAME) return { token: undefined, command: data };
  const n = data.readUInt16BE(1);
  if (3 + n > data.length) return { token: undefined, command: data };
  return { token: data.subarray(3, 3 + n).toString('utf8'), command: data.subarray(3 + n) };
}
