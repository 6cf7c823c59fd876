// Key spellings Consul accepts for the same field: the config files' snake_case and the HTTP
// API's PascalCase (with its acronyms). Pure string functions, imported by every decoder.

/** "NodeName" → "node_name", "TLSSkipVerify" → "tls_skip_verify", "node_name" unchanged. */
export function toSnakeCase(key: string): string {
  return key
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toLowerCase();
}

const ACRONYMS: Readonly<Record<string, string>> = {
  id: 'ID', http: 'HTTP', https: 'HTTPS', tcp: 'TCP', udp: 'UDP', grpc: 'GRPC', tls: 'TLS', ttl: 'TTL',
  dns: 'DNS', ip: 'IP', sni: 'SNI', url: 'URL', acl: 'ACL', json: 'JSON',
};

/** API names that the word-by-word rule cannot produce. */
const API_KEY_EXCEPTIONS: Readonly<Record<string, string>> = { h2ping: 'H2PING', h2ping_use_tls: 'H2PingUseTLS' };

/** "sidecar_service" → "SidecarService", "local_service_id" → "LocalServiceID"; Pascal keys unchanged. */
export function toApiKey(key: string): string {
  const exception = API_KEY_EXCEPTIONS[key];
  if (exception) return exception;
  if (!key.includes('_')) return ACRONYMS[key] ?? (key.length > 0 ? key[0]!.toUpperCase() + key.slice(1) : key);
  return key.split('_').map((w) => ACRONYMS[w] ?? (w.length > 0 ? w[0]!.toUpperCase() + w.slice(1) : w)).join('');
}
