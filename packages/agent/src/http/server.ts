// The HTTP API server: fastify underneath, Consul's conventions on top, all in one dispatcher:
//   - every endpoint is one fastify route accepting every method; the dispatcher answers a wrong
//     method with 405 + Allow, OPTIONS with 200 + Allow (Consul's wrap());
//   - bodies arrive raw (no content-type sniffing: Consul clients send JSON without a content type
//     and KV values with any), limited per endpoint, decoded by each handler's schema;
//   - path remainders are percent-decoded here (a KV key keeps its slashes; `a%2Fb` is `a/b`);
//   - ?dc naming another datacenter: forwarded there (backend.forwardDc; none reachable → 500
//     "No path to datacenter"); ?pretty; tokens accepted and ignored;
//   - errors become plain-text bodies with Consul's status codes (errors.ts);
//   - JSON answers are Go's encoding (json.ts): bytes as base64, uint64 bigints as exact numbers;
//   - a client that goes away aborts its request's signal, ending any blocking wait at once;
//   - limits.http_max_conns_per_client connections per client IP (a raw 429 beyond, as Consul), and
//     request headers due within limits.https_handshake_timeout (connLimit.ts).

import net from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentBackend } from './backend.ts';
import { headerTimeoutOptions, limitConnsPerClient } from './connLimit.ts';
import { RawBody, RequestContext } from './context.ts';
import { HttpError, mapError, methodNotAllowed } from './errors.ts';
import { EventLog } from './events.ts';
import { forwardAndReply } from './forward.ts';
import { encodeJson } from './json.ts';
import { MetricsSink } from './metrics.ts';
import { HTTP_METHODS, pathLabel, type EndpointSpec, type HttpMethod, type RouteDeps } from './router.ts';
import { aclRequest, authorizeCommand, filterResult, recordServiceToken, FILTERED_HEADER, guardRequest, requestToken, type GuardEnv } from './aclEnforce.ts';
import { aclRoutes } from './routes/acl.ts';
import { agentRoutes } from './routes/agent.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { configRoutes } from './routes/config.ts';
import { discoveryChainRoutes } from './routes/discoveryChain.ts';
import { connectCARoutes } from './routes/connectCA.ts';
import { eventRoutes } from './routes/event.ts';
import { healthRoutes } from './routes/health.ts';
import { authorizeRoutes, intentionRoutes } from './routes/intentions.ts';
import { kvRoutes } from './routes/kv.ts';
import { replicationRoutes } from './routes/replication.ts';
import { sessionRoutes } from './routes/session.ts';
import { statusRoutes } from './routes/status.ts';
import { txnRoutes } from './routes/txn.ts';
import { uiInternalRoutes } from './routes/uiInternal.ts';
import { registerUi } from './ui.ts';
import { aclWriteInPrimary } from './aclPrimaryWrites.ts';

/** Default cap for request bodies of endpoints that do not set their own. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Consul's limits.http_max_conns_per_client default. */
export const DEFAULT_HTTP_MAX_CONNS_PER_CLIENT = 200;
/** Consul's limits.https_handshake_timeout default, which also bounds plain HTTP request headers here. */
export const DEFAULT_HEADER_TIMEOUT_MS = 5000;

export interface HttpServerOptions {
  host: string;
  port: number;
  logger?: Logger;
  /** [0,1) source for blocking-query jitter; Math.random by default. */
  random?: () => number;
  /** Endpoints a role adds (a server's operator and snapshot endpoints), served like every other. */
  routes?: readonly EndpointSpec[];
  /** More addresses to serve on the same port (`client_addr` may name several, space-separated, as in Consul). */
  extraHosts?: readonly string[];
}

/** Everything a route module needs; built once per server. */

export interface HttpServer {
  /** Binds the socket; resolves with the bound port (useful with port 0). */
  listen(): Promise<{ port: number }>;
  /** Ends blocking queries at once, then closes the socket and waits for in-flight requests. */
  close(): Promise<void>;
  /** The fastify instance, for in-process tests (`app.inject`). */
  readonly app: FastifyInstance;
  readonly metrics: MetricsSink;
  readonly events: EventLog;
}

interface RouteConfig {
  spec: EndpointSpec;
  label: string;
}

function allowedMethods(spec: EndpointSpec): HttpMethod[] {
  return HTTP_METHODS.filter((m) => spec.methods[m] !== undefined);
}

/** Consul's unprintable-path filter (hashicorp/go-cleanhttp): control characters are refused. */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f]/;

export function createHttpServer(backend: AgentBackend, opts: HttpServerOptions): HttpServer {
  const metrics = backend.metrics ?? new MetricsSink();
  const events = backend.events ?? new EventLog();
  const logger = opts.logger?.child({ component: 'agent.http' });
  const closers: Array<() => void> = [];
  // ACLs on: every proposal a handler makes is checked as the command it is (aclEnforce.ts), with
  // the identity of the request being served.
  const acl = backend.config.acl?.enabled ? backend.acl : undefined;
  // An object whose prototype is the backend, with its own `apply`: every other property is the
  // backend's (read through the prototype chain, which V8's inline caches handle like an own
  // property). Not a Proxy: a Proxy sends every `backend.x` of every handler through a JS trap, which
  // profiling under bench:kv --acl showed as the largest ACL cost of a KV read.
  const guardedBackend: AgentBackend = acl ? Object.create(backend, {
    apply: {
      enumerable: true,
      value: async (cmd: Parameters<AgentBackend['apply']>[0]) => {
        // Outside a request (none today) a proposal is the anonymous token's: fail closed.
        const identity = aclRequest.getStore() ?? await acl.resolver.resolve('');
        authorizeCommand(identity, backend.store, cmd);
        return backend.apply(cmd);
      },
    },
  }) as AgentBackend : backend;
  const guardEnv: GuardEnv = {
    nodeName: backend.config.nodeName,
    store: backend.store,
    enableKeyListPolicy: backend.config.acl?.enableKeyListPolicy === true,
    localServiceName: (id) => backend.local?.service?.(id)?.service.Service,
    localCheckService: (id) => {
      const c = backend.local?.check?.(id);
      return c ? { serviceName: c.check.ServiceName ?? '' } : undefined;
    },
  };
  const deps: RouteDeps = {
    backend: guardedBackend,
    metrics,
    events,
    logger,
    random: opts.random ?? Math.random,
    newWatchSet: () => backend.store.watchSet(),
    onClose: (fn) => closers.push(fn),
  };

  const limits = backend.config.limits;
  const app = Fastify({
    logger: false,
    // Consul bounds the time an unauthenticated connection may take before its request with
    // limits.https_handshake_timeout (the TLS handshake); on plain HTTP the same bound applies to the
    // request headers, so a client trickling a header line at a time is dropped.
    http: headerTimeoutOptions(limits?.httpsHandshakeTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS),
    bodyLimit: DEFAULT_MAX_BODY_BYTES,
    exposeHeadRoutes: false,
    // Clients in the wild send `Expect`, odd content types and huge keys; fastify's defaults for
    // parameter length would 404 long KV keys.
    routerOptions: { maxParamLength: 64 * 1024, ignoreTrailingSlash: false },
    forceCloseConnections: 'idle',
    frameworkErrors: (err, _req, reply) => {
      // A path that does not percent-decode (fastify's FST_ERR_BAD_URL) is bad input.
      const r = reply as unknown as FastifyReply;
      void r.code(400).type('text/plain; charset=utf-8').send(`Invalid URL: ${err.message}`);
    },
  });

  const connLimiter = limitConnsPerClient(app.server, limits?.httpMaxConnsPerClient ?? DEFAULT_HTTP_MAX_CONNS_PER_CLIENT, (ip) => {
    logger?.debug({ client: ip, limit: limits?.httpMaxConnsPerClient }, 'HTTP connection refused: too many concurrent connections from this client IP');
  });
  // A request that arrived on a connection over the limit (sent before its 429) never runs.
  app.addHook('onRequest', (req, reply, done) => {
    if (connLimiter.isRefused(req.raw.socket)) {
      reply.hijack();
      req.raw.socket.destroy();
      return;
    }
    done();
  });

  // Bodies stay raw Buffers whatever their content type; each handler decodes what it expects.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const inflight = new Set<AbortController>();
  const blocked = backend.config.http?.blockEndpoints ?? [];
  const responseHeaders = backend.config.http?.responseHeaders ?? {};
  const defaultAclPolicy = backend.config.acl?.defaultPolicy ?? 'allow';

  // The web UI's files under ui_config.content_path (ui.ts): with -ui / ui_config.enabled, or -ui-dir.
  const uiEnabled = backend.config.ui !== undefined && (backend.config.ui.enabled || backend.config.ui.dir !== '');
  if (uiEnabled) registerUi(app, { dir: backend.config.ui.dir, contentPath: backend.config.ui.contentPath, datacenter: backend.config.datacenter });

  // Consul's Index handler: "/" names the agent; anything else unknown is a 404 that says why.
  app.setNotFoundHandler(async (req, reply) => {
    const path = (req.raw.url ?? '/').split('?')[0]!;
    // On a client agent, endpoints only servers have (operator/*, snapshot, ...) are the server's to answer.
    if (backend.forward && path.startsWith('/v1/') && !blocked.some((prefix) => path.startsWith(prefix))) {
      const ac = new AbortController();
      const onClose = (): void => { if (!reply.raw.writableFinished) ac.abort(); };
      reply.raw.on('close', onClose);
      try {
        await forwardAndReply(backend.forward, req, reply, ac.signal);
      } catch (err) {
        await sendError(reply, err);
      } finally {
        reply.raw.off('close', onClose);
      }
      return;
    }
    if (path === '/' && uiEnabled) {
      // Consul's Index handler: the UI, when it is on, is what "/" shows.
      void reply.redirect(backend.config.ui.contentPath, 301);
      return;
    }
    if (path === '/') {
      void reply.code(200).type('text/plain; charset=utf-8').send('Trellis agent (Consul-compatible HTTP API under /v1/): UI disabled.');
      return;
    }
    const msg = path.includes('/v1/')
      ? 'Invalid URL path: not a recognized HTTP API endpoint\n'
      : "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n";
    void reply.code(404).type('text/plain; charset=utf-8').send(msg);
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    const cfg = req.routeOptions.config as Partial<RouteConfig> | undefined;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' && cfg?.spec) {
      const limit = cfg.spec.bodyLimit ?? DEFAULT_MAX_BODY_BYTES;
      const declared = Number(req.headers['content-length']);
      const bytes = Number.isFinite(declared) && declared > 0 ? declared : undefined;
      const msg = cfg.spec.tooLargeMessage?.(bytes, limit) ?? `Request body too large, max size: ${limit} bytes`;
      void sendError(reply, new HttpError(413, msg, 'ERR_TOO_LARGE'));
      return;
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 && err.code?.startsWith('FST_')) {
      void sendError(reply, new HttpError(err.statusCode, err.message, err.code));
      return;
    }
    logger?.error({ err, method: req.method, url: redactUrl(req.url) }, 'unhandled request error');
    void sendError(reply, err);
  });

  const specs: EndpointSpec[] = [
    ...statusRoutes(deps),
    ...agentRoutes(deps),
    ...catalogRoutes(deps),
    ...healthRoutes(deps),
    ...kvRoutes(deps),
    ...sessionRoutes(deps),
    ...txnRoutes(deps),
    ...configRoutes(deps),
    ...discoveryChainRoutes(deps),
    ...connectCARoutes(deps),
    ...intentionRoutes(deps),
    ...authorizeRoutes(deps),
    ...eventRoutes(deps),
    ...replicationRoutes(deps),
    ...uiInternalRoutes(deps),
    ...aclRoutes(deps),
    ...(opts.routes ?? []),
  ];

  for (const spec of specs) {
    const label = pathLabel(spec);
    const config: RouteConfig = { spec, label };
    const url = spec.prefix ? `${spec.path}*` : spec.path;
    app.route({
      method: [...HTTP_METHODS],
      url,
      bodyLimit: spec.bodyLimit ?? DEFAULT_MAX_BODY_BYTES,
      config,
      handler: (req, reply) => dispatch(spec, label, req, reply),
    });
  }

  async function dispatch(spec: EndpointSpec, label: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const started = performance.now();
    const method = req.method as HttpMethod;
    const ac = new AbortController();
    inflight.add(ac);
    // A response that closes before it finished means the client went away.
    const onClose = (): void => {
      if (!reply.raw.writableFinished) ac.abort();
    };
    reply.raw.on('close', onClose);
    // Consul's http_config.response_headers go on every answer, errors included; then, as Consul
    // (1.9+) does after them in wrap(), acl.default_policy, ACLs on or off (the UI reads it).
    for (const [k, v] of Object.entries(responseHeaders)) reply.header(k, v);
    reply.header('X-Consul-Default-ACL-Policy', defaultAclPolicy);
    try {
      const rawUrl = req.raw.url ?? '/';
      const q = rawUrl.indexOf('?');
      const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
      const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
      // Consul's http_config.block_endpoints: path prefixes refused with 403.
      if (blocked.some((prefix) => rawPath.startsWith(prefix))) {
        throw new HttpError(403, 'Endpoint is blocked by agent configuration', 'ERR_BLOCKED');
      }
      // ?dc=<another datacenter>: the request is answered there (a client agent's goes through its
      // server, which sends it over the WAN: server/wan.ts). Agent-local endpoints ignore ?dc.
      const dc = spec.agentLocal ? null : query.get('dc');
      if (dc && dc !== backend.config.datacenter) {
        // Consul's structs.ErrNoDCPath, for a name no server of the WAN pool carries (or no WAN at all).
        if (!backend.forwardDc) throw new HttpError(500, 'No path to datacenter', 'ERR_NO_DC_PATH');
        const forwardDc = backend.forwardDc.bind(backend);
        await forwardAndReply((r, signal) => forwardDc(dc, r, signal), req, reply, ac.signal, spec.forwardBody);
        return;
      }
      // A client agent sends what it does not serve itself to a server (forward.ts), with its
      // default token when the request carries none (Consul's user token); the server enforces.
      const token = acl ? requestToken(req.headers, query) : undefined;
      if (backend.forward && !spec.agentLocal && !spec.servedByEveryAgent) {
        if (acl && token === undefined && acl.defaultToken !== '') req.headers['x-consul-token'] = acl.defaultToken;
        await forwardAndReply(backend.forward, req, reply, ac.signal, spec.forwardBody);
        return;
      }
      // Config entries and intentions are written in the primary datacenter (primary_datacenter), and
      // with ACLs on policies, roles and global tokens (aclPrimaryWrites.ts).
      const primary = backend.config.primaryDatacenter;
      if (primary && primary !== backend.config.datacenter && method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS'
        && spec.methods[method] !== undefined
        && (spec.writesInPrimary || (acl !== undefined && spec.path.startsWith('/v1/acl/')
          && aclWriteInPrimary(spec.path, method, decodePathTail(rawPath.slice(spec.path.length)), Buffer.isBuffer(req.body) ? req.body : undefined, backend.store)))) {
        if (!backend.forwardDc) throw new HttpError(500, 'No path to datacenter', 'ERR_NO_DC_PATH');
        const forwardDc = backend.forwardDc.bind(backend);
        await forwardAndReply((r, signal) => forwardDc(primary, { ...r, url: withDatacenter(r.url, primary) }, signal), req, reply, ac.signal);
        return;
      }
      // Consul's BootstrapTokens outside the primary datacenter: acl.ErrDisabled (the first
      // management token is made in the primary and replicated).
      if (acl && spec.path === '/v1/acl/bootstrap' && primary && primary !== backend.config.datacenter) {
        throw new HttpError(401, 'ACL support disabled', 'ERR_ACL_DISABLED');
      }
      // A client agent asking a secondary about a global token that is not replicated there: the primary answers.
      if (spec.path === '/v1/internal/acl/resolve' && primary && backend.forwardDc && backend.aclResolveInPrimary?.(token ?? '')) {
        const forwardDc = backend.forwardDc.bind(backend);
        await forwardAndReply((r, signal) => forwardDc(primary, { ...r, url: withDatacenter(r.url, primary) }, signal), req, reply, ac.signal);
        return;
      }
      const allowed = allowedMethods(spec);
      if (method === 'OPTIONS' && spec.methods.OPTIONS === undefined) {
        reply.header('Allow', ['OPTIONS', ...allowed].join(','));
        await reply.code(200).send();
        return;
      }
      const handler = spec.methods[method];
      if (!handler) throw methodNotAllowed(method, allowed);

      let rest = '';
      if (spec.prefix) {
        const encoded = rawPath.length >= spec.path.length ? rawPath.slice(spec.path.length) : '';
        try {
          rest = decodeURIComponent(encoded);
        } catch {
          throw new HttpError(400, `Invalid URL path: ${JSON.stringify(encoded)} is not valid percent-encoding`, 'ERR_BAD_REQUEST');
        }
        if (UNPRINTABLE.test(rest)) throw new HttpError(400, 'Invalid URL path: contains unprintable characters', 'ERR_BAD_REQUEST');
      }

      const body = Buffer.isBuffer(req.body) ? req.body : undefined;
      const ctx = new RequestContext({ method, rawPath, rest, query, headers: req.headers, body, signal: ac.signal });
      let result: unknown;
      if (acl) {
        // A server resolves from its own replica and answers at once: no await (a microtask turn) then.
        const resolved = acl.resolver.resolve(token ?? acl.defaultToken, ac.signal);
        const identity = resolved instanceof Promise ? await resolved : resolved;
        guardRequest(spec.path, ctx, identity, guardEnv);
        // The service's own token syncs it to the catalog (anti-entropy runs during the request too).
        if (spec.path === '/v1/agent/service/register') recordServiceToken(acl, ctx, token ?? acl.defaultToken);
        ctx.identity = identity;
        // Handlers read the identity from ctx; proposals (backend.apply, which has no ctx) find it in
        // aclRequest. Only writes propose: a GET or HEAD handler runs outside it, which saves the two
        // async-context frames (Maps) a run allocates per request on the read path. A proposal made
        // outside a request's run is the anonymous token's (guardedBackend.apply): it fails closed.
        result = method === 'GET' || method === 'HEAD' ? await handler(ctx) : await aclRequest.run(identity, () => handler(ctx));
        if (result !== undefined && !(result instanceof RawBody) && ctx.status === 200) {
          const f = filterResult(spec.path, ctx, result, identity);
          result = f.value;
          if (f.filtered) ctx.header(FILTERED_HEADER, 'true');
        }
      } else {
        result = await handler(ctx);
      }
      for (const [k, v] of Object.entries(ctx.responseHeaders)) reply.header(k, v);
      reply.code(ctx.status);
      if (result === undefined) {
        await reply.send();
      } else if (result instanceof RawBody) {
        await reply.type(result.contentType).send(result.data);
      } else {
        // ?pretty (or Consul's dev mode) indents by four spaces and ends with a newline.
        const text = query.has('pretty') ? `${encodeJson(result, 4)}\n` : encodeJson(result);
        // Sent as bytes: fastify appends "; charset=utf-8" to JSON strings, which Consul does not send.
        await reply.header('Content-Type', 'application/json').send(Buffer.from(text));
      }
    } catch (err) {
      if (!(err instanceof HttpError)) {
        logger?.debug({ err, method, url: redactUrl(req.url) }, 'request failed');
      }
      await sendError(reply, err);
    } finally {
      reply.raw.off('close', onClose);
      inflight.delete(ac);
      metrics.measureSince('consul.api.http', started, { method, path: label });
      // Consul's "[DEBUG] agent.http: Request finished: method=GET url=... from=... latency=..."
      logger?.debug({ method, url: redactUrl(req.url), status: reply.statusCode, latencyMs: Math.round((performance.now() - started) * 1000) / 1000 }, 'Request finished');
    }
  }

  function sendError(reply: FastifyReply, err: unknown): FastifyReply {
    const m = mapError(err);
    for (const [k, v] of Object.entries(m.headers)) reply.header(k, v);
    return reply.code(m.statusCode).type('text/plain; charset=utf-8').send(m.body);
  }

  const extraServers: net.Server[] = [];
  return {
    app,
    metrics,
    events,
    async listen() {
      await app.listen({ host: opts.host, port: opts.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      logger?.info({ address: `${opts.host}:${port}` }, 'HTTP API listening');
      // Fastify listens once; every further address hands its connections to the same HTTP server.
      for (const host of opts.extraHosts ?? []) {
        const extra = net.createServer((socket) => app.server.emit('connection', socket));
        await new Promise<void>((resolve, reject) => {
          extra.once('error', reject);
          extra.listen({ host, port }, () => { extra.off('error', reject); resolve(); });
        }).catch((err: Error) => { throw new Error(`HTTP API: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }); });
        extraServers.push(extra);
        logger?.info({ address: `${host}:${port}` }, 'HTTP API listening');
      }
      return { port };
    },
    async close() {
      for (const stop of closers) stop();
      for (const ac of inflight) ac.abort();
      for (const extra of extraServers) extra.close();
      await app.close();
    },
  };
}

/** The URL with ?dc=<dc> (replacing any other): the receiving datacenter answers it as its own. */
function withDatacenter(url: string, dc: string): string {
  const q = url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  params.set('dc', dc);
  return `${q < 0 ? url : url.slice(0, q)}?${params.toString()}`;
}

/** Tokens never reach the logs. */
function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, '$1<hidden>');
}

/** A prefix path's remainder decoded, or '' when it is not valid percent-encoding (the handler answers that). */
function decodePathTail(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return '';
  }
}
