// The DNS answering logic as a pure function: a decoded request and the catalog in, a response
// packet out. No sockets, clocks or randomness of its own (they come in through ResolveContext), so
// every rule below is testable without a network. It is async only because the catalog may be
// (a client agent asks a server): every lookup is awaited before the answer is built. The shapes
// of the answers are Consul's (agent/dns.go): see the comments at each rule.

import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { AUTHORITATIVE_ANSWER, CHECKING_DISABLED, RECURSION_DESIRED } from 'dns-packet';
import { classifyIp, ipToHexLabel, type IpFamily } from './addresses.ts';
import type { DnsLookup, NodeInfo, ServiceInstance } from './lookup.ts';
import { isEncodableName, parseQueryName } from './names.ts';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const OPCODE_QUERY = 0;
/** EDNS BADVERS (16) = extended RCODE 1 in the OPT record, 0 in the header. */
const EXTENDED_RCODE_BADVERS = 1;

export interface SoaTimers {
  readonly refreshSeconds: number;
  readonly retrySeconds: number;
  readonly expireSeconds: number;
  /** Also the SOA record's own TTL, which negative answers are cached for (RFC 2308). */
  readonly minTtlSeconds: number;
}

/** Consul's dns_config.soa defaults. */
export const DEFAULT_SOA: SoaTimers = { refreshSeconds: 3600, retrySeconds: 600, expireSeconds: 86400, minTtlSeconds: 0 };

export interface ResolverConfig {
  /** Lower-case labels of the domain, e.g. ['consul']. */
  readonly domain: readonly string[];
  readonly datacenter: string;
  /** TTL of node and service answers; Consul's default is 0 (do not cache). */
  readonly ttlSeconds: number;
  readonly soa: SoaTimers;
}

export interface ResolveContext {
  readonly config: ResolverConfig;
  readonly lookup: DnsLookup;
  /** Uniform in [0, 1): shuffles answers. */
  readonly random: () => number;
  /** Milliseconds since the epoch: the SOA serial. */
  readonly now: () => number;
}

export interface ResolveOutcome {
  readonly response: Packet;
  /** Why the answer is what it is, for the debug log (e.g. "no passing instances"). */
  readonly note?: string;
  /** The lookup failed: the response is SERVFAIL and this is the cause, for the error log. */
  readonly error?: unknown;
}

export async function resolve(req: DecodedPacket, ctx: ResolveContext): Promise<ResolveOutcome> {
  const opcode = (req.flags >> 11) & 0xf;
  const opts = req.additionals.filter((a) => a.type === 'OPT');
  const edns = opts[0];
  const reply = newReply(req, opcode, edns);

  if (opcode !== OPCODE_QUERY) return finish(reply, RCODE.NOTIMP, 'opcode not supported');
  if (req.questions.length !== 1) return finish(reply, RCODE.FORMERR, `${req.questions.length} questions`);
  if (opts.length > 1) return finish(reply, RCODE.FORMERR, 'more than one OPT record'); // RFC 6891 §6.1.1
  if (edns !== undefined && (edns.ednsVersion ?? 0) > 0) {
    reply.opt!.extendedRcode = EXTENDED_RCODE_BADVERS;
    return finish(reply, RCODE.NOERROR, `EDNS version ${edns.ednsVersion} not supported`);
  }

  const q = req.questions[0]!;
  // dns-packet decodes label bytes as UTF-8; anything beyond printable ASCII would be echoed back
  // re-encoded (U+FFFD is 3 bytes), possibly past the 63-byte label limit. No name we serve has
  // such bytes, so the question is refused as malformed rather than echoed wrong.
  if (!/^[\x21-\x7e]*$/.test(q.name)) return finish(reply, RCODE.FORMERR, 'question name is not printable ASCII');
  // A label holding a '.' byte decodes to a name with an empty label, which cannot be re-encoded as
  // the same question: refuse it rather than echo a different (or unencodable) name.
  if (q.name !== '.' && !isEncodableName(q.name)) return finish(reply, RCODE.FORMERR, 'question name has an empty or overlong label');
  reply.packet.questions = [q];
  const parsed = parseQueryName(q.name, q.type, ctx.config.domain);
  // Names outside the domain would go to recursors; there are none yet, so refuse them (and claim
  // no authority over them).
  if (parsed.kind === 'outside') {
    reply.packet.flags! &= ~AUTHORITATIVE_ANSWER;
    return finish(reply, RCODE.REFUSED, 'outside the domain');
  }

  try {
    switch (q.type) {
      case 'SOA':
        // Consul answers SOA (with the servers as NS) for any name in its domain.
        reply.answers.push(soaRecord(ctx));
        addNameservers(ctx, await ctx.lookup.serviceInstances('consul', undefined), reply.authorities, reply.additionals);
        return finish(reply, RCODE.NOERROR);
      case 'NS':
        addNameservers(ctx, await ctx.lookup.serviceInstances('consul', undefined), reply.answers, reply.additionals);
        return finish(reply, RCODE.NOERROR);
      case 'AXFR':
      case 'IXFR':
        return finish(reply, RCODE.NOTIMP, 'zone transfers are not supported');
    }

    switch (parsed.kind) {
      case 'apex':
        return negative(reply, ctx, RCODE.NOERROR, 'the domain itself has no records of this type');
      case 'invalid':
        return negative(reply, ctx, RCODE.NXDOMAIN, `invalid name: ${parsed.why}`);
      case 'unsupported':
        return negative(reply, ctx, RCODE.NXDOMAIN, `${parsed.what} lookups are not supported yet`);
      case 'addr': {
        const rec = addressRecord(q.name, parsed.ip, parsed.family, q.type, ctx.config.ttlSeconds);
        if (rec) reply.answers.push(rec);
        return reply.answers.length ? finish(reply, RCODE.NOERROR) : negative(reply, ctx, RCODE.NOERROR, 'no record of this type');
      }
      case 'node':
      case 'service': {
        const dc = parsed.datacenter ?? ctx.config.datacenter;
        let lookup: Pick<DnsLookup, 'serviceInstances' | 'node'> = ctx.lookup;
        if (dc.toLowerCase() !== ctx.config.datacenter.toLowerCase()) {
          // Consul forwards these to the other datacenter's servers (over the WAN pool's routes).
          const known = (await ctx.lookup.datacenters()).some((d) => d.toLowerCase() === dc);
          if (!known) return negative(reply, ctx, RCODE.NXDOMAIN, `unknown datacenter ${dc}`);
          if (!ctx.lookup.remote) return negative(reply, ctx, RCODE.NXDOMAIN, `datacenter ${dc} is remote: not forwarded`);
          lookup = ctx.lookup.remote(dc);
        }
        return parsed.kind === 'node'
          ? answerNode(reply, ctx, q, await lookup.node(parsed.node))
          : answerService(reply, ctx, q, await lookup.serviceInstances(parsed.service, parsed.tag));
      }
    }
  } catch (error) {
    // The catalog failed us (threw, or rejected): SERVFAIL tells resolvers to try again rather than
    // cache a denial.
    reply.answers.length = 0;
    reply.authorities.length = 0;
    reply.additionals.length = 0;
    return { ...finish(reply, RCODE.SERVFAIL, 'lookup failed'), error };
  }
}

/** A header-only response (FORMERR by default) for a request that decoded no further than its header. */
export function formatErrorFor(header: Buffer, rcode: number = RCODE.FORMERR): Buffer | undefined {
  if (header.length < 12) return undefined;
  const flags = header.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response: never answer one (no reflection loops)
  const out = Buffer.alloc(12);
  header.copy(out, 0, 0, 2); // id
  const opcode = flags & 0x7800;
  out.writeUInt16BE(0x8000 | opcode | (flags & RECURSION_DESIRED) | rcode, 2);
  return out;
}

// ---- services and nodes -------------------------------------------------------------------

function answerService(reply: Reply, ctx: ResolveContext, q: Question, found: ServiceInstance[]): ResolveOutcome {
  // No passing instance: the name does not exist (Consul's errNameNotFound).
  if (found.length === 0) return negative(reply, ctx, RCODE.NXDOMAIN, 'no passing instances');
  const instances = shuffle([...found], ctx.random);
  if (q.type === 'SRV') addServiceSrv(reply, ctx, q, instances);
  else addServiceAddresses(reply, ctx, q, instances);
  // Instances exist but none has a record of the asked type (AAAA of IPv4 services): NODATA.
  return reply.answers.length ? finish(reply, RCODE.NOERROR) : negative(reply, ctx, RCODE.NOERROR, 'no record of this type');
}

// Consul's serviceSRVRecords + nodeServiceRecords, for SRV questions: one SRV per distinct
// (node, address, port), priority 1, weight 1, with the target's address in the additional section.
// The target is the node's name when the instance uses the node's address, and the address itself
// encoded as `<hex>.addr.<dc>.<domain>` when the service has an IP of its own (several services on
// one node may each have their own address, and a node name would hide that).
function addServiceSrv(reply: Reply, ctx: ResolveContext, q: Question, instances: ServiceInstance[]): void {
  const { ttlSeconds } = ctx.config;
  const domain = ctx.config.domain.join('.');
  const seen = new Set<string>();
  for (const inst of instances) {
    const key = `${inst.node}\0${inst.serviceAddress}\0${inst.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const dc = inst.datacenter || ctx.config.datacenter;
    const serviceIp = classifyIp(inst.serviceAddress);
    const nodeIp = classifyIp(inst.nodeAddress);
    let target: string | undefined;
    let ip: { family: IpFamily; ip: string } | undefined;
    if (serviceIp) {
      target = `${ipToHexLabel(serviceIp.ip)}.addr.${dc}.${domain}`;
      ip = serviceIp;
    } else if (inst.serviceAddress !== '' && !sameName(inst.serviceAddress, q.name)) {
      target = inst.serviceAddress.replace(/\.$/, ''); // an external host name: the client resolves it
    } else if (nodeIp) {
      target = `${inst.node}.node.${dc}.${domain}`;
      ip = nodeIp;
      // A node name DNS cannot carry still has an address; name the address instead.
      if (!isEncodableName(target)) target = `${ipToHexLabel(nodeIp.ip)}.addr.${dc}.${domain}`;
    } else if (inst.nodeAddress !== '') {
      target = inst.nodeAddress.replace(/\.$/, '');
    }
    if (target === undefined || !isEncodableName(target) || !(inst.port >= 0 && inst.port <= 65535)) continue;
    reply.answers.push({ name: q.name, type: 'SRV', ttl: ttlSeconds, data: { priority: 1, weight: 1, port: inst.port, target } });
    if (ip) reply.additionals.push(addressRecord(target, ip.ip, ip.family, 'SRV', ttlSeconds)!);
  }
}

// Consul's serviceNodeRecords: an A/AAAA per distinct address (the service's, else the node's).
// An instance known only by host name gets a CNAME, used only when no instance has an address.
function addServiceAddresses(reply: Reply, ctx: ResolveContext, q: Question, instances: ServiceInstance[]): void {
  const seen = new Set<string>();
  let cname: Answer | undefined;
  for (const inst of instances) {
    let addr = inst.serviceAddress || inst.nodeAddress;
    // A service whose address is the very name asked about points back at its node (Consul's rule).
    if (inst.serviceAddress !== '' && sameName(inst.serviceAddress, q.name)) addr = inst.nodeAddress;
    if (addr === '') continue;
    const ip = classifyIp(addr);
    if (ip) {
      const rec = addressRecord(q.name, ip.ip, ip.family, q.type, ctx.config.ttlSeconds);
      if (rec && !seen.has(ip.ip)) {
        seen.add(ip.ip);
        reply.answers.push(rec);
      }
    } else if (cname === undefined && isEncodableName(addr)) {
      cname = { name: q.name, type: 'CNAME', ttl: ctx.config.ttlSeconds, data: addr.replace(/\.$/, '') };
    }
  }
  if (reply.answers.length === 0 && cname) reply.answers.push(cname);
}

function answerNode(reply: Reply, ctx: ResolveContext, q: Question, node: NodeInfo | undefined): ResolveOutcome {
  if (node === undefined) return negative(reply, ctx, RCODE.NXDOMAIN, 'no such node');
  const ip = classifyIp(node.address);
  if (ip) {
    const rec = addressRecord(q.name, ip.ip, ip.family, q.type, ctx.config.ttlSeconds);
    if (rec) reply.answers.push(rec);
  } else if (node.address !== '' && isEncodableName(node.address) && (q.type === 'A' || q.type === 'AAAA' || q.type === 'ANY')) {
    reply.answers.push({ name: q.name, type: 'CNAME', ttl: ctx.config.ttlSeconds, data: node.address.replace(/\.$/, '') });
  }
  return reply.answers.length ? finish(reply, RCODE.NOERROR) : negative(reply, ctx, RCODE.NOERROR, 'no record of this type');
}

// Consul's nameservers(): up to three servers (instances of the `consul` service), shuffled.
function addNameservers(ctx: ResolveContext, consul: readonly ServiceInstance[], into: Answer[], glue: Answer[]): void {
  const domain = ctx.config.domain.join('.');
  const servers = shuffle([...consul], ctx.random);
  const named = new Set<string>();
  for (const s of servers) {
    if (!/^[A-Za-z0-9-]+$/.test(s.node)) continue; // Consul's InvalidNameRe: skip, do not mangle
    const fqdn = `${s.node}.node.${s.datacenter || ctx.config.datacenter}.${domain}`.toLowerCase();
    if (named.has(fqdn) || !isEncodableName(fqdn)) continue;
    named.add(fqdn);
    into.push({ name: domain, type: 'NS', ttl: ctx.config.ttlSeconds, data: fqdn });
    const ip = classifyIp(s.nodeAddress);
    if (ip) glue.push(addressRecord(fqdn, ip.ip, ip.family, 'ANY', ctx.config.ttlSeconds)!);
    if (named.size >= 3) break;
  }
}

// ---- records ------------------------------------------------------------------------------

/** A or AAAA for `ip` if the question's type wants that family (SRV and ANY want either). */
function addressRecord(name: string, ip: string, family: IpFamily, qtype: string, ttl: number): Answer | undefined {
  const wantsAny = qtype === 'ANY' || qtype === 'SRV';
  if (family === 4 && (qtype === 'A' || wantsAny)) return { name, type: 'A', ttl, data: ip };
  if (family === 6 && (qtype === 'AAAA' || wantsAny)) return { name, type: 'AAAA', ttl, data: ip };
  return undefined;
}

function soaRecord(ctx: ResolveContext): Answer {
  const domain = ctx.config.domain.join('.');
  const { soa } = ctx.config;
  return {
    name: domain,
    type: 'SOA',
    ttl: soa.minTtlSeconds,
    data: {
      mname: `ns.${domain}`,
      rname: `hostmaster.${domain}`,
      serial: Math.floor(ctx.now() / 1000) >>> 0,
      refresh: soa.refreshSeconds,
      retry: soa.retrySeconds,
      expire: soa.expireSeconds,
      minimum: soa.minTtlSeconds,
    },
  };
}

// ---- reply assembly -----------------------------------------------------------------------

interface Reply {
  readonly packet: Packet;
  readonly answers: Answer[];
  readonly authorities: Answer[];
  readonly additionals: Answer[];
  /** The response's OPT record when the request had EDNS; kept out of `additionals` until the end. */
  readonly opt: Answer | undefined;
}

function newReply(req: DecodedPacket, opcode: number, edns: Answer | undefined): Reply {
  const flags = (opcode << 11) | AUTHORITATIVE_ANSWER | (req.flags & (RECURSION_DESIRED | CHECKING_DISABLED));
  const answers: Answer[] = [];
  const authorities: Answer[] = [];
  const additionals: Answer[] = [];
  // Consul echoes the client's advertised size; never below the 512 every client takes.
  const opt = edns === undefined ? undefined : { name: '.', type: 'OPT', udpPayloadSize: Math.max(512, edns.udpPayloadSize ?? 512), extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] };
  return { packet: { id: req.id, type: 'response', flags, questions: [], answers, authorities, additionals }, answers, authorities, additionals, opt };
}

function finish(reply: Reply, rcode: number, note?: string): ResolveOutcome {
  reply.packet.flags = (reply.packet.flags! & ~0xf) | rcode;
  if (reply.opt) reply.additionals.push(reply.opt);
  return note === undefined ? { response: reply.packet } : { response: reply.packet, note };
}

/** NXDOMAIN, or NODATA (NOERROR, no answers), with the SOA in the authority section (RFC 2308). */
function negative(reply: Reply, ctx: ResolveContext, rcode: number, note: string): ResolveOutcome {
  reply.answers.length = 0;
  reply.additionals.length = 0;
  reply.authorities.push(soaRecord(ctx));
  return finish(reply, rcode, note);
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(random() * (i + 1)));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}
