// /v1/session/*: Consul's session endpoints (agent/session_endpoint.go and the Session RPC's checks).
// Creation defaults are Consul's: this agent's node, NodeChecks ["serfHealth"] unless the body names
// checks, LockDelay 15 s, Behavior "release". TTL timers are the leader's (backend.sessionTimers).

import { randomUUID } from 'node:crypto';
import { parseGoDurationNs } from '../../config/duration.ts';
import type { Session, SessionInput } from '../../state/types.ts';
import { DEFAULT_LOCK_DELAY_NS, validateSessionTtl } from '../../state/validate.ts';
import { applyOk } from '../../state/apply.ts';
import type { RequestContext } from '../context.ts';
import { decodeBody, parseJsonBody } from '../decode.ts';
import { invalidUtf8Error } from '../utf8.ts';
import { badRequest, decodeFailed, HttpError, notFound } from '../errors.ts';
import { SERF_CHECK_ID } from '../../structs/check.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { SessionCreateSchema } from '../schemas.ts';
import { readQuery, requireRest } from './common.ts';
import { refuseBadName } from './convert.ts';
import { waitWithTimeout } from '../blocking.ts';

/** Consul's lockDelayMinThreshold: a LockDelay below 1000 (ns) is taken to mean seconds. */
const LOCK_DELAY_MIN_THRESHOLD = 1000;

/** Consul's FixupLockDelay: a Go duration string or a number of ns; small values mean seconds. */
export function parseLockDelay(v: unknown): number {
  let ns: number;
  if (typeof v === 'string') {
    try {
      ns = Number(parseGoDurationNs(v));
    } catch (err) {
      throw decodeFailed((err as Error).message);
    }
  } else if (typeof v === 'number' && Number.isFinite(v)) {
    ns = Math.trunc(v);
  } else {
    throw decodeFailed(`json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field Session.LockDelay of type time.Duration`);
  }
  if (ns < LOCK_DELAY_MIN_THRESHOLD) ns *= 1e9;
  return ns;
}

/** serf's MemberStatus for an alive member. */
const MEMBER_ALIVE = 1;
/** Consul's RPC hold timeout: how long a request waits for the cluster to be able to answer it. */
const NODE_REGISTRATION_WAIT_MS = 7000;

/**
 * A client agent names itself as the session's node before forwarding (Consul's agent fills
 * `Session.Node` from its own config): the server that runs the request would otherwise default
 * to its own node. A body that is not a JSON object is forwarded as it is; the server refuses it.
 */
export function withDefaultNode(body: Buffer, nodeName: string): Buffer {
  if (body.length === 0) return Buffer.from(JSON.stringify({ Node: nodeName }));
  // Re-encoding would turn invalid UTF-8 into U+FFFD; as sent, the server refuses it naming the field.
  if (invalidUtf8Error(body) !== null) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return body;
  const obj = parsed as Record<string, unknown>;
  const key = Object.keys(obj).find((k) => k.toLowerCase() === 'node');
  if (key !== undefined && obj[key] !== '' && obj[key] !== null) return body;
  if (key !== undefined) delete obj[key];
  return Buffer.from(JSON.stringify({ ...obj, Node: nodeName }));
}

export function sessionRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;
  const store = () => backend.store;

  async function create(ctx: RequestContext): Promise<{ ID: string }> {
    const input: SessionInput = {
      ID: randomUUID(),
      Node: backend.config.nodeName,
      LockDelay: DEFAULT_LOCK_DELAY_NS,
      Behavior: 'release',
      NodeChecks: [SERF_CHECK_ID],
    };
    // Consul reads a body only when there is one; an empty PUT creates a default session.
    if (ctx.body && ctx.body.length > 0) {
      const raw = parseJsonBody(ctx.body);
      const body = decodeBody<Record<string, unknown>>(ctx.body, SessionCreateSchema);
      // Consul's FixupChecks: naming any check list replaces the serfHealth default, so an empty
      // list creates a session bound to no checks at all.
      if (raw && typeof raw === 'object' && Object.keys(raw).some((k) => ['checks', 'nodechecks', 'servicechecks'].includes(k.toLowerCase()))) {
        delete input.NodeChecks;
      }
      if (body.Name !== undefined) {
        refuseBadName('session name', body.Name);
        input.Name = body.Name as string;
      }
      if (body.Node !== undefined && body.Node !== '') input.Node = body.Node as string;
      if (body.Behavior !== undefined) input.Behavior = body.Behavior as SessionInput['Behavior'];
      if (body.TTL !== undefined) input.TTL = body.TTL as string;
      if (body.LockDelay !== undefined) input.LockDelay = parseLockDelay(body.LockDelay);
      if (body.NodeChecks !== undefined) input.NodeChecks = body.NodeChecks as string[];
      if (body.ServiceChecks !== undefined) input.ServiceChecks = body.ServiceChecks as SessionInput['ServiceChecks'];
      if (body.Checks !== undefined) input.Checks = body.Checks as string[];
    }
    if (input.Behavior !== '' && input.Behavior !== 'release' && input.Behavior !== 'delete') {
      throw badRequest(`Invalid Behavior setting '${input.Behavior}'`);
    }
    const ttlErr = validateSessionTtl(input.TTL ?? '', (backend.config.sessionTtlMinMs ?? 10_000) * 1e6);
    if (ttlErr) throw badRequest(ttlErr);
    await awaitLiveNodeRegistration(input.Node, (input.NodeChecks ?? []).includes(SERF_CHECK_ID), ctx.signal);
    const started = performance.now();
    let id: string;
    try {
      ({ value: id } = await applyOk(backend.apply, { type: 'sessionCreate', Session: input }));
    } finally {
      metrics.measureSince('consul.session.apply', started);
    }
    return { ID: id };
  }

  /**
   * Ready means ready: the leader registers a live agent's node (with serfHealth) just after it is
   * elected or after the agent joins, so a session for a node that is alive in gossip but not yet in
   * the catalog waits for that registration (up to Consul's RPC hold timeout) instead of failing
   * with "Missing node registration". A node that gossip does not know as alive fails at once, as
   * in Consul, with the state machine's error.
   */
  async function awaitLiveNodeRegistration(node: string, needSerfHealth: boolean, signal: AbortSignal): Promise<void> {
    if (!backend.members?.().some((m) => m.Name === node && m.Status === MEMBER_ALIVE)) return;
    const deadline = performance.now() + NODE_REGISTRATION_WAIT_MS;
    for (;;) {
      const ws = backend.store.watchSet();
      const registered = backend.store.node(node, ws).value !== null &&
        (!needSerfHealth || backend.store.nodeChecks(node, ws).value.some((c) => c.CheckID === SERF_CHECK_ID));
      const remaining = deadline - performance.now();
      if (registered || remaining <= 0 || signal.aborted) return;
      await waitWithTimeout(ws, remaining, signal);
    }
  }

  async function destroy(ctx: RequestContext): Promise<boolean> {
    const id = requireRest(ctx, 'session');
    const started = performance.now();
    try {
      await applyOk(backend.apply, { type: 'sessionDestroy', ID: id });
    } finally {
      metrics.measureSince('consul.session.apply', started);
    }
    return true;
  }

  async function renew(ctx: RequestContext): Promise<Session[]> {
    const id = requireRest(ctx, 'session');
    // Renewal is a leader-local timer reset (not a Raft write); the session must exist.
    const res = await readQuery(ctx, deps, (ws) => store().sessionGet(id, ws));
    if (!res.value) throw notFound(`Session id '${id}' not found`);
    if (backend.sessionTimers) {
      await backend.sessionTimers.renew(id);
    } else if (!backend.raftStatus().knownLeader) {
      throw new HttpError(500, 'No cluster leader', 'ERR_NO_LEADER');
    }
    return [res.value];
  }

  async function info(ctx: RequestContext): Promise<Session[]> {
    const id = requireRest(ctx, 'session');
    const res = await readQuery(ctx, deps, (ws) => store().sessionGet(id, ws));
    return res.value ? [res.value] : [];
  }

  async function nodeSessions(ctx: RequestContext): Promise<Session[]> {
    const node = requireRest(ctx, 'node name');
    return (await readQuery(ctx, deps, (ws) => store().nodeSessions(node, ws))).value;
  }

  async function list(ctx: RequestContext): Promise<Session[]> {
    return (await readQuery(ctx, deps, (ws) => store().sessionList(ws))).value;
  }

  return [
    { path: '/v1/session/create', methods: { PUT: create }, forwardBody: (body) => withDefaultNode(body, backend.config.nodeName) },
    { path: '/v1/session/destroy/', prefix: true, methods: { PUT: destroy } },
    { path: '/v1/session/renew/', prefix: true, methods: { PUT: renew } },
    { path: '/v1/session/info/', prefix: true, methods: { GET: info } },
    { path: '/v1/session/node/', prefix: true, methods: { GET: nodeSessions } },
    { path: '/v1/session/list', methods: { GET: list } },
  ];
}
