// The built-in CA's HTTP API (Consul's agent/connect_ca_endpoint.go and the agent's leaf and roots
// endpoints in agent/agent_endpoint.go):
//   GET /v1/connect/ca/roots                 {ActiveRootID, TrustDomain, Roots} (blocking; ?pem: a PEM bundle)
//   GET /v1/agent/connect/ca/roots           the same (forwarded by client agents)
//   GET /v1/connect/ca/configuration         {ClusterID, Provider, Config, ForceWithoutCrossSigning, ...}
//   PUT /v1/connect/ca/configuration         a new configuration; may rotate the root (server/connectCA.ts)
//   PUT /v1/internal/connect/ca/sign         {"CSR": "<PEM>"} → IssuedCert: how an agent has its CSR
//                                            signed (Consul's ConnectCA.Sign RPC); forwarded like any
//                                            server endpoint, so it needs no RPC method of its own
//   GET /v1/agent/connect/ca/leaf/:service   the service's leaf with its private key (agent-local,
//                                            blocking on ?index, cached and renewed: ca/leaves.ts)
// Secrets: the root keys are never in an answer; a bring-your-own PrivateKey is not stored in Config.
import type { CARootsResponse, IssuedCert } from '../../ca/types.ts';
import { LeafCerts, type CAServerApi } from '../../ca/leaves.ts';
import { trustDomainFor } from '../../connect/spiffe.ts';
import type { CAConfiguration, QueryResult, WatchRecorder } from '../../state/types.ts';
import type { HttpStore } from '../backend.ts';
import { parseQueryOptions, waitWithTimeout } from '../blocking.ts';
import { RawBody, type RequestContext } from '../context.ts';
import { jsonSyntaxError } from '../decode.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { invalidUtf8Error } from '../utf8.ts';
import { readQuery, waitLimits } from './common.ts';

/** How long one background blocking read of the roots waits on a server. */
const ROOTS_WATCH_S = 300;

function rootsQuery(store: HttpStore, ws?: WatchRecorder): QueryResult<CARootsResponse> {
  const roots = store.caRoots(ws);
  const config = store.caConfig(ws).value;
  return {
    index: roots.index,
    value: {
      ActiveRootID: roots.value.find((r) => r.Active)?.ID ?? '',
      TrustDomain: config ? trustDomainFor(config.ClusterID) : '',
      Roots: roots.value,
    },
  };
}

/** The configuration as answered: never the secret PrivateKey (kept out of Config on write anyway). */
function publicConfig(c: CAConfiguration): Record<string, unknown> {
  const { PrivateKey: _k, RootCert: _r, ...config } = c.Config;
  return { ClusterID: c.ClusterID, Provider: c.Provider, Config: config, State: null, ForceWithoutCrossSigning: c.ForceWithoutCrossSigning, CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex };
}

function parseJson(body: Buffer | undefined): unknown {
  if (body !== undefined) {
    const bad = invalidUtf8Error(body);
    if (bad !== null) throw badRequest(`Request decode failed: ${bad}`);
  }
  const text = body?.toString('utf8') ?? '';
  if (text.trim() === '') throw badRequest('Request decode failed: EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`Request decode failed: ${jsonSyntaxError(text, err as Error)}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The servers' CA as this agent reaches it: forwarded HTTP on a client, its own state on a server. */
function serverApi(deps: RouteDeps): CAServerApi {
  const { backend } = deps;
  const forward = backend.forward;
  // With ACLs on, the agent's own calls carry its agent token (the user's service:write was checked
  // on the leaf endpoint; signing needs service:write on every service there: service_prefix "").
  const headers = (): Record<string, string> => {
    const token = backend.acl ? (backend.acl.agentToken || backend.acl.defaultToken) : '';
    return token ? { 'x-consul-token': token } : {};
  };
  if (forward) {
    return {
      async roots(minIndex, signal) {
        const url = `/v1/connect/ca/roots?index=${minIndex}&wait=${ROOTS_WATCH_S}s`;
        const res = await forward({ method: 'GET', url, headers: headers(), body: Buffer.alloc(0) }, signal);
        const text = res.body.toString('utf8');
        if (res.status !== 200) throw new Error(`reading the CA roots from a server: ${res.status} ${text.trim()}`);
        return { index: Number(res.headers['x-consul-index'] ?? 0), value: JSON.parse(text) as CARootsResponse };
      },
      async sign(csr, signal) {
        const res = await forward({
          method: 'PUT', url: '/v1/internal/connect/ca/sign', headers: { ...headers(), 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ CSR: csr })),
        }, signal);
        const text = res.body.toString('utf8');
        if (res.status === 429) throw Object.assign(new Error(text.trim()), { code: 'ERR_RATE_LIMITED' });
        if (res.status !== 200) throw new HttpError(res.status, text.trim());
        return JSON.parse(text) as IssuedCert;
      },
    };
  }
  return {
    async roots(minIndex, signal) {
      const deadline = performance.now() + ROOTS_WATCH_S * 1000;
      for (;;) {
        const ws = backend.store.watchSet();
        const r = rootsQuery(backend.store, ws);
        const left = deadline - performance.now();
        if (r.index > minIndex || left <= 0 || signal.aborted) return r;
        await waitWithTimeout(ws, left, signal);
      }
    },
    async sign(csr) {
      if (!backend.connectCA) throw new HttpError(500, 'internal error: CA provider is nil');
      return backend.connectCA.sign(csr);
    },
  };
}

export function connectCARoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  let leaves: LeafCerts | undefined;
  const leafCerts = (): LeafCerts => {
    if (!leaves) {
      leaves = new LeafCerts({
        api: serverApi(deps), datacenter: backend.config.datacenter, random: deps.random,
        onError: (err, what) => deps.logger?.warn({ err: (err as Error)?.message ?? String(err) }, `connect: ${what} failed`),
      });
    }
    return leaves;
  };
  deps.onClose?.(() => leaves?.close());

  async function roots(ctx: RequestContext): Promise<unknown> {
    const res = await readQuery(ctx, deps, (ws) => rootsQuery(backend.store, ws));
    // ?pem: every root and its intermediates as one PEM bundle (Consul 1.11+).
    if (ctx.has('pem')) {
      const pems = res.value.Roots.flatMap((r) => [r.RootCert, ...(r.IntermediateCerts ?? [])]).map((p) => (p.endsWith('\n') ? p : `${p}\n`));
      return new RawBody('application/pem-certificate-chain', pems.join(''));
    }
    return res.value;
  }

  async function getConfig(ctx: RequestContext): Promise<unknown> {
    const res = await readQuery(ctx, deps, (ws) => backend.store.caConfig(ws));
    if (!res.value) throw new HttpError(500, 'CA has not finished initializing');
    return publicConfig(res.value);
  }

  async function putConfig(ctx: RequestContext): Promise<unknown> {
    const body = parseJson(ctx.body);
    if (!isObject(body)) throw badRequest('Request decode failed: the body must be a JSON object');
    if (body.Config !== undefined && !isObject(body.Config)) throw badRequest('Request decode failed: Config must be an object');
    if (!backend.connectCA) throw new HttpError(500, 'internal error: CA provider is nil');
    await backend.connectCA.setConfig(body);
    return undefined;
  }

  function sign(ctx: RequestContext): unknown {
    const body = parseJson(ctx.body);
    if (!isObject(body) || typeof body.CSR !== 'string' || body.CSR === '') throw badRequest('Request decode failed: CSR must be a PEM string');
    if (!backend.connectCA) throw new HttpError(500, 'internal error: CA provider is nil');
    return backend.connectCA.sign(body.CSR);
  }

  async function leaf(ctx: RequestContext): Promise<unknown> {
    const service = ctx.rest;
    if (service === '') throw badRequest('Missing service name');
    const opts = parseQueryOptions(ctx, waitLimits(deps));
    const cert = await leafCerts().get(service, opts.blocking ? opts.minIndex : 0, opts.waitMs, ctx.signal);
    ctx.header('X-Consul-Index', String(cert.ModifyIndex));
    return cert;
  }

  return [
    { path: '/v1/connect/ca/roots', methods: { GET: roots } },
    { path: '/v1/agent/connect/ca/roots', methods: { GET: roots } },
    // A new configuration (a rotation) is made in the primary; secondaries follow (server/secondaryCA.ts).
    { path: '/v1/connect/ca/configuration', writesInPrimary: true, methods: { GET: getConfig, PUT: putConfig } },
    { path: '/v1/internal/connect/ca/sign', methods: { PUT: sign } },
    { path: '/v1/agent/connect/ca/leaf/', prefix: true, agentLocal: true, methods: { GET: leaf } },
  ];
}
