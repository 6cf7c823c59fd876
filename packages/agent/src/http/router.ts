// Endpoint declarations. A route module returns EndpointSpecs; server.ts turns each into one fastify
// route that accepts every method and dispatches itself, so a wrong method gets Consul's 405 with an
// Allow header instead of fastify's 404, and every Consul convention lives in one dispatcher.

import type { Logger } from 'pino';
import type { AgentBackend } from './backend.ts';
import type { BlockingDeps } from './blocking.ts';
import type { RequestContext } from './context.ts';
import type { EventLog } from './events.ts';
import type { MetricsSink } from './metrics.ts';

export type Handler = (ctx: RequestContext) => unknown | Promise<unknown>;

export const HTTP_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** What every route module is built from. */
export interface RouteDeps extends BlockingDeps {
  backend: AgentBackend;
  metrics: MetricsSink;
  events: EventLog;
  logger?: Logger;
  /** Registers work to stop when the HTTP server closes (a route module's background watch). */
  onClose?: (fn: () => void) => void;
}

export interface EndpointSpec {
  /** Consul's mux pattern: with `prefix`, a trailing-slash prefix ("/v1/kv/") whose remainder is
   *  ctx.rest; otherwise an exact path. */
  readonly path: string;
  readonly prefix?: boolean;
  readonly methods: Readonly<Partial<Record<HttpMethod, Handler>>>;
  /** Agent-local endpoints (agent/*) ignore ?dc, as Consul's do. */
  readonly agentLocal?: boolean;
  /** Served by the agent that received it, client or server (user events ride gossip); never forwarded. */
  readonly servedByEveryAgent?: boolean;
  /** Largest accepted body; the server default applies when absent. */
  readonly bodyLimit?: number;
  /** Consul's wording of a 413 for this endpoint; `bytes` is the declared Content-Length if any. */
  readonly tooLargeMessage?: (bytes: number | undefined, limit: number) => string;
  /**
   * On a client agent, rewrites the body before the request is forwarded to a server: what Consul's
   * client agents fill in from their own config before the RPC (e.g. a session's Node).
   */
  readonly forwardBody?: (body: Buffer) => Buffer;
  /**
   * Writes (every method but GET and HEAD) are made in the primary datacenter (primary_datacenter):
   * a secondary's server forwards them there, as Consul does for config entries and intentions, and
   * learns the result by replication (server/replication.ts).
   */
  readonly writesInPrimary?: boolean;
}

/** Consul's metrics label for an endpoint pattern: "/v1/kv/" → "v1_kv__" (a trailing slash is "_"). */
export function pathLabel(spec: EndpointSpec): string {
  const parts: string[] = [];
  spec.path.split('/').forEach((part, i) => {
    if (part === '') {
      if (i === 0) return;
      parts.push('_');
    } else {
      parts.push(part);
    }
  });
  return parts.join('_');
}
