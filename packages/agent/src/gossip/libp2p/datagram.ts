// SWIM datagrams over UDP, on the same port number as the pool's TCP listener (serf LAN 8301 is
// both in Consul too). memberlist sends probes and gossip as UDP packets and keeps TCP for push-pull;
// doing the same here means a probe or a gossip message costs one sendto() instead of a libp2p
// connection (TCP + noise handshake, ~13 ms of CPU on the two sides together) and then a yamux +
// noise frame on it (~0.3 ms a frame in the cold, rarely-optimised code path of an idle agent).
//
// With -encrypt every packet is sealed as memberlist seals it (security.go, version 1): one version
// byte, a 12-byte random nonce, then AES-GCM ciphertext and its 16-byte tag, the key being the
// decoded gossip key itself (16/24/32 bytes: AES-128/192/256). A packet that does not open with
// our key is dropped and counted; without -encrypt packets are plaintext, as Consul's are.
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { GossipError } from '../core/errors.ts';

const SEAL_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The largest UDP payload over IPv4; SWIM messages stay near maxGossipBytes (1,400) anyway. */
export const MAX_DATAGRAM_BYTES = 65_507;

/** The -encrypt key as the AES-GCM key of sealed datagrams (the same checks as pskFromEncryptKey). */
export function datagramKey(encryptKey: string): Buffer {
  const trimmed = encryptKey.trim();
  const raw = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0 || ![16, 24, 32].includes(raw.byteLength)) {
    throw new GossipError('ERR_INVALID_KEY', 'gossip encryption key (-encrypt) must be base64 of 16, 24 or 32 bytes');
  }
  return raw;
}

function cipherName(key: Buffer): CipherGCMTypes {
  return `aes-${key.byteLength * 8}-gcm` as CipherGCMTypes;
}

export function seal(key: Buffer, plaintext: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv(cipherName(key), key, nonce);
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([Buffer.of(SEAL_VERSION), nonce, body, c.getAuthTag()]);
}

/** Opens a sealed packet; throws ERR_MALFORMED_MESSAGE when it is short, of another version, or not sealed with `key`. */
export function open(key: Buffer, packet: Uint8Array): Uint8Array {
  if (packet.byteLength < 1 + NONCE_BYTES + TAG_BYTES) {
    throw new GossipError('ERR_MALFORMED_MESSAGE', `encrypted packet of ${packet.byteLength} bytes is too short`);
  }
  if (packet[0] !== SEAL_VERSION) throw new GossipError('ERR_MALFORMED_MESSAGE', `encrypted packet has unknown version ${packet[0]}`);
  const nonce = packet.subarray(1, 1 + NONCE_BYTES);
  const tag = packet.subarray(packet.byteLength - TAG_BYTES);
  const d = createDecipheriv(cipherName(key), key, nonce);
  d.setAuthTag(tag);
  try {
    const body = d.update(packet.subarray(1 + NONCE_BYTES, packet.byteLength - TAG_BYTES));
    d.final();
    return body;
  } catch {
    throw new GossipError('ERR_MALFORMED_MESSAGE', 'packet does not decrypt with the gossip key (gossip key mismatch?)');
  }
}

/**
 * Sends one empty datagram to addr:port from a connected socket of its own and calls `onRefused`
 * if the host answers that nothing listens there (ICMP port unreachable, which Linux reports to a
 * connected UDP socket as ECONNREFUSED; the pool's unconnected socket never hears of it). That is
 * what a killed agent's host says while its address is still up. Silence means nothing: the port
 * is open (agents ignore empty datagrams), or the host or the network is silent. The socket is
 * closed after `waitMs` or on the first error.
 */
export function checkPortRefuses(bindAddr: string, addr: string, port: number, waitMs: number, onRefused: () => void): void {
  const socket = createSocket(isIPv6(addr) ? 'udp6' : 'udp4');
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    try {
      socket.close();
    } catch {
      // already closed
    }
  };
  const timer = setTimeout(close, waitMs);
  timer.unref();
  socket.on('error', (err: NodeJS.ErrnoException) => {
    const refused = err.code === 'ECONNREFUSED';
    close();
    if (refused) onRefused();
  });
  // From the bind address, as every other gossip packet (partition rules match it).
  const local = bindAddr === '0.0.0.0' || bindAddr === '::' ? undefined : bindAddr;
  socket.bind({ port: 0, ...(local ? { address: local } : {}) }, () => {
    if (closed) return;
    socket.connect(port, addr, (err?: Error) => {
      if (err || closed) return close();
      socket.send(new Uint8Array(0), (sendErr) => {
        if (sendErr) close();
      });
    });
  });
}

export interface DatagramSender {
  address: string;
  port: number;
}

/** "::ffff:10.0.0.1" (an IPv4 peer seen by a dual-stack socket) is 10.0.0.1. */
export function plainAddress(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** A bound UDP socket: packets in to `onPacket`, send() out; errors after binding go to `onError`. */
export class DatagramSocket {
  readonly #socket: Socket;

  private constructor(socket: Socket) {
    this.#socket = socket;
  }

  static bind(addr: string, port: number, onPacket: (bytes: Uint8Array, from: DatagramSender) => void,
    onError: (err: Error) => void): Promise<DatagramSocket> {
    const socket = createSocket({ type: isIPv6(addr) ? 'udp6' : 'udp4', reuseAddr: false });
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => {
        socket.close();
        reject(new GossipError('ERR_NOT_RUNNING', `cannot listen for gossip packets on udp ${addr}:${port}: ${err.message}`, { cause: err }));
      };
      socket.once('error', failed);
      socket.bind({ address: addr, port, exclusive: true }, () => {
        socket.off('error', failed);
        socket.on('error', onError);
        socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => onPacket(msg, { address: plainAddress(rinfo.address), port: rinfo.port }));
        resolve(new DatagramSocket(socket));
      });
    });
  }

  /** Sends one packet; `onFail` hears of a packet the OS refused (it is lost, as UDP may lose any). */
  send(bytes: Uint8Array, addr: string, port: number, onFail: (err: Error) => void): void {
    this.#socket.send(bytes, port, addr, (err) => {
      if (err) onFail(err);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}
