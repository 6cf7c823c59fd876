// What a secondary datacenter's leader reads from the primary to replicate (server/replication.ts,
// server/aclReplication.ts), over the server RPC (Forward.Http across the WAN), as Consul's
// ConfigEntry.ListAll and ACL.PolicyList/RoleList/TokenList RPCs:
//   GET /v1/internal/federation/config-entries   every config entry of every kind (service-intentions
//                                                included), blocking on ?index like any read, with
//                                                the table's X-Consul-Index
//   GET /v1/internal/federation/acl[?tokens=1]   policies, roles and (with tokens=1) global tokens,
//                                                SecretIDs included; blocking on the ACL tables
// With ACLs on, both need the secondary's acl.tokens.replication to hold the rights Consul's
// replication token needs: config entries service_prefix "" read with intentions read and mesh read
// (the entries of every kind); ACLs acl:write (the rows carry SecretIDs).
// Not Consul endpoints: Consul replicates over its own RPC, which has no HTTP form.
import { ACL_REPLICATION_PATH, type AclReplicationWire } from '../../server/aclReplication.ts';
import type { ConfigEntry } from '../../state/types.ts';
import { require } from '../aclEnforce.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { readQuery } from './common.ts';

export const CONFIG_ENTRIES_REPLICATION_PATH = '/v1/internal/federation/config-entries';

export function replicationRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  return [{
    path: CONFIG_ENTRIES_REPLICATION_PATH,
    methods: {
      GET: async (ctx) => {
        const who = ctx.identity;
        if (who) {
          require(who, 'service', 'read', '');
          require(who, 'intention', 'read', '');
          require(who, 'mesh', 'read');
        }
        return (await readQuery<ConfigEntry[]>(ctx, deps, (ws) => backend.store.configEntriesAll(ws))).value;
      },
    },
  }, {
    path: ACL_REPLICATION_PATH,
    methods: {
      GET: async (ctx) => {
        const who = ctx.identity;
        if (who) require(who, 'acl', 'write');
        const tokens = ctx.get('tokens') === '1';
        return (await readQuery<AclReplicationWire>(ctx, deps, (ws) => {
          const p = backend.store.aclPolicies(ws);
          const r = backend.store.aclRoles(ws);
          const t = backend.store.aclTokens(ws);
          return {
            index: Math.max(p.index, r.index, t.index),
            value: {
              PolicyIndex: p.index, RoleIndex: r.index, TokenIndex: t.index,
              Policies: p.value, Roles: r.value, Tokens: tokens ? t.value.filter((x) => !x.Local) : [],
            },
          };
        })).value;
      },
    },
  }];
}
