// HTTP endpoints of the server role that the CLI's operator and snapshot commands call:
//   GET    /v1/operator/raft/configuration        (trellis operator raft list-peers)
//   DELETE /v1/operator/raft/peer?id=|address=     (remove-peer)
//   POST   /v1/operator/raft/transfer-leader?id=   (transfer-leader)
//   GET    /v1/operator/autopilot/health
//   GET    /v1/operator/autopilot/configuration
//   GET    /v1/snapshot                            (trellis snapshot save)
//   PUT    /v1/snapshot                            (trellis snapshot restore)
//
// They are registered on the HTTP API's fastify instance before it listens, and follow the API's
// conventions through its own pieces (RequestContext, mapError, 405 with Allow, ?dc, X-Consul-*).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AgentBackend } from '../http/backend.ts';
import { setQueryMeta } from '../http/blocking.ts';
import { RequestContext } from '../http/context.ts';
import { HttpError, badRequest, mapError, methodNotAllowed } from '../http/errors.ts';
import type { AutopilotHealth } from './autopilot.ts';
import type { Server } from './server.ts';

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
type Handler = (ctx: RequestContext) => Promise<unknown> | unknown;

/** A response body sent as bytes with its own content type. */
class Binary {
  readonly data: Buffer;
  readonly contentType: string;
  constructor(data: Buffer, contentType: string) {
    this.data = data;
    this.contentType = contentType;
  }
}

/** Largest snapshot accepted by PUT /v1/snapshot. */
export const MAX_SNAPSHOT_UPLOAD_BYTES = 1024 ** 3;

/** Go's time.Duration String() for whole milliseconds ("0s", "150ms", "2.5s"). */
export function goDurationMs(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** Consul's api.OperatorHealthReply. */
export function healthReply(h: AutopilotHealth): unknown {
  return {
    Healthy: h.healthy,
    FailureTolerance: h.failureTolerance,
    Servers: h.servers.map((s) => ({
      ID: s.id, Name: s.name, Address: s.address, SerfStatus: s.serfStatus, Version: s.version, Leader: s.leader,
      LastContact: goDurationMs(s.lastContactMs), LastTerm: s.lastTerm, LastIndex: s.lastIndex, Healthy: s.healthy, Voter: s.voter,
      StableSince: s.stableSince !== undefined ? new Date(s.stableSince).toISOString() : '0001-01-01T00:00:00Z',
    })),
  };
}

function staleOrDefault(ctx: RequestContext): { stale: boolean; consistent: boolean } {
  const stale = ctx.has('stale');
  const consistent = ctx.has('consistent');
  if (stale && consistent) throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  return { stale, consistent };
}

export function registerOperatorRoutes(app: FastifyInstance, deps: { server: Server; backend: AgentBackend }): void {
  const { server, backend } = deps;

  const route = (path: string, methods: Partial<Record<Method, Handler>>, bodyLimit?: number): void => {
    const allowed = (Object.keys(methods) as Method[]);
    app.route({
      method: ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'],
      url: path,
      ...(bodyLimit !== undefined ? { bodyLimit } : {}),
      handler: (req: FastifyRequest, reply: FastifyReply) => dispatch(req, reply, path, methods, allowed),
    });
  };

  async function dispatch(req: FastifyRequest, reply: FastifyReply, path: string, methods: Partial<Record<Method, Handler>>, allowed: Method[]): Promise<void> {
    const ac = new AbortController();
    const onClose = () => { if (!reply.raw.writableFinished) ac.abort(); };
    reply.raw.on('close', onClose);
    try {
      for (const [k, v] of Object.entries(backend.config.http?.responseHeaders ?? {})) reply.header(k, v);
      const rawUrl = req.raw.url ?? '/';
      const q = rawUrl.indexOf('?');
      const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
      if (req.method === 'OPTIONS') {
        reply.header('Allow', ['OPTIONS', ...allowed].join(','));
        await reply.code(200).send();
        return;
      }
      const handler = methods[req.method as Method];
      if (!handler) throw methodNotAllowed(req.method, allowed);
      if ((backend.config.http?.blockEndpoints ?? []).some((p) => path.startsWith(p))) {
        throw new HttpError(403, 'Endpoint is blocked by agent configuration', 'ERR_BLOCKED');
      }
      const dc = query.get('dc');
      if (dc && dc !== backend.config.datacenter) throw new HttpError(500, 'No path to datacenter', 'ERR_NO_DC_PATH');
      const ctx = new RequestContext({
        method: req.method, rawPath: q < 0 ? rawUrl : rawUrl.slice(0, q), rest: '', query, headers: req.headers,
        body: Buffer.isBuffer(req.body) ? req.body : undefined, signal: ac.signal,
      });
      const result = await handler(ctx);
      for (const [k, v] of Object.entries(ctx.responseHeaders)) reply.header(k, v);
      reply.code(ctx.status);
      if (result === undefined) {
        await reply.send();
      } else if (result instanceof Binary) {
        await reply.header('Content-Type', result.contentType).send(result.data);
      } else {
        const text = query.has('pretty') ? `${JSON.stringify(result, null, 4)}\n` : JSON.stringify(result);
        await reply.header('Content-Type', 'application/json').send(Buffer.from(text));
      }
    } catch (err) {
      const e = err as { code?: string };
      // A snapshot that does not verify is bad input (Consul answers such uploads with an error too;
      // a 400 tells the operator the file, not the cluster, is at fault).
      const m = e?.code === 'ERR_SNAPSHOT_INVALID' ? { statusCode: 400, body: (err as Error).message, headers: {} } : mapError(err);
      for (const [k, v] of Object.entries(m.headers)) reply.header(k, v);
      await reply.code(m.statusCode).type('text/plain; charset=utf-8').send(m.body);
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  route('/v1/operator/raft/configuration', {
    GET: async (ctx) => {
      const { stale } = staleOrDefault(ctx);
      if (!stale) await server.defaultRead(ctx.signal);
      const conf = server.raftConfiguration();
      setQueryMeta(ctx, backend, conf.Index, stale);
      return conf;
    },
  });

  route('/v1/operator/raft/peer', {
    DELETE: async (ctx) => {
      const id = ctx.get('id') ?? '';
      const address = ctx.get('address') ?? '';
      if (!id && !address) throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
      if (id && address) throw badRequest('Must specify only one of ?id or ?address');
      await server.removePeer(id ? { id } : { address }, ctx.signal);
      return undefined;
    },
  });

  route('/v1/operator/raft/transfer-leader', {
    POST: async (ctx) => {
      const id = ctx.get('id') || undefined;
      await server.transferLeader(id, ctx.signal);
      return { Success: true };
    },
  });

  route('/v1/operator/autopilot/health', {
    GET: async (ctx) => {
      const h = await server.autopilotHealth(ctx.signal);
      // Consul answers 429 when the cluster is unhealthy, so load balancers can use this endpoint.
      if (!h.healthy) ctx.status = 429;
      return healthReply(h);
    },
  });

  route('/v1/operator/autopilot/configuration', {
    GET: () => {
      const a = backend.config.autopilot;
      return {
        CleanupDeadServers: a.cleanupDeadServers,
        LastContactThreshold: goDurationMs(a.lastContactThresholdMs),
        MaxTrailingLogs: a.maxTrailingLogs,
        MinQuorum: a.minQuorum,
        ServerStabilizationTime: goDurationMs(a.serverStabilizationTimeMs),
        RedundancyZoneTag: '',
        DisableUpgradeMigration: false,
        UpgradeVersionTag: '',
        CreateIndex: 0,
        ModifyIndex: 0,
      };
    },
  });

  route('/v1/snapshot', {
    GET: async (ctx) => {
      const { stale } = staleOrDefault(ctx);
      const snap = await server.snapshot({ stale, signal: ctx.signal });
      setQueryMeta(ctx, backend, snap.index, stale);
      return new Binary(snap.file, 'application/octet-stream');
    },
    PUT: async (ctx) => {
      if (!ctx.body || ctx.body.length === 0) throw badRequest('Missing snapshot: send the file made by `trellis snapshot save` as the request body');
      await server.restore(ctx.body, ctx.signal);
      return undefined;
    },
  }, MAX_SNAPSHOT_UPLOAD_BYTES);
}
