// Test helpers: a fake catalog and a minimal DNS client over UDP and TCP (dns-packet).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { decode, encode, RECURSION_DESIRED, type DecodedPacket, type Packet } from 'dns-packet';
import type { DnsLookup, NodeInfo, ServiceInstance } from '../../src/dns/index.ts';

export interface FakeInstance extends ServiceInstance {
  readonly service: string;
  readonly tags: readonly string[];
}

/** A catalog in memory; matches names and tags case-insensitively, like Consul's indexes. */
export class FakeLookup implements DnsLookup {
  instances: FakeInstance[] = [];
  nodes: NodeInfo[] = [];
  dcs: string[] = ['dc1'];
  calls: Array<[string, string | undefined]> = [];

  serviceInstances(service: string, tag: string | undefined): ServiceInstance[] {
    this.calls.push([service, tag]);
    return this.instances.filter(
      (i) => i.service.toLowerCase() === service.toLowerCase() && (tag === undefined || i.tags.some((t) => t.toLowerCase() === tag.toLowerCase())),
    );
  }
  node(name: string): NodeInfo | undefined {
    return this.nodes.find((n) => n.node.toLowerCase() === name.toLowerCase());
  }
  datacenters(): string[] {
    return this.dcs;
  }

  addNode(node: string, address: string): this {
    this.nodes.push({ node, address, datacenter: 'dc1' });
    return this;
  }
  addService(service: string, node: string, port: number, opts: { tags?: string[]; serviceAddress?: string; nodeAddress?: string } = {}): this {
    const nodeAddress = opts.nodeAddress ?? this.node(node)?.address ?? '';
    this.instances.push({ service, node, nodeAddress, serviceAddress: opts.serviceAddress ?? '', port, datacenter: 'dc1', tags: opts.tags ?? [] });
    return this;
  }
}

let nextId = 1;

export function question(name: string, type: string, extra: Partial<Packet> = {}): Packet {
  nextId = (nextId % 65535) + 1;
  return { id: nextId, type: 'query', flags: RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], ...extra };
}

/** An EDNS OPT record advertising `size` bytes. */
export function ednsOpt(size: number, version = 0): Packet['additionals'] {
  return [{ name: '.', type: 'OPT', udpPayloadSize: size, ednsVersion: version, flags: 0, options: [] }];
}

export function udpExchange(port: number, payload: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(payload, port, '127.0.0.1');
  });
}

export async function queryUdp(port: number, packet: Packet): Promise<DecodedPacket & { bytes: number }> {
  const raw = await udpExchange(port, encode(packet));
  return Object.assign(decode(raw), { bytes: raw.length });
}

/** Sends raw bytes over TCP (already framed by the caller) and collects `count` framed answers. */
export function tcpExchange(port: number, framed: Buffer[], count: number, timeoutMs = 2000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const replies: Buffer[] = [];
    let pending = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`got ${replies.length}/${count} TCP answers within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      for (const f of framed) sock.write(f);
    });
    sock.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const len = pending.readUInt16BE(0);
        replies.push(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
      }
      if (replies.length >= count) {
        clearTimeout(timer);
        sock.destroy();
        resolve(replies);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (replies.length < count) reject(new Error(`connection closed after ${replies.length}/${count} answers`));
    });
  });
}

export function frame(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export async function queryTcp(port: number, packet: Packet): Promise<DecodedPacket & { bytes: number }> {
  const [raw] = await tcpExchange(port, [frame(encode(packet))], 1);
  return Object.assign(decode(raw!), { bytes: raw!.length });
}

export function rcodeOf(p: { flags: number }): number {
  return p.flags & 0xf;
}

/** A deterministic uniform source for shuffles. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}
