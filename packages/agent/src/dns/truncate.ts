// Making a response fit the transport (Consul's trimUDPResponse / trimTCPResponse).
//
// Over UDP a response may not exceed 512 bytes unless the client advertised more with EDNS
// (RFC 1035 §4.2.1, RFC 6891); over TCP, 65535. When answers must go, the tail goes (answers are
// already shuffled, so which instances survive is random), the additional section keeps only the
// addresses of targets still answered, and the TC bit tells the client to retry over TCP for the
// whole answer (RFC 7766 §5).
//
// Consul also caps non-EDNS UDP answers at `udp_answer_limit` (default 3) records, to spread load
// among clients that take the first address. That cap applies only when the limit is 512 bytes.
//
// Sizes are measured as dns-packet encodes, without name compression: larger than a compressing
// encoder's output, so a response that fits here fits anywhere.

import type { Answer, Packet } from 'dns-packet';
import { encodingLength, TRUNCATED_RESPONSE } from 'dns-packet';

export const MIN_UDP_PAYLOAD_BYTES = 512;
/** 65535 less the IPv6 header and UDP header (Consul's maxUDPDatagramSize, rounded to the same end). */
export const MAX_UDP_PAYLOAD_BYTES = 65535 - 68;
export const MAX_TCP_MESSAGE_BYTES = 65535;

export interface FitOptions {
  readonly maxBytes: number;
  /** Cap on answer records (applied only when maxBytes is the 512-byte default). */
  readonly answerLimit?: number;
  /** Set TC when anything was dropped (Consul's dns_config.enable_truncate). */
  readonly setTruncated: boolean;
}

export interface FitResult {
  readonly packet: Packet;
  /** Answers or additional records were dropped. */
  readonly truncated: boolean;
  readonly answersBefore: number;
}

/** The most a UDP response to this request may carry. */
export function udpPayloadLimit(ednsPayloadSize: number | undefined): number {
  if (ednsPayloadSize === undefined) return MIN_UDP_PAYLOAD_BYTES;
  return Math.min(MAX_UDP_PAYLOAD_BYTES, Math.max(MIN_UDP_PAYLOAD_BYTES, ednsPayloadSize));
}

export function fitResponse(response: Packet, opts: FitOptions): FitResult {
  const all = response.answers ?? [];
  const opt = (response.additionals ?? []).filter((a) => a.type === 'OPT');
  const extras = (response.additionals ?? []).filter((a) => a.type !== 'OPT');
  let answers = all;
  let authorities = response.authorities ?? [];
  let additionals = extras;
  let truncated = false;

  const build = (): Packet => ({ ...response, answers, authorities, additionals: [...additionals, ...opt] });
  const size = (): number => encodingLength(build());
  const keepAnswers = (n: number): void => {
    answers = all.slice(0, n);
    additionals = referencedExtras(answers, extras);
  };

  if (opts.answerLimit !== undefined && opts.maxBytes === MIN_UDP_PAYLOAD_BYTES && answers.length > opts.answerLimit) {
    keepAnswers(Math.max(0, opts.answerLimit));
    truncated = true;
  }

  if (answers.length > 1 && size() > opts.maxBytes) {
    truncated = true;
    authorities = []; // the SOA/NS are the first to go: the answer is what was asked for
    if (size() > opts.maxBytes) {
      // Largest prefix of answers that fits (size grows with the prefix, so binary search works).
      let lo = 1;
      let hi = answers.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        keepAnswers(mid);
        if (size() <= opts.maxBytes) lo = mid;
        else hi = mid - 1;
      }
      keepAnswers(lo);
    }
  }
  // One answer still too big: drop what only helps, then the answer itself rather than send a
  // datagram the client may not accept.
  if (size() > opts.maxBytes && additionals.length > 0) {
    additionals = [];
    truncated = true;
  }
  if (size() > opts.maxBytes) {
    answers = [];
    authorities = [];
    truncated = true;
  }

  const packet = build();
  if (truncated && opts.setTruncated) packet.flags = (packet.flags ?? 0) | TRUNCATED_RESPONSE;
  return { packet, truncated, answersBefore: all.length };
}

/** The additional records that resolve a name the kept answers point at (Consul's syncExtra). */
function referencedExtras(answers: readonly Answer[], extras: readonly Answer[]): Answer[] {
  const wanted = new Set<string>();
  for (const a of answers) {
    if (a.type === 'SRV') wanted.add((a.data as { target: string }).target.toLowerCase());
    else if (a.type === 'NS' || a.type === 'CNAME') wanted.add(String(a.data).toLowerCase());
  }
  return extras.filter((e) => wanted.has(e.name.toLowerCase()));
}
