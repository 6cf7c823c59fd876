// /v1/event/fire/:name and /v1/event/list: user events (agent/event_endpoint.go). See events.ts for
// how they are kept. With gossip (backend.fireEvent) an event goes to every agent of the datacenter,
// this one included, and each stores it when the filters select it (agent.ts).

import type { RequestContext } from '../context.ts';
import { parseQueryOptions, setQueryMeta, waitWithTimeout } from '../blocking.ts';
import { badRequest, HttpError } from '../errors.ts';
import { randomUUID } from 'node:crypto';
import { eventMatchesAgent, type UserEvent } from '../events.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { requireRest, waitLimits } from './common.ts';

/** serf's default UserEventSizeLimit: name and payload together. */
export const USER_EVENT_SIZE_LIMIT = 512;

/**
 * Consul answers an event over serf's UserEventSizeLimit with the error of serf's UserEvent, as a
 * 500 (agent/event_endpoint.go writes every UserEvent error that is not a permission error as 500):
 * clients and `consul event` show this text.
 */
function eventTooLarge(): HttpError {
  return new HttpError(500, `user event exceeds configured limit of ${USER_EVENT_SIZE_LIMIT} bytes before encoding`, 'ERR_EVENT_TOO_LARGE');
}

function compileFilterRegex(kind: string, pattern: string): RegExp | undefined {
  if (pattern === '') return undefined;
  try {
    // Go's regexp.MatchString: unanchored.
    return new RegExp(pattern);
  } catch (err) {
    throw badRequest(`Invalid ${kind} filter: ${(err as Error).message}`);
  }
}

export function eventRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, events } = deps;

  const matchesHere = (ev: UserEvent): boolean =>
    eventMatchesAgent(ev, backend.config.nodeName, backend.local.services().map((s) => s.service));

  function fire(ctx: RequestContext): unknown {
    const name = requireRest(ctx, 'name');
    const NodeFilter = ctx.get('node') ?? '';
    const ServiceFilter = ctx.get('service') ?? '';
    const TagFilter = ctx.get('tag') ?? '';
    compileFilterRegex('node', NodeFilter);
    compileFilterRegex('service', ServiceFilter);
    compileFilterRegex('tag', TagFilter);
    if (TagFilter !== '' && ServiceFilter === '') throw badRequest('Cannot provide tag filter without service filter');
    const payload = ctx.body && ctx.body.length > 0 ? new Uint8Array(ctx.body) : null;
    const size = Buffer.byteLength(name) + (payload?.length ?? 0);
    if (size > USER_EVENT_SIZE_LIMIT) throw eventTooLarge();
    if (backend.fireEvent) {
      const ev: UserEvent = { ID: randomUUID(), Name: name, Payload: payload, NodeFilter, ServiceFilter, TagFilter, Version: 1, LTime: 0 };
      try {
        ev.LTime = backend.fireEvent(ev);
      } catch (err) {
        // Gossip counts the event as serf does (its consul:event: name and encoded form), which can
        // refuse a payload under 512 bytes: the same answer as above.
        if ((err as { code?: unknown }).code === 'ERR_EVENT_TOO_LARGE') throw eventTooLarge();
        throw err;
      }
      return ev;
    }
    return events.fire({ Name: name, Payload: payload, NodeFilter, ServiceFilter, TagFilter }, matchesHere);
  }

  async function list(ctx: RequestContext): Promise<UserEvent[]> {
    const opts = parseQueryOptions(ctx, waitLimits(deps));
    const name = ctx.get('name') ?? '';
    const jitter = opts.blocking && opts.waitMs > 0 ? Math.floor(deps.random() * (opts.waitMs / 16)) : 0;
    const deadline = performance.now() + opts.waitMs + jitter;
    for (;;) {
      const evs = events.list(name || undefined);
      // An empty list answers 1, never 0, so a watcher does not spin on ?index=0; a list answers its
      // last event's Lamport time + 1, which can never equal the empty list's 1.
      const index = evs.length === 0 ? 1 : evs[evs.length - 1]!.LTime + 1;
      const remaining = deadline - performance.now();
      // The index is opaque to clients (Consul's is derived from an event UUID): block only while
      // it equals the one the client has.
      if (!opts.blocking || index !== opts.minIndex || remaining <= 0 || ctx.signal.aborted) {
        setQueryMeta(ctx, backend, index, true);
        return evs;
      }
      await waitWithTimeout(events, remaining, ctx.signal);
    }
  }

  return [
    { path: '/v1/event/fire/', prefix: true, servedByEveryAgent: true, methods: { PUT: fire } },
    { path: '/v1/event/list', servedByEveryAgent: true, methods: { GET: list } },
  ];
}
