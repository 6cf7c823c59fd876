// What a route handler sees of a request, and how it shapes the response. Handlers return a value
// (JSON-encoded), a RawBody, or undefined (empty body) — the shape of Consul's
// `func(resp, req) (interface{}, error)` endpoints — and throw for errors (see errors.ts).

import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../acl/identity.ts';
import { parseUint64 } from '../state/uint64.ts';
import { badRequest } from './errors.ts';

/** A response body sent as-is with its own content type (KV ?raw, Prometheus text). */
export class RawBody {
  readonly contentType: string;
  readonly data: Buffer | string;
  constructor(contentType: string, data: Buffer | string) {
    this.contentType = contentType;
    this.data = data;
  }
}

/** Consistency and blocking options of a read, parsed once by parseQueryOptions(). */
export interface QueryOptions {
  stale: boolean;
  consistent: boolean;
  /** ?index=N; 0 when absent (never blocks). */
  minIndex: number;
  /** ?wait, clamped to [0, maxWaitMs]; the default wait when absent. */
  waitMs: number;
  /** Whether ?index was given at all. */
  blocking: boolean;
  /** ?filter expression, '' when absent. */
  filter: string;
  /** ?max_stale in ms (0 when absent): a stale read whose server has not heard from the leader for
   *  longer than this is served in default mode instead. */
  maxStaleMs: number;
}

export class RequestContext {
  readonly method: string;
  /** The request path as sent (still percent-encoded). */
  readonly rawPath: string;
  /** For prefix endpoints: the percent-decoded remainder after the prefix (a KV key keeps its slashes). */
  readonly rest: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The raw request body; undefined when the request had none. */
  readonly body: Buffer | undefined;
  /** Aborted when the client goes away or the server closes: blocking waits end at once. */
  readonly signal: AbortSignal;

  /** Who the request is, with ACLs on (set by the HTTP server before the handler runs); undefined when they are off. */
  identity: Identity | undefined = undefined;

  /** Response status; handlers change it for e.g. a 404 with headers, or a 409 with a JSON body. */
  status = 200;
  readonly responseHeaders: Record<string, string> = {};

  constructor(init: {
    method: string; rawPath: string; rest: string; query: URLSearchParams;
    headers: IncomingHttpHeaders; body: Buffer | undefined; signal: AbortSignal;
  }) {
    this.method = init.method;
    this.rawPath = init.rawPath;
    this.rest = init.rest;
    this.query = init.query;
    this.headers = init.headers;
    this.body = init.body;
    this.signal = init.signal;
  }

  /** True when the query parameter is present, even without a value (`?recurse`), as Go's url.Values. */
  has(name: string): boolean {
    return this.query.has(name);
  }

  /** First value of a query parameter, or undefined. */
  get(name: string): string | undefined {
    return this.query.get(name) ?? undefined;
  }

  getAll(name: string): string[] {
    return this.query.getAll(name);
  }

  header(name: string, value: string): void {
    this.responseHeaders[name] = value;
  }

  /** Parses an unsigned integer query parameter, as Go's strconv.ParseUint(s, 10, 64). */
  uintParam(name: string, message?: string): number | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) {
      throw badRequest(message ?? `Invalid value for ${name}: ${JSON.stringify(v)}: must be an unsigned integer`);
    }
    return Number(v);
  }

  /**
   * Parses an unsigned 64-bit query parameter exactly, as Go's strconv.ParseUint(s, 10, 64): digits
   * only (no sign, exponent or fraction), at most 18446744073709551615. A bigint, because values
   * above 2^53 are real (KV Flags of the lock recipes) and a number would round them.
   */
  uint64Param(name: string, message?: string): bigint | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    const parsed = parseUint64(v);
    if (parsed === null) {
      throw badRequest(message ?? `Invalid value for ${name}: ${JSON.stringify(v)}: must be an unsigned 64-bit integer (0 to 18446744073709551615)`);
    }
    return parsed;
  }

  /** Go's strconv.ParseBool for a query parameter; `?x` alone counts as `def`. */
  boolParam(name: string, def = true): boolean | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (v === '') return def;
    switch (v) {
      case '1': case 't': case 'T': case 'true': case 'TRUE': case 'True': return true;
      case '0': case 'f': case 'F': case 'false': case 'FALSE': case 'False': return false;
    }
    throw badRequest(`Invalid value for ${name}: ${JSON.stringify(v)}`);
  }
}
