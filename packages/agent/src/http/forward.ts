// HTTP API requests a client agent does not serve itself. Consul's client agents answer agent/*,
// event/* and the like locally and send everything else (catalog, health, kv, session, txn, status,
// operator, snapshot...) to a server over RPC. Trellis forwards the request whole: the client sends
// method, URL, headers and body over the server RPC (Forward.Http), the server runs it through its
// own HTTP API (fastify's inject: same routing, validation, blocking queries and error texts) and
// the response comes back as it was. One implementation of every endpoint, whichever agent is asked.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface ForwardedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface ForwardedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends a request to a server and answers its response (AgentBackend.forward). */
export type Forwarder = (req: ForwardedRequest, signal: AbortSignal) => Promise<ForwardedResponse>;

/** Headers that describe one hop, not the request: never copied across. */
const HOP_HEADERS = new Set([
  'host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer',
  'proxy-connection', 'proxy-authorization', 'date', 'accept-encoding', 'content-encoding',
]);

function copyHeaders(src: Record<string, string | string[] | number | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined || HOP_HEADERS.has(k.toLowerCase())) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** Client side: forwards the request fastify received and writes the server's answer. */
export async function forwardAndReply(forward: Forwarder, req: FastifyRequest, reply: FastifyReply, signal: AbortSignal, rewriteBody?: (body: Buffer) => Buffer): Promise<void> {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const res = await forward({
    method: req.method,
    url: req.raw.url ?? '/',
    headers: copyHeaders(req.headers),
    body: rewriteBody ? rewriteBody(body) : body,
  }, signal);
  for (const [k, v] of Object.entries(res.headers)) reply.header(k, v);
  await reply.code(res.status).send(res.body);
}

/**
 * Server side: runs a forwarded request through this agent's HTTP API. When the client agent gives
 * up (its caller went away), `signal` ends the request here too, so a blocking query stops waiting.
 */
export async function injectForwarded(app: FastifyInstance, req: ForwardedRequest, signal: AbortSignal): Promise<ForwardedResponse> {
  const method = req.method.toUpperCase();
  const res = await app.inject({
    method: method as 'GET',
    url: req.url,
    headers: req.headers,
    signal,
    ...(req.body.length > 0 ? { payload: req.body } : {}),
  });
  return { status: res.statusCode, headers: copyHeaders(res.headers), body: res.rawPayload };
}
