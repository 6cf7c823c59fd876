// What a secondary datacenter's leader reads from the primary to replicate (server/replication.ts),
// over the server RPC (Forward.Http across the WAN), as Consul's ConfigEntry.ListAll RPC:
//   GET /v1/internal/federation/config-entries   every config entry of every kind (service-intentions
//                                                included), blocking on ?index like any read, with
//                                                the table's X-Consul-Index
// Not a Consul endpoint: Consul replicates over its own RPC, which has no HTTP form.
import type { ConfigEntry } from '../../state/types.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { readQuery } from './common.ts';

export const CONFIG_ENTRIES_REPLICATION_PATH = '/v1/internal/federation/config-entries';

export function replicationRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  return [{
    path: CONFIG_ENTRIES_REPLICATION_PATH,
    methods: { GET: async (ctx) => (await readQuery<ConfigEntry[]>(ctx, deps, (ws) => backend.store.configEntriesAll(ws))).value },
  }];
}
