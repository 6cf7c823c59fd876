// Validation helpers shared by the HTTP edge (which rejects bad input with 400 before anything is
// proposed) and the state store (which re-checks what it must, because apply never trusts its input).
// Texts follow Consul's where Consul has one, since clients and operators match on them.
import type { CheckStatus, CheckStatusFilter } from './types.ts';

export interface KvKeyOptions {
  /**
   * Skip the character allow-list (Consul's `disable_http_unprintable_char_filter`). The leading
   * slash and traversal checks still apply.
   */
  allowAnyCharacters?: boolean;
  /** Skip the "suspicious file extension" check (Consul has no switch for it; Trellis offers one). */
  allowFileExtensions?: boolean;
}

// Consul's validateKVKey (agent/kvs_endpoint.go, 2025): keys are hierarchical names made of
// [a-zA-Z0-9,-_./], never start with '/', never contain a '..' path segment or an encoded one, and
// never end in a file extension that caches and browsers treat specially.
const KV_KEY_CHARS = /^[a-zA-Z0-9,\-_./]+$/;
const KV_TRAVERSAL = /(\.\.[\\/])|(\.\.\\)|(^\.\.)|(\.\.$)/;
const KV_ENCODED_TRAVERSAL = /(%2e%2e(%2f|%5c|\/))|(\.\.%2f)|(\.\.%5c)|(%252e%252e%252f)/i;
const KV_SUSPICIOUS_EXTENSION =
  /\.(js|css|html?|xml|json|txt|log|php|asp|jsp|cgi|pl|py|rb|sh|exe|dll|bat|cmd|com|scr|vbs|pdf|docx?|xlsx?|pptx?|zip|rar|tar|gz|7z|bz2|jpe?g|png|gif|svg|ico|bmp|mp[34]|avi|mov|wmv|flv|swf|woff2?|ttf|eot|otf)(\?|$)/i;

/**
 * Checks a KV key the way Consul's HTTP edge does. Returns null when valid, otherwise Consul's
 * sentence (answer it with 400). The empty key is the caller's business: it is valid for recursive
 * reads and deletes, and "Missing key name" elsewhere.
 */
export function validateKvKey(key: string, opts: KvKeyOptions = {}): string | null {
  if (key === '') return 'key cannot be empty';
  if (key.startsWith('/')) return "key must not begin with a '/'";
  if (!opts.allowAnyCharacters && !KV_KEY_CHARS.test(key)) {
    return 'key contains invalid characters. Only alphanumeric characters and ,-_./ are allowed';
  }
  if (KV_TRAVERSAL.test(key)) return 'key contains path traversal sequence';
  if (KV_ENCODED_TRAVERSAL.test(key)) return 'key contains encoded path traversal sequence';
  if (!opts.allowFileExtensions && KV_SUSPICIOUS_EXTENSION.test(key)) {
    return 'key contains suspicious file extension that may be cached by proxies or exploited';
  }
  return null;
}

// Consul's dns.InvalidNameRe: DNS can only serve names of alphanumerics and dashes, ≤ 63 bytes.
const DNS_INVALID = /[^A-Za-z0-9-]+/;
const DNS_MAX_LABEL = 63;

export interface ServiceNameCheck {
  /** null when the name can be registered; else the reason (answer 400). */
  error: string | null;
  /** Consul registers such names but logs that DNS will not find them; say the same. */
  warning: string | null;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/**
 * The one check for names people and tools read back (service, check and session names): no control
 * characters, NUL included (the store uses NUL as an index separator; a name with one could not be
 * addressed in a URL, which refuses them). Returns null when fine, else the sentence for a 400 that
 * names the field. Every path that writes such a name uses it: catalog, agent endpoints, txn, config files.
 */
export function validateName(field: string, name: string): string | null {
  if (CONTROL_CHARACTERS.test(name)) return `Invalid ${field} ${JSON.stringify(name)}: control characters are not allowed`;
  return null;
}

/**
 * Consul accepts any non-empty service name and only warns when DNS cannot serve it. Trellis also
 * refuses control characters (validateName).
 */
export function validateServiceName(name: string): ServiceNameCheck {
  if (name === '') return { error: 'Missing service name', warning: null };
  const invalid = validateName('service name', name);
  if (invalid !== null) return { error: invalid, warning: null };
  if (DNS_INVALID.test(name)) {
    return { error: null, warning: 'Service name will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes.' };
  }
  if (Buffer.byteLength(name) > DNS_MAX_LABEL) {
    return { error: null, warning: 'Service name will not be discoverable via DNS due to it being too long. Valid lengths are between 1 and 63 bytes.' };
  }
  return { error: null, warning: null };
}

const CHECK_STATUSES: ReadonlySet<string> = new Set(['passing', 'warning', 'critical']);

/** Statuses a check may have (Consul's structs.ValidStatus minus "any"). */
export function isCheckStatus(s: unknown): s is CheckStatus {
  return typeof s === 'string' && CHECK_STATUSES.has(s);
}

/** What `health/state/:state` accepts. */
export function isCheckStatusFilter(s: unknown): s is CheckStatusFilter {
  return s === 'any' || isCheckStatus(s);
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Node IDs and session IDs are UUIDs in Consul (hashicorp/go-uuid's ParseUUID format). */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

const DURATION_UNITS_NS: Readonly<Record<string, number>> = {
  ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9,
};

/**
 * Parses a Go duration string (`10s`, `1.5h`, `1m30s`, `-2ms`, `0`) to nanoseconds, as Go's
 * time.ParseDuration does. Returns null when it does not parse.
 */
export function parseGoDuration(s: string): number | null {
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return null;
  let total = 0;
  // µs and μs written as escapes: a non-ASCII character would make the whole bundled source a
  // two-byte string in memory (build.ts).
  const part = /^(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/;
  while (rest !== '') {
    const m = part.exec(rest);
    if (!m) return null;
    const [whole, int, frac, unit] = m;
    if ((int ?? '') === '' && (frac ?? '') === '') return null;
    const value = Number(`${int || '0'}.${frac || '0'}`);
    total += value * DURATION_UNITS_NS[unit!]!;
    rest = rest.slice(whole.length);
  }
  return sign * Math.round(total);
}

export const SESSION_TTL_MIN_NS = 10e9;
export const SESSION_TTL_MAX_NS = 86_400e9;
/** Consul's structs.MaxLockDelay: a session's LockDelay is capped at this when it is applied. */
export const MAX_LOCK_DELAY_NS = 60e9;
/** Consul's default LockDelay for new sessions (applied by the HTTP edge). */
export const DEFAULT_LOCK_DELAY_NS = 15e9;

/** Go's Duration.String for the bounds in messages, e.g. 10s, 24h0m0s. */
function goDurationString(ns: number): string {
  const totalSeconds = ns / 1e9;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const sec = totalSeconds % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

/**
 * Validates a session TTL ('' means none). Returns null when fine, else a message starting with
 * "Invalid Session TTL" (clients match on it; answer 400). `minNs` is the server's session_ttl_min.
 */
export function validateSessionTtl(ttl: string, minNs = SESSION_TTL_MIN_NS): string | null {
  if (ttl === '') return null;
  const ns = parseGoDuration(ttl);
  if (ns === null) return `Invalid Session TTL '${ttl}': time: invalid duration ${JSON.stringify(ttl)}`;
  if (ns !== 0 && (ns < minNs || ns > SESSION_TTL_MAX_NS)) {
    return `Invalid Session TTL '${ns}', must be between [${goDurationString(minNs)}=${goDurationString(SESSION_TTL_MAX_NS)}]`;
  }
  return null;
}
