// The ACL side of federation on a server (issue 17, item 7), beside server/aclReplication.ts:
//   GET /v1/acl/replication   Consul's ACL replication status (no ACL needed, as Consul's
//                             ACL.ReplicationStatus); 401 "ACL support disabled" while ACLs are off
//   Forward.SignIntermediate  a secondary's CA asks the primary's to sign its intermediate; with ACLs
//                             on the request must carry a token with operator:write (Consul's
//                             ConnectCA.SignIntermediate), the secondary's acl.tokens.replication
import type { RuntimeConfig } from '../config/runtime.ts';
import { require } from '../http/aclEnforce.ts';
import type { AclResolver } from '../http/aclResolve.ts';
import { HttpError } from '../http/errors.ts';
import type { EndpointSpec } from '../http/router.ts';
import type { AclReplication, AclReplicationStatusWire } from './aclReplication.ts';
import { ServerError } from './errors.ts';

export const ACL_REPLICATION_STATUS_PATH = '/v1/acl/replication';

/** What a primary (or a secondary without a replication loop) answers: nothing replicates here. */
export function idleReplicationStatus(config: Pick<RuntimeConfig, 'primaryDatacenter'>): AclReplicationStatusWire {
  return {
    Enabled: false, Running: false, SourceDatacenter: config.primaryDatacenter, ReplicationType: '',
    ReplicatedIndex: 0, ReplicatedRoleIndex: 0, ReplicatedTokenIndex: 0,
    LastSuccess: '0001-01-01T00:00:00Z', LastError: '0001-01-01T00:00:00Z', LastErrorMessage: '',
  };
}

export function aclReplicationRoutes(config: Pick<RuntimeConfig, 'primaryDatacenter' | 'acl'>, replication: AclReplication | undefined): EndpointSpec[] {
  return [{
    path: ACL_REPLICATION_STATUS_PATH,
    methods: {
      GET: () => {
        if (!config.acl.enabled) throw new HttpError(401, 'ACL support disabled', 'ERR_ACL_DISABLED');
        return replication ? replication.status() : idleReplicationStatus(config);
      },
    },
  }];
}

/** Throws unless ACLs are off or `token` may sign an intermediate (operator:write). */
export function authorizeSignIntermediate(acl: { resolver: AclResolver } | undefined, token: string | undefined): void {
  if (!acl) return;
  try {
    const who = acl.resolver.resolve(token ?? '');
    if (who instanceof Promise) throw new Error('the store resolver answers synchronously');
    require(who, 'operator', 'write');
  } catch (err) {
    throw new ServerError('ERR_PERMISSION_DENIED', (err as Error).message);
  }
}
