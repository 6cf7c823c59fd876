// gRPC channels that connect from a chosen local address, as Consul's servers dial from their bind
// address (a firewall rule, a partition test by address pair or a multi-homed host sees the address
// the agent was told to use, not whichever one the kernel picks for the route: 127.0.0.1 on loopback).
//
// grpc-js has no channel option for the source address. It does hand the address objects its resolver
// produces straight to net.connect(), so a resolver of our own (scheme `trellis-bound:`) that adds
// `localAddress` to them gives every connection of the channel that source. The local address rides
// in a channel option, which also keeps such channels apart in grpc-js's subchannel pool.
import * as grpc from '@grpc/grpc-js';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

const SCHEME = 'trellis-bound';
/** Channel option carrying the source address to the resolver. */
const LOCAL_ADDRESS_OPTION = 'trellis.local_address';

interface ResolverListener {
  (endpoints: unknown, attributes: Record<string, unknown>, serviceConfig: unknown, note: string): void;
}

class BoundResolver {
  readonly #target: string;
  readonly #listener: ResolverListener;
  readonly #local: string | undefined;
  #pending = false;

  constructor(target: { path: string }, listener: ResolverListener, options: Record<string, unknown>) {
    this.#target = target.path;
    this.#listener = listener;
    const local = options[LOCAL_ADDRESS_OPTION];
    this.#local = typeof local === 'string' ? local : undefined;
  }

  updateResolution(): void {
    if (this.#pending) return;
    this.#pending = true;
    void this.#resolve().finally(() => { this.#pending = false; });
  }

  async #resolve(): Promise<void> {
    const hp = grpc.experimental.splitHostPort(this.#target);
    if (hp === null || hp.port === undefined) {
      this.#fail(`cannot parse ${JSON.stringify(this.#target)} as host:port`);
      return;
    }
    let host = hp.host;
    const family = this.#local ? isIP(this.#local) : 0;
    if (isIP(host) === 0) {
      try {
        host = (await lookup(host, family === 0 ? {} : { family })).address;
      } catch (err) {
        this.#fail(`cannot resolve ${hp.host}: ${(err as Error).message}`);
        return;
      }
    }
    // A source of the other IP family cannot reach this host: let the kernel choose instead.
    const localAddress = family !== 0 && isIP(host) === family ? this.#local : undefined;
    const endpoints = [{ addresses: [{ host, port: hp.port, ...(localAddress ? { localAddress } : {}) }] }];
    this.#listener(grpc.experimental.statusOrFromValue(endpoints as never), {}, null, '');
  }

  #fail(details: string): void {
    this.#listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata() }), {}, null, '');
  }

  destroy(): void {}

  static getDefaultAuthority(target: { path: string }): string {
    return target.path;
  }
}

let registered = false;

/** Whether `address` names one interface (so connections can be made from it), not "any" or nothing. */
export function isSpecificAddress(address: string | undefined): address is string {
  if (address === undefined || isIP(address) === 0) return false;
  return address !== '0.0.0.0' && address !== '::' && address !== '0:0:0:0:0:0:0:0';
}

/**
 * The gRPC target and channel options that make a channel to `address` (host:port) connect from
 * `localAddress`. Without a specific local address (absent, 0.0.0.0, ::) the target is `address`
 * itself and the kernel picks the source.
 */
export function boundTarget(address: string, localAddress: string | undefined): { target: string; options: grpc.ChannelOptions } {
  if (!isSpecificAddress(localAddress)) return { target: address, options: {} };
  if (!registered) {
    grpc.experimental.registerResolver(SCHEME, BoundResolver as never);
    registered = true;
  }
  return { target: `${SCHEME}:${address}`, options: { [LOCAL_ADDRESS_OPTION]: localAddress } };
}
