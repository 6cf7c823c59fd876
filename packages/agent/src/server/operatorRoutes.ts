// HTTP endpoints of the server role that the CLI's operator and snapshot commands call:
//   GET    /v1/operator/raft/configuration        (trellis operator raft list-peers)
//   DELETE /v1/operator/raft/peer?id=|address=     (remove-peer)
//   POST   /v1/operator/raft/transfer-leader?id=   (transfer-leader)
//   GET    /v1/operator/autopilot/health
//   GET    /v1/operator/autopilot/configuration
//   GET    /v1/snapshot                            (trellis snapshot save)
//   PUT    /v1/snapshot                            (trellis snapshot restore)
//
// They are route specs of the HTTP API's one dispatcher (http/server.ts: OPTIONS, 405 with Allow,
// block_endpoints, ?dc, ?pretty, errors), added by the server role; a client agent forwards them.
import type { AgentBackend } from '../http/backend.ts';
import { setQueryMeta } from '../http/blocking.ts';
import { RawBody, type RequestContext } from '../http/context.ts';
import { badRequest } from '../http/errors.ts';
import type { EndpointSpec } from '../http/router.ts';
import type { AutopilotHealth } from './autopilot.ts';
import type { Server } from './server.ts';

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

export function operatorRoutes(deps: { server: Server; backend: AgentBackend }): EndpointSpec[] {
  const { server, backend } = deps;
  return [
    {
      path: '/v1/operator/raft/configuration',
      methods: {
        GET: async (ctx) => {
          const { stale } = staleOrDefault(ctx);
          if (!stale) await server.defaultRead(ctx.signal);
          const conf = server.raftConfiguration();
          setQueryMeta(ctx, backend, conf.Index, stale);
          return conf;
        },
      },
    },
    {
      path: '/v1/operator/raft/peer',
      methods: {
        DELETE: async (ctx) => {
          const id = ctx.get('id') ?? '';
          const address = ctx.get('address') ?? '';
          if (!id && !address) throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
          if (id && address) throw badRequest('Must specify only one of ?id or ?address');
          await server.removePeer(id ? { id } : { address }, ctx.signal);
          return undefined;
        },
      },
    },
    {
      path: '/v1/operator/raft/transfer-leader',
      methods: {
        POST: async (ctx) => {
          await server.transferLeader(ctx.get('id') || undefined, ctx.signal);
          return { Success: true };
        },
      },
    },
    {
      path: '/v1/operator/autopilot/health',
      methods: {
        GET: async (ctx) => {
          const h = await server.autopilotHealth(ctx.signal);
          // Consul answers 429 when the cluster is unhealthy, so load balancers can use this endpoint.
          if (!h.healthy) ctx.status = 429;
          return healthReply(h);
        },
      },
    },
    {
      path: '/v1/operator/autopilot/configuration',
      methods: {
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
      },
    },
    {
      path: '/v1/snapshot',
      bodyLimit: MAX_SNAPSHOT_UPLOAD_BYTES,
      methods: {
        GET: async (ctx) => {
          const { stale } = staleOrDefault(ctx);
          const snap = await server.snapshot({ stale, signal: ctx.signal });
          setQueryMeta(ctx, backend, snap.index, stale);
          return new RawBody('application/octet-stream', snap.file);
        },
        PUT: async (ctx) => {
          if (!ctx.body || ctx.body.length === 0) throw badRequest('Missing snapshot: send the file made by `trellis snapshot save` as the request body');
          await server.restore(ctx.body, ctx.signal);
          return undefined;
        },
      },
    },
  ];
}
