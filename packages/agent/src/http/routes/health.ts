// /v1/health/*: Consul's health endpoints (agent/health_endpoint.go). All blocking reads.

import { CheckServiceNodeSchema, HealthCheckSchema } from '../../filter/index.ts';
import type { CheckServiceNode, HealthCheck } from '../../state/types.ts';
import { isCheckStatusFilter } from '../../state/validate.ts';
import type { RequestContext } from '../context.ts';
import { badRequest } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { readQuery, requireRest } from './common.ts';
import { metaMatches, nodeMetaFilters } from './convert.ts';

export function healthRoutes(deps: RouteDeps): EndpointSpec[] {
  const store = () => deps.backend.store;

  async function nodeChecks(ctx: RequestContext): Promise<HealthCheck[]> {
    const node = requireRest(ctx, 'node name');
    return (await readQuery(ctx, deps, (ws) => store().nodeChecks(node, ws), HealthCheckSchema)).value;
  }

  async function serviceChecks(ctx: RequestContext): Promise<HealthCheck[]> {
    const service = requireRest(ctx, 'service name');
    return (await readQuery(ctx, deps, (ws) => store().serviceChecks(service, ws), HealthCheckSchema)).value;
  }

  /**
   * `health/service/:service`, and with `connect` `health/connect/:service` (Consul's
   * HealthConnectServiceNodes): the service's sidecar proxies and Connect-native instances.
   */
  const serviceNodes = (connect: boolean) => async (ctx: RequestContext): Promise<CheckServiceNode[]> => {
    const service = requireRest(ctx, 'service name');
    const tags = ctx.getAll('tag');
    let passingOnly = false;
    if (ctx.has('passing')) {
      // Consul: `?passing` alone means true; anything else must parse as a Go bool.
      const v = ctx.get('passing') ?? '';
      if (v === '') passingOnly = true;
      else if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) passingOnly = true;
      else if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) passingOnly = false;
      else throw badRequest('Invalid value for ?passing');
    }
    const meta = nodeMetaFilters(ctx.query);
    // ?near is accepted; without network coordinates the order stays the store's.
    const res = await readQuery(
      ctx, deps,
      (ws) => store().healthServiceNodes(service, { ...(tags.length ? { tag: tags } : {}), passingOnly, connect }, ws),
      CheckServiceNodeSchema,
    );
    return meta ? res.value.filter((r) => metaMatches(r.Node.Meta, meta)) : res.value;
  };

  async function checksInState(ctx: RequestContext): Promise<HealthCheck[]> {
    const state = requireRest(ctx, 'check state');
    if (!isCheckStatusFilter(state)) {
      throw badRequest(`Invalid check state ${JSON.stringify(state)}: must be one of any, passing, warning, critical`);
    }
    const meta = nodeMetaFilters(ctx.query);
    const res = await readQuery(ctx, deps, (ws) => store().checksInState(state, ws), HealthCheckSchema);
    if (!meta) return res.value;
    return res.value.filter((c) => metaMatches(store().node(c.Node).value?.Meta, meta));
  }

  return [
    { path: '/v1/health/node/', prefix: true, methods: { GET: nodeChecks } },
    { path: '/v1/health/checks/', prefix: true, methods: { GET: serviceChecks } },
    { path: '/v1/health/service/', prefix: true, methods: { GET: serviceNodes(false) } },
    { path: '/v1/health/connect/', prefix: true, methods: { GET: serviceNodes(true) } },
    { path: '/v1/health/state/', prefix: true, methods: { GET: checksInState } },
  ];
}
