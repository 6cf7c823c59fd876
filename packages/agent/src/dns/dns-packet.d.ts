// Types for the part of dns-packet 5.x that Trellis uses (the package ships none, and
// @types/dns-packet is not installed). Shapes follow dns-packet's index.js.
declare module 'dns-packet' {
  export interface Question {
    name: string;
    type: string;
    class?: string;
  }

  export interface SrvData {
    priority?: number;
    weight?: number;
    port: number;
    target: string;
  }

  export interface SoaData {
    mname: string;
    rname: string;
    serial?: number;
    refresh?: number;
    retry?: number;
    expire?: number;
    minimum?: number;
  }

  /** A resource record; for type OPT the EDNS fields are used instead of class/ttl/data. */
  export interface Answer {
    name: string;
    type: string;
    class?: string;
    ttl?: number;
    flush?: boolean;
    data?: string | SrvData | SoaData | Buffer | Array<string | Buffer> | unknown;
    udpPayloadSize?: number;
    extendedRcode?: number;
    ednsVersion?: number;
    flags?: number;
    options?: unknown[];
  }

  export interface Packet {
    id?: number;
    type?: 'query' | 'response';
    /** The 15 low bits of the header's second word: opcode, AA, TC, RD, RA, Z, AD, CD, RCODE. */
    flags?: number;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }

  export interface DecodedPacket extends Required<Pick<Packet, 'id' | 'type' | 'flags' | 'questions' | 'answers' | 'authorities' | 'additionals'>> {
    opcode: string;
    rcode: string;
    flag_qr: boolean;
    flag_aa: boolean;
    flag_tc: boolean;
    flag_rd: boolean;
    flag_ra: boolean;
    flag_ad: boolean;
    flag_cd: boolean;
  }

  export function encode(packet: Packet, buf?: Buffer, offset?: number): Buffer;
  export function decode(buf: Buffer, offset?: number): DecodedPacket;
  export function encodingLength(packet: Packet): number;
  /** encode() with the 2-byte length prefix TCP uses. */
  export function streamEncode(packet: Packet): Buffer;
  /** decode() of a length-prefixed message; null when the buffer holds less than the prefix says. */
  export function streamDecode(buf: Buffer): DecodedPacket | null;

  export const AUTHORITATIVE_ANSWER: number;
  export const TRUNCATED_RESPONSE: number;
  export const RECURSION_DESIRED: number;
  export const RECURSION_AVAILABLE: number;
  export const AUTHENTIC_DATA: number;
  export const CHECKING_DISABLED: number;
  export const DNSSEC_OK: number;
}
