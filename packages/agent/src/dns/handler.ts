// One DNS message in, one out (or none): decode, resolve, fit to the transport, encode. Pure apart
// from logging, so it is fuzzed directly; server.ts only moves bytes between sockets and this.
// Async because the catalog lookups may be (resolver.ts); the promise never rejects.

import { decode, encode, type DecodedPacket } from 'dns-packet';
import { formatErrorFor, RCODE, resolve, type ResolveContext } from './resolver.ts';
import { fitResponse, MAX_TCP_MESSAGE_BYTES, udpPayloadLimit } from './truncate.ts';

/** The subset of a pino logger the DNS server writes to. */
export interface DnsLogger {
  debug(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface HandlerOptions {
  readonly ctx: ResolveContext;
  /** Answers in a 512-byte UDP response (Consul's udp_answer_limit). */
  readonly udpAnswerLimit: number;
  /** Set TC when a response was cut (Consul's enable_truncate). */
  readonly setTruncated: boolean;
  readonly log: DnsLogger;
  readonly nodeName: string;
}

export type Transport = 'udp' | 'tcp';

/**
 * Resolves to the wire reply to `msg`, or undefined when nothing should be sent: the message was
 * too short to carry a header, or was itself a response. Never rejects for any input bytes.
 */
export type MessageHandler = (msg: Buffer, transport: Transport, client: string) => Promise<Buffer | undefined>;

export function createMessageHandler(opts: HandlerOptions): MessageHandler {
  const { ctx, log, nodeName } = opts;
  return async (msg, transport, client) => {
    let req: DecodedPacket;
    try {
      req = decode(msg);
    } catch (err) {
      log.debug({ transport, client, bytes: msg.length, error: errorText(err), node: nodeName }, 'DNS request did not decode');
      return formatErrorFor(msg);
    }
    if (req.type === 'response') return undefined; // never answer a response (no reflection loops)
    const outcome = await resolve(req, ctx);
    const q = req.questions[0];
    if (outcome.error !== undefined) {
      log.error({ transport, client, name: q?.name, type: q?.type, error: errorText(outcome.error), node: nodeName }, 'DNS lookup failed');
    }
    const edns = req.additionals.find((a) => a.type === 'OPT');
    const fit = fitResponse(outcome.response, {
      maxBytes: transport === 'udp' ? udpPayloadLimit(edns ? (edns.udpPayloadSize ?? 512) : undefined) : MAX_TCP_MESSAGE_BYTES,
      answerLimit: transport === 'udp' ? opts.udpAnswerLimit : undefined,
      setTruncated: opts.setTruncated,
    });
    log.debug(
      {
        transport, client, name: q?.name, type: q?.type, rcode: (fit.packet.flags ?? 0) & 0xf,
        answers: fit.packet.answers?.length ?? 0, ...(fit.truncated ? { truncatedFrom: fit.answersBefore } : {}),
        ...(outcome.note ? { note: outcome.note } : {}), node: nodeName,
      },
      'DNS request served',
    );
    try {
      return encode(fit.packet);
    } catch (err) {
      // A record the encoder refused (data the catalog should not hold): say so rather than go quiet.
      log.error({ transport, client, name: q?.name, error: errorText(err), node: nodeName }, 'DNS response did not encode');
      try {
        return encode({ id: req.id, type: 'response', flags: (req.flags & 0x7900) | RCODE.SERVFAIL, questions: req.questions });
      } catch {
        // Even the bare question does not encode (a name that decoded but cannot be re-encoded):
        // the header alone still tells the client to stop waiting.
        return formatErrorFor(msg, RCODE.SERVFAIL);
      }
    }
  };
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
