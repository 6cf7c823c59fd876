// Keys of a gossip agent: its libp2p identity (kept across restarts so members recognise it) and
// the pool's pre-shared key (Consul's -encrypt) that turns the pool into a libp2p private network.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';

/** libp2p's private key type, named through @libp2p/crypto (a declared dependency of the agent). */
export type PrivateKey = Parameters<typeof privateKeyToProtobuf>[0];
import { GossipError } from '../core/errors.ts';

/**
 * The agent's peer key from `<dataDir>/gossip/peer-key`, created on first start (Ed25519, mode
 * 0600, written atomically). Without a data dir (-dev) the key lives in memory only.
 */
export async function loadOrCreatePeerKey(dataDir: string | undefined): Promise<PrivateKey> {
  if (!dataDir) return generateKeyPair('Ed25519');
  const dir = join(dataDir, 'gossip');
  const file = join(dir, 'peer-key');
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (bytes) {
    try {
      return privateKeyFromProtobuf(bytes);
    } catch (err) {
      throw new GossipError('ERR_INVALID_KEY', `gossip peer key ${file} is corrupt (${(err as Error).message}); remove it to make a new identity`, { cause: err });
    }
  }
  const key = await generateKeyPair('Ed25519');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
  await rename(tmp, file);
  return key;
}

/**
 * Consul's gossip key (`-encrypt`, base64 of 16, 24 or 32 random bytes; `consul keygen` makes 32)
 * as the libp2p pre-shared key file format that @libp2p/pnet expects:
 *   /key/swarm/psk/1.0.0/\n/base16/\n<64 hex characters>
 * A 32-byte key is used as it is; a 16- or 24-byte key (AES-128/192 in Consul) is stretched to 32
 * bytes with SHA-256, so every agent given the same key derives the same network key.
 */
export function pskFromEncryptKey(encryptKey: string): Uint8Array {
  const trimmed = encryptKey.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) {
    throw new GossipError('ERR_INVALID_KEY', 'gossip encryption key (-encrypt) is not valid base64');
  }
  const raw = Buffer.from(trimmed, 'base64');
  if (raw.byteLength !== 16 && raw.byteLength !== 24 && raw.byteLength !== 32) {
    throw new GossipError('ERR_INVALID_KEY',
      `gossip encryption key (-encrypt) must be 16, 24 or 32 bytes once base64-decoded (as "trellis keygen" makes), got ${raw.byteLength}`);
  }
  const key = raw.byteLength === 32 ? raw : createHash('sha256').update('trellis gossip psk\n').update(raw).digest();
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${key.toString('hex')}`);
}
