// The CA configuration as `PUT /v1/connect/ca/configuration` takes it and the state stores it
// (Consul's structs.CAConfiguration and CommonCAProviderConfig): decoding with defaults, Consul's
// validation texts, and whether a change needs a new root.
import { formatGoDuration, parseGoDuration } from '../config/duration.ts';
import { DEFAULT_INTERMEDIATE_TTL_MS, DEFAULT_LEAF_TTL_MS, DEFAULT_ROOT_TTL_MS, HOUR_MS, leafTtlError } from '../connect/policy.ts';

export class CAConfigError extends Error {
  readonly code = 'ERR_BAD_REQUEST';
  constructor(message: string) {
    super(message);
    this.name = 'CAConfigError';
  }
}

/** The provider settings Trellis reads (everything else in Config is kept as given). */
export interface CAProviderConfig {
  leafCertTtlMs: number;
  intermediateCertTtlMs: number;
  rootCertTtlMs: number;
  privateKeyType: 'rsa';
  privateKeyBits: number;
  csrMaxPerSecond: number;
  csrMaxConcurrent: number;
  /** Bring your own root: both or neither. */
  privateKey: string;
  rootCert: string;
}

/** The defaults a new cluster starts with, as stored (Consul's shape; RSA, see ARCHITECTURE). */
export function defaultStoredConfig(): Record<string, unknown> {
  return {
    LeafCertTTL: '72h',
    IntermediateCertTTL: '8760h',
    RootCertTTL: '87600h',
    PrivateKeyType: 'rsa',
    PrivateKeyBits: 2048,
    CSRMaxPerSecond: 50,
    CSRMaxConcurrent: 0,
  };
}

/** Config keys in either case convention (Consul's lib.PatchSliceOfMaps / mapstructure are case-insensitive). */
function pick(config: Record<string, unknown>, name: string): unknown {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(config)) if (k.replace(/_/g, '').toLowerCase() === want) return v;
  return undefined;
}

function duration(config: Record<string, unknown>, name: string, def: number): number {
  const v = pick(config, name);
  if (v === undefined || v === null || v === '') return def;
  if (typeof v === 'number' && Number.isFinite(v)) return v / 1e6; // nanoseconds, as Go decodes a number
  if (typeof v !== 'string') throw new CAConfigError(`error decoding config: ${name} must be a duration string`);
  try {
    return parseGoDuration(v);
  } catch (err) {
    throw new CAConfigError(`error decoding config: ${name}: ${(err as Error).message}`);
  }
}

function integer(config: Record<string, unknown>, name: string, def: number): number {
  const v = pick(config, name);
  if (v === undefined || v === null) return def;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new CAConfigError(`error decoding config: ${name} must be an integer`);
  return n;
}

function text(config: Record<string, unknown>, name: string): string {
  const v = pick(config, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new CAConfigError(`error decoding config: ${name} must be a string`);
  return v;
}

/** Decodes and validates a provider Config map with Consul's texts. */
export function parseProviderConfig(config: Record<string, unknown>): CAProviderConfig {
  const leaf = duration(config, 'LeafCertTTL', DEFAULT_LEAF_TTL_MS);
  const inter = duration(config, 'IntermediateCertTTL', DEFAULT_INTERMEDIATE_TTL_MS);
  const root = duration(config, 'RootCertTTL', DEFAULT_ROOT_TTL_MS);
  const keyType = text(config, 'PrivateKeyType') || 'rsa';
  const bits = integer(config, 'PrivateKeyBits', keyType === 'rsa' ? 2048 : 256);
  if (root < inter) {
    throw new CAConfigError(`root cert TTL is set and is not greater than intermediate cert ttl. root cert ttl: ${formatGoDuration(root)}, intermediate cert ttl: ${formatGoDuration(inter)}`);
  }
  const leafErr = leafTtlError(leaf);
  if (leafErr) throw new CAConfigError(leafErr);
  if (inter < 3 * HOUR_MS) throw new CAConfigError('Intermediate Cert TTL must be greater or equal than 3h');
  if (inter < 3 * leaf) throw new CAConfigError(`Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=${formatGoDuration(3 * leaf)}).`);
  if (keyType === 'ec') {
    // Consul's default; node-forge (the decided certificate library) builds RSA certificates only.
    throw new CAConfigError('private key type "ec" is not supported by the built-in CA of Trellis (node-forge builds RSA certificates): use "rsa"');
  }
  if (keyType !== 'rsa') throw new CAConfigError("private key type must be either 'ec' or 'rsa'");
  if (bits !== 2048 && bits !== 4096) throw new CAConfigError('RSA key length must be 2048 or 4096 bits');
  const csrMaxPerSecond = Number(pick(config, 'CSRMaxPerSecond') ?? 50);
  if (!Number.isFinite(csrMaxPerSecond) || csrMaxPerSecond < 0) throw new CAConfigError('error decoding config: CSRMaxPerSecond must be a number ≥ 0');
  const csrMaxConcurrent = integer(config, 'CSRMaxConcurrent', 0);
  if (csrMaxConcurrent < 0) throw new CAConfigError('error decoding config: CSRMaxConcurrent must be ≥ 0');
  const privateKey = text(config, 'PrivateKey');
  const rootCert = text(config, 'RootCert');
  if ((privateKey === '') !== (rootCert === '')) throw new CAConfigError('must provide both PrivateKey and RootCert, or neither');
  return {
    leafCertTtlMs: leaf, intermediateCertTtlMs: inter, rootCertTtlMs: root, privateKeyType: 'rsa', privateKeyBits: bits,
    csrMaxPerSecond, csrMaxConcurrent, privateKey, rootCert,
  };
}

/** The Config map as stored: as given, without the secret PrivateKey/RootCert (those live in the provider state). */
export function storedConfig(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaultStoredConfig() };
  const canonical = ['LeafCertTTL', 'IntermediateCertTTL', 'RootCertTTL', 'PrivateKeyType', 'PrivateKeyBits', 'CSRMaxPerSecond', 'CSRMaxConcurrent'];
  const lowerKnown = new Set([...canonical, 'PrivateKey', 'RootCert'].map((k) => k.toLowerCase()));
  for (const name of canonical) {
    const v = pick(config, name);
    if (v !== undefined) out[name] = v;
  }
  for (const [k, v] of Object.entries(config)) {
    if (!lowerKnown.has(k.replace(/_/g, '').toLowerCase())) out[k] = v;
  }
  return out;
}
