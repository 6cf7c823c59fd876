// Length-prefixed frames over a libp2p stream: an unsigned varint byte count, then the bytes.
// SWIM messages are datagrams in memberlist; over a reused stream they need framing. A frame
// larger than the limit, or a length prefix that never ends, means the peer is broken or hostile:
// the decoder throws and the driver aborts the stream (it never buffers without bound).
import { GossipError } from '../core/errors.ts';

export function frame(payload: Uint8Array): Uint8Array {
  let n = payload.byteLength;
  const head: number[] = [];
  while (n >= 0x80) {
    head.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  head.push(n);
  const out = new Uint8Array(head.length + payload.byteLength);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** Incremental decoder: push() chunks as they arrive, get back every complete frame. */
export class FrameDecoder {
  readonly #maxBytes: number;
  #buf: Uint8Array = new Uint8Array(0);

  constructor(maxFrameBytes: number) {
    this.#maxBytes = maxFrameBytes;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.#buf.byteLength;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#buf.byteLength === 0) {
      this.#buf = chunk;
    } else {
      const joined = new Uint8Array(this.#buf.byteLength + chunk.byteLength);
      joined.set(this.#buf, 0);
      joined.set(chunk, this.#buf.byteLength);
      this.#buf = joined;
    }
    const frames: Uint8Array[] = [];
    let pos = 0;
    for (;;) {
      let len = 0;
      let shift = 0;
      let i = pos;
      let complete = false;
      while (i < this.#buf.byteLength) {
        const b = this.#buf[i++]!;
        len += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (shift > 28) throw new GossipError('ERR_MESSAGE_TOO_LARGE', 'frame length prefix is longer than 4 bytes');
      }
      if (!complete) break;
      if (len > this.#maxBytes) {
        throw new GossipError('ERR_MESSAGE_TOO_LARGE', `frame of ${len} bytes exceeds the limit of ${this.#maxBytes} bytes`);
      }
      if (i + len > this.#buf.byteLength) break;
      frames.push(this.#buf.slice(i, i + len));
      pos = i + len;
    }
    this.#buf = pos === 0 ? this.#buf : this.#buf.slice(pos);
    return frames;
  }
}
