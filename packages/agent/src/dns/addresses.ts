// IP address helpers for DNS answers: which record type an address needs, and Consul's
// `<hex>.addr.<dc>.<domain>` names (SRV targets for services with their own IP address).

import { isIP } from 'node:net';

export type IpFamily = 4 | 6;

/** The address as A (4) or AAAA (6) data; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is IPv4, as in Go's To4(). */
export function classifyIp(address: string): { family: IpFamily; ip: string } | undefined {
  const family = isIP(address);
  if (family === 4) return { family: 4, ip: address };
  if (family !== 6) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIP(mapped[1]!) === 4) return { family: 4, ip: mapped[1]! };
  return { family: 6, ip: address };
}

/** The 16 bytes of an IPv6 address (caller has checked it is one). */
function ipv6Bytes(ip: string): Uint8Array {
  let text = ip;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const groups: number[] = [];
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    const head = parse(text.slice(0, dbl));
    const tail = parse(text.slice(dbl + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else {
    groups.push(...parse(text));
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/** Consul's encodeIPAsFqdn label: 8 hex digits for IPv4, 32 for IPv6. */
export function ipToHexLabel(address: string): string | undefined {
  const c = classifyIp(address);
  if (!c) return undefined;
  if (c.family === 4) return c.ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
  return Buffer.from(ipv6Bytes(c.ip)).toString('hex');
}

/** The inverse of ipToHexLabel, or undefined when the label is not one. */
export function hexLabelToIp(label: string): { family: IpFamily; ip: string } | undefined {
  if (!/^[0-9a-f]+$/i.test(label)) return undefined;
  const bytes = Buffer.from(label, 'hex');
  if (label.length === 8) return { family: 4, ip: [...bytes].join('.') };
  if (label.length === 32) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return { family: 6, ip: groups.join(':') };
  }
  return undefined;
}
