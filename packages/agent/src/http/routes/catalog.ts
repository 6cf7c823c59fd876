// /v1/catalog/*: Consul's catalog endpoints (agent/catalog_endpoint.go). Writes go through Raft as
// catalogRegister / catalogDeregister; reads are blocking queries over the local store.

import { NodeSchema, NodeServiceSchema, ServiceNodeSchema, compileFilter } from '../../filter/index.ts';
import type { CatalogRegisterCommand, Node, NodeService, ServiceNode } from '../../state/types.ts';
import { isUuid } from '../../state/validate.ts';
import { applyOk } from '../../state/apply.ts';
import { blockingRead, parseQueryOptions } from '../blocking.ts';
import type { RequestContext } from '../context.ts';
import { decodeBody } from '../decode.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { CatalogDeregisterSchema, CatalogRegisterSchema } from '../schemas.ts';
import { readQuery, requireRest, waitLimits } from './common.ts';
import { checkInput, metaMatches, nodeMetaFilters, serviceInput, validateMeta } from './convert.ts';

type Obj = Record<string, unknown>;

export function catalogRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;
  const store = () => backend.store;

  function checkDc(dc: unknown): void {
    if (typeof dc === 'string' && dc !== '' && dc !== backend.config.datacenter) {
      throw new HttpError(500, 'No path to datacenter', 'ERR_NO_DC_PATH');
    }
  }

  async function register(ctx: RequestContext): Promise<boolean> {
    const req = decodeBody<Obj>(ctx.body, CatalogRegisterSchema);
    checkDc(req.Datacenter);
    const node = (req.Node as string | undefined) ?? '';
    if (node === '') throw badRequest('Must provide node');
    const address = (req.Address as string | undefined) ?? '';
    if (address === '' && !req.SkipNodeUpdate) throw badRequest('Must provide address if SkipNodeUpdate is not set');
    const id = (req.ID as string | undefined) ?? '';
    if (id !== '' && !isUuid(id)) throw badRequest(`Bad node ID: uuid string is wrong length or format: ${JSON.stringify(id)}`);
    const nodeMeta = (req.NodeMeta as Record<string, string> | undefined) ?? {};
    const metaErr = validateMeta(nodeMeta, 'Node');
    if (metaErr) throw badRequest(`Invalid node metadata: ${metaErr}`);
    const cmd: CatalogRegisterCommand = {
      type: 'catalogRegister',
      Node: node,
      Address: address,
      Datacenter: backend.config.datacenter,
    };
    if (id) cmd.ID = id;
    if (req.TaggedAddresses) cmd.TaggedAddresses = req.TaggedAddresses as Record<string, string>;
    if (req.NodeMeta) cmd.NodeMeta = nodeMeta;
    if (req.SkipNodeUpdate) cmd.SkipNodeUpdate = true;
    if (req.Service) cmd.Service = serviceInput(req.Service as Obj);
    if (req.Check) cmd.Check = checkInput(req.Check as Obj, node);
    if (req.Checks) cmd.Checks = (req.Checks as Obj[]).map((c) => checkInput(c, node));
    for (const c of [cmd.Check, ...(cmd.Checks ?? [])]) {
      if (c && c.Node !== node) throw badRequest(`Check node ${c.Node} does not match the registration node ${node}`);
    }
    const started = performance.now();
    try {
      await applyOk(backend.apply, cmd);
    } finally {
      metrics.measureSince('consul.catalog.register', started);
    }
    return true;
  }

  async function deregister(ctx: RequestContext): Promise<boolean> {
    const req = decodeBody<Obj>(ctx.body, CatalogDeregisterSchema);
    checkDc(req.Datacenter);
    const node = (req.Node as string | undefined) ?? '';
    if (node === '') throw badRequest('Must provide node');
    const started = performance.now();
    try {
      await applyOk(backend.apply, {
        type: 'catalogDeregister',
        Node: node,
        ...(req.ServiceID ? { ServiceID: req.ServiceID as string } : {}),
        ...(req.CheckID ? { CheckID: req.CheckID as string } : {}),
      });
    } finally {
      metrics.measureSince('consul.catalog.deregister', started);
    }
    return true;
  }

  async function nodes(ctx: RequestContext): Promise<Node[]> {
    const meta = nodeMetaFilters(ctx.query);
    const res = await readQuery(ctx, deps, (ws) => store().nodes(ws), NodeSchema);
    return meta ? res.value.filter((n) => metaMatches(n.Meta, meta)) : res.value;
  }

  async function services(ctx: RequestContext): Promise<Record<string, string[]>> {
    const meta = nodeMetaFilters(ctx.query);
    const opts = parseQueryOptions(ctx, waitLimits(deps));
    const filter = opts.filter !== '' ? compileFilter(opts.filter, ServiceNodeSchema) : undefined;
    const res = await blockingRead(ctx, deps, opts, (ws) => store().services(ws));
    if (!filter && !meta) return res.value;
    // Consul filters catalog/services over the instances (ServiceNode); a service is listed with
    // the tags of the instances that pass.
    const out: Record<string, string[]> = {};
    for (const name of Object.keys(res.value)) {
      const rows = store().serviceNodes(name).value.filter((r) => metaMatches(r.NodeMeta, meta) && (!filter || filter.matches(r)));
      if (rows.length === 0) continue;
      out[name] = [...new Set(rows.flatMap((r) => r.ServiceTags))].sort();
    }
    return out;
  }

  /** `catalog/service/:service`, and with `connect` `catalog/connect/:service` (its proxies and Connect-native instances). */
  const serviceNodes = (connect: boolean) => async (ctx: RequestContext): Promise<ServiceNode[]> => {
    const name = requireRest(ctx, 'service name');
    const tags = ctx.getAll('tag');
    const meta = nodeMetaFilters(ctx.query);
    const res = await readQuery(ctx, deps, (ws) => store().serviceNodes(name, { ...(tags.length ? { tag: tags } : {}), connect }, ws), ServiceNodeSchema);
    return meta ? res.value.filter((r) => metaMatches(r.NodeMeta, meta)) : res.value;
  };

  async function nodeServices(ctx: RequestContext): Promise<unknown> {
    const name = requireRest(ctx, 'node name');
    const res = await readQuery(ctx, deps, (ws) => store().nodeServices(name, ws));
    if (!res.value) return null;
    const map: Record<string, NodeService> = {};
    for (const s of res.value.Services) map[s.ID] = s;
    return { Node: res.value.Node, Services: map };
  }

  async function nodeServiceList(ctx: RequestContext): Promise<unknown> {
    const name = requireRest(ctx, 'node name');
    const opts = parseQueryOptions(ctx, waitLimits(deps));
    const filter = opts.filter !== '' ? compileFilter(opts.filter, NodeServiceSchema) : undefined;
    const res = await blockingRead(ctx, deps, opts, (ws) => store().nodeServices(name, ws));
    if (!res.value) return { Node: null, Services: [] };
    return { Node: res.value.Node, Services: filter ? filter.apply(res.value.Services) : res.value.Services };
  }

  return [
    { path: '/v1/catalog/register', methods: { PUT: register } },
    { path: '/v1/catalog/deregister', methods: { PUT: deregister } },
    { path: '/v1/catalog/datacenters', methods: { GET: () => backend.datacenters?.() ?? [backend.config.datacenter] } },
    { path: '/v1/catalog/nodes', methods: { GET: nodes } },
    { path: '/v1/catalog/services', methods: { GET: services } },
    { path: '/v1/catalog/service/', prefix: true, methods: { GET: serviceNodes(false) } },
    { path: '/v1/catalog/connect/', prefix: true, methods: { GET: serviceNodes(true) } },
    { path: '/v1/catalog/node/', prefix: true, methods: { GET: nodeServices } },
    { path: '/v1/catalog/node-services/', prefix: true, methods: { GET: nodeServiceList } },
  ];
}
