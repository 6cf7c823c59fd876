// What a question name asks for, in Consul's naming scheme (agent/dns.go `dispatch`):
//
//   [<tag>.]<service>.service[.<dc>].<domain>        services (the tag may itself contain dots)
//   _<service>._<tag|tcp>.service[.<dc>].<domain>     RFC 2782 style; `_tcp` means no tag
//   _<service>._<tag|tcp>[.<dc>].<domain>             RFC 2782 without "service", SRV queries only
//   <node>.node[.<dc>].<domain>                       nodes (the name may contain dots)
//   <hex ip>.addr[.<dc>].<domain>                     the targets of SRV answers for service IPs
//   ...[.<dc>.dc].<domain>                            the explicit datacenter form
//
// Consul finds the kind by scanning labels from the right for a keyword, so a service named like a
// keyword still resolves when it is not the rightmost. Names are compared lower-cased.

import { hexLabelToIp, type IpFamily } from './addresses.ts';

export type ParsedName =
  | { readonly kind: 'outside' }
  | { readonly kind: 'apex' }
  | { readonly kind: 'service'; readonly service: string; readonly tag: string | undefined; readonly datacenter: string | undefined }
  | { readonly kind: 'node'; readonly node: string; readonly datacenter: string | undefined }
  | { readonly kind: 'addr'; readonly family: IpFamily; readonly ip: string }
  /** Kinds Consul serves that Trellis does not yet (connect, ingress, virtual, prepared queries). */
  | { readonly kind: 'unsupported'; readonly what: string }
  | { readonly kind: 'invalid'; readonly why: string };

const KEYWORDS = new Set(['service', 'connect', 'virtual', 'ingress', 'node', 'query', 'addr']);

/** Splits a configured domain ('consul.', 'Cluster.Local') into lower-case labels. */
export function domainLabels(domain: string): string[] {
  return domain.toLowerCase().replace(/\.$/, '').split('.').filter((l) => l !== '');
}

export function parseQueryName(qname: string, qtype: string, domain: readonly string[]): ParsedName {
  const name = qname.toLowerCase().replace(/\.$/, '');
  const labels = name === '' ? [] : name.split('.');
  if (labels.length < domain.length) return { kind: 'outside' };
  for (let i = 0; i < domain.length; i++) {
    if (labels[labels.length - domain.length + i] !== domain[i]) return { kind: 'outside' };
  }
  const inner = labels.slice(0, labels.length - domain.length);
  if (inner.length === 0) return { kind: 'apex' };
  if (inner.some((l) => l === '')) return { kind: 'invalid', why: 'empty label' };

  let kind: string | undefined;
  let parts: string[] = [];
  let suffix: string[] = [];
  for (let i = inner.length - 1; i >= 0; i--) {
    const label = inner[i]!;
    if (KEYWORDS.has(label)) {
      kind = label;
      parts = inner.slice(0, i);
      suffix = inner.slice(i + 1);
      break;
    }
    if (qtype === 'SRV' && label.startsWith('_')) {
      kind = 'service';
      parts = inner.slice(0, i + 1);
      suffix = inner.slice(i + 1);
      break;
    }
  }
  if (kind === undefined) return { kind: 'invalid', why: 'no service, node or addr label' };

  switch (kind) {
    case 'service': {
      const locality = parseLocality(suffix);
      if (locality === null) return { kind: 'invalid', why: 'bad datacenter part' };
      const n = parts.length;
      if (n === 0) return { kind: 'invalid', why: 'no service name' };
      if (n === 2 && parts[0]!.startsWith('_') && parts[1]!.startsWith('_')) {
        const service = parts[0]!.slice(1);
        const tag = parts[1]!.slice(1);
        if (service === '' || tag === '') return { kind: 'invalid', why: 'empty RFC 2782 label' };
        return { kind: 'service', service, tag: tag === 'tcp' ? undefined : tag, datacenter: locality };
      }
      return { kind: 'service', service: parts[n - 1]!, tag: n >= 2 ? parts.slice(0, n - 1).join('.') : undefined, datacenter: locality };
    }
    case 'node': {
      const locality = parseLocality(suffix);
      if (locality === null) return { kind: 'invalid', why: 'bad datacenter part' };
      if (parts.length === 0) return { kind: 'invalid', why: 'no node name' };
      return { kind: 'node', node: parts.join('.'), datacenter: locality };
    }
    case 'addr': {
      // Consul ignores the datacenter of an addr name: the address is the whole answer.
      if (parts.length !== 1) return { kind: 'invalid', why: 'addr takes one label' };
      const ip = hexLabelToIp(parts[0]!);
      return ip ? { kind: 'addr', ...ip } : { kind: 'invalid', why: 'not a hex-encoded address' };
    }
    default:
      return { kind: 'unsupported', what: kind };
  }
}

/** undefined: the local datacenter; null: not a locality Trellis understands. */
function parseLocality(suffix: readonly string[]): string | undefined | null {
  if (suffix.length === 0) return undefined;
  if (suffix.length === 1) return suffix[0]!;
  if (suffix.length === 2 && suffix[1] === 'dc') return suffix[0]!;
  return null;
}

/** Whether dns-packet can write this name: labels of 1–63 bytes, at most 253 bytes in all. */
export function isEncodableName(name: string): boolean {
  const n = name.replace(/\.$/, '');
  if (n === '') return true;
  if (Buffer.byteLength(n) > 253) return false;
  return n.split('.').every((l) => {
    const len = Buffer.byteLength(l);
    return len >= 1 && len <= 63;
  });
}
