// The ACL side of federation on a server (issue 17, item 7), beside server/aclReplication.ts:
//   GET /v1/acl/replication   Consul's ACL replication status (no ACL needed, as Consul's
//                             ACL.ReplicationStatus); 401 "ACL support disabled" while ACLs are off
//   secondaryResolver         how a secondary's servers resolve tokens (Consul's ACLResolver on a
//                             server outside the primary): from the replicated rows once token
//                             replication has completed a round; before that, or without
//                             enable_token_replication, global tokens are resolved by the primary
//                             (GET /v1/internal/acl/resolve there) and cached per acl.token_ttl,
//                             acl.down_policy deciding while it cannot be reached (the client
//                             agents' remoteResolver, http/aclResolve.ts); local tokens always here
//   Forward.SignIntermediate  a secondary's CA asks the primary's to sign its intermediate; with ACLs
//                             on the request must carry a token with operator:write (Consul's
//                             ConnectCA.SignIntermediate), the secondary's acl.tokens.replication
import type { RuntimeConfig } from '../config/runtime.ts';
import { require } from '../http/aclEnforce.ts';
import type { AclResolver } from '../http/aclResolve.ts';
import { secretsEqual, type Identity } from '../acl/identity.ts';
import { staticAuthorizer } from '../acl/authorizer.ts';
import type { StateReader } from '../state/index.ts';
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

/** A secondary server's resolver: `local` (its replica) or `remote` (the primary, with down_policy). */
export interface SecondaryTokens {
  store: StateReader;
  /** True once token replication has completed a round: every global token is here. */
  tokensReplicated(): boolean;
  serverSecret(): string;
}

/** Whether a secondary's server asks the primary about `secret` rather than its own replica. */
export function resolvesInPrimary(o: SecondaryTokens, secret: string): boolean {
  if (o.tokensReplicated()) return false;
  // The anonymous token: this datacenter's row (requests without a token must not wait on the WAN).
  if (secret === '') return false;
  // The servers' own secret and this datacenter's local tokens exist only here.
  const server = o.serverSecret();
  if (server !== '' && secretsEqual(secret, server)) return false;
  return o.store.aclTokenBySecret(secret)?.Local !== true;
}

export function secondaryResolver(o: SecondaryTokens & { local: AclResolver; remote: AclResolver }): AclResolver {
  return {
    resolve(secret, signal) {
      return resolvesInPrimary(o, secret) ? remoteOrDeny(o.remote, secret, signal) : o.local.resolve(secret, signal);
    },
  };
}

/**
 * The primary's answer; when it cannot be had and down_policy kept nothing (extend-cache or
 * async-cache with no cached identity), deny everything, as Consul's resolver answers with its
 * down authorizer rather than an error.
 */
async function remoteOrDeny(remote: AclResolver, secret: string, signal?: AbortSignal): Promise<Identity> {
  try {
    return await remote.resolve(secret, signal);
  } catch (err) {
    if (err instanceof HttpError && err.statusCode === 403) throw err;
    return { accessorId: '', authorizer: staticAuthorizer(false) };
  }
}
