// The compiled discovery chain: Consul's agent/discovery_chain_endpoint.go and the server side of
// DiscoveryChain.Get.
//   GET  /v1/discovery-chain/:service  ?compile-dc=<dc>           {"Chain": <CompiledDiscoveryChain>}
//   POST /v1/discovery-chain/:service  body: {OverrideProtocol, OverrideConnectTimeout, OverrideMeshGateway:{Mode}}
// A blocking read over the config entries table: X-Consul-Index is the table's index, so any config
// entry change wakes a waiting caller (Consul wakes on the entries the chain read; a wider wake is
// harmless: the caller compares the chain). The stored entries are converted to the compiler's plain
// input here, so connect/ stays pure. Client agents forward it to a server (server.ts).
import { formatGoDurationNs, parseGoDurationNs } from '../../config/duration.ts';
import {
  ChainCompileError, compileDiscoveryChain, type ChainEntries, type ChainResolver, type ChainRouter, type ChainServiceDefaults,
  type ChainSplitter, type CompiledDiscoveryChain,
} from '../../connect/discoveryChain.ts';
import { trustDomainFor } from '../../connect/spiffe.ts';
import type { ConfigEntry, WatchRecorder } from '../../state/types.ts';
import type { RequestContext } from '../context.ts';
import { jsonSyntaxError } from '../decode.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { invalidUtf8Error } from '../utf8.ts';
import { readQuery } from './common.ts';

const MESH_GATEWAY_MODES: ReadonlySet<string> = new Set(['', 'none', 'local', 'remote']);

/** A stored duration (a Go string after validation) as nanoseconds; 0 when absent. */
function durationNs(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v === '') return 0;
  return Number(parseGoDurationNs(v));
}

const formatDuration = (ns: number): string => formatGoDurationNs(BigInt(Math.trunc(ns)));

/** The stored config entries as the compiler's input (names as written: Consul's lookups are exact). */
export function chainEntriesOf(all: readonly ConfigEntry[]): ChainEntries {
  const serviceDefaults: Record<string, ChainServiceDefaults> = {};
  const routers: Record<string, ChainRouter> = {};
  const splitters: Record<string, ChainSplitter> = {};
  const resolvers: Record<string, ChainResolver> = {};
  const out: ChainEntries = { serviceDefaults, routers, splitters, resolvers };
  for (const e of all) {
    switch (e.Kind) {
      case 'proxy-defaults':
        if (e.Name === 'global') out.proxyDefaults = e as never;
        break;
      case 'service-defaults':
        serviceDefaults[e.Name] = e as never;
        break;
      case 'service-router':
        routers[e.Name] = e as unknown as ChainRouter;
        break;
      case 'service-splitter':
        splitters[e.Name] = e as unknown as ChainSplitter;
        break;
      case 'service-resolver': {
        const { ConnectTimeout, RequestTimeout, ...rest } = e as Record<string, unknown>;
        resolvers[e.Name] = { ...(rest as unknown as ChainResolver), ConnectTimeoutNs: durationNs(ConnectTimeout), RequestTimeoutNs: durationNs(RequestTimeout) };
        break;
      }
    }
  }
  return out;
}

interface Overrides {
  overrideProtocol?: string;
  overrideConnectTimeoutNs?: number;
  overrideMeshGateway?: { Mode: string };
}

const decodingFailed = (detail: string): HttpError => badRequest(`Request decoding failed: ${detail}`);

/** Consul's decodeDiscoveryChainReadRequest: PascalCase or snake_case keys, weakly typed values. */
function parseOverrides(body: Buffer | undefined): Overrides {
  if (body !== undefined) {
    const bad = invalidUtf8Error(body);
    if (bad !== null) throw decodingFailed(bad);
  }
  const text = body?.toString('utf8') ?? '';
  if (text.trim() === '') return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw decodingFailed(jsonSyntaxError(text, err as Error));
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw decodingFailed('the body must be a JSON object');
  const fold = (k: string): string => k.toLowerCase().replace(/_/g, '');
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) fields[fold(k)] = v;
  const out: Overrides = {};
  const p = fields.overrideprotocol;
  if (p !== undefined && p !== null) {
    if (typeof p !== 'string' && typeof p !== 'number' && typeof p !== 'boolean') throw decodingFailed(`OverrideProtocol: invalid type ${Array.isArray(p) ? 'array' : typeof p}`);
    if (String(p) !== '') out.overrideProtocol = String(p);
  }
  const t = fields.overrideconnecttimeout;
  if (typeof t === 'string' && t !== '') {
    try {
      out.overrideConnectTimeoutNs = Number(parseGoDurationNs(t));
    } catch (err) {
      throw decodingFailed((err as Error).message);
    }
  } else if (typeof t === 'number') {
    out.overrideConnectTimeoutNs = Math.trunc(t);
  } else if (t !== undefined && t !== null && t !== '') {
    throw decodingFailed(`OverrideConnectTimeout: expected a duration, got ${JSON.stringify(t)}`);
  }
  const mg = fields.overridemeshgateway;
  if (mg !== undefined && mg !== null) {
    if (typeof mg !== 'object' || Array.isArray(mg)) throw decodingFailed('OverrideMeshGateway: expected an object');
    const modeKey = Object.keys(mg).find((k) => k.toLowerCase() === 'mode');
    const mode = modeKey === undefined ? '' : String((mg as Record<string, unknown>)[modeKey] ?? '');
    if (mode !== '') {
      if (!MESH_GATEWAY_MODES.has(mode)) throw badRequest('Invalid OverrideMeshGateway.Mode parameter');
      out.overrideMeshGateway = { Mode: mode };
    }
  }
  return out;
}

export function discoveryChainRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;

  async function read(ctx: RequestContext, overrides: Overrides): Promise<unknown> {
    const name = ctx.rest;
    if (name === '') throw badRequest('Missing chain name');
    const dc = ctx.get('compile-dc') || backend.config.datacenter;
    const store = backend.store;
    const res = await readQuery<{ chain?: CompiledDiscoveryChain; error?: string }>(ctx, deps, (ws: WatchRecorder) => {
      const entries = store.configEntriesAll(ws);
      const ca = store.caConfig(ws).value;
      if (!ca) return { index: entries.index, value: { error: 'no cluster ca config setup' } };
      try {
        const chain = compileDiscoveryChain({
          serviceName: name, datacenter: dc, trustDomain: trustDomainFor(ca.ClusterID), entries: chainEntriesOf(entries.value), formatDuration, ...overrides,
        });
        return { index: entries.index, value: { chain } };
      } catch (err) {
        if (err instanceof ChainCompileError) return { index: entries.index, value: { error: err.message } };
        throw err;
      }
    });
    if (res.value.error !== undefined) throw new HttpError(500, res.value.error, 'ERR_CHAIN');
    return { Chain: res.value.chain };
  }

  return [
    {
      path: '/v1/discovery-chain/',
      prefix: true,
      methods: {
        GET: (ctx) => read(ctx, {}),
        POST: (ctx) => read(ctx, parseOverrides(ctx.body)),
      },
    },
  ];
}
