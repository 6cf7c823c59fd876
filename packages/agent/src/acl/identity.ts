// Fixed identities of Consul's ACL system and the texts its refusals carry (acl/errors.go,
// agent/structs/acl.go). Pure.
import type { Authorizer, Permission, Resource } from './authorizer.ts';

/** The anonymous token: used when a request carries no token (structs.ACLTokenAnonymousID). */
export const ANONYMOUS_ACCESSOR_ID = '00000000-0000-0000-0000-000000000002';
export const ANONYMOUS_SECRET_ID = 'anonymous';
/** The builtin global-management policy (structs.ACLPolicyGlobalManagementID). */
export const GLOBAL_MANAGEMENT_POLICY_ID = '00000000-0000-0000-0000-000000000001';
export const GLOBAL_MANAGEMENT_POLICY_NAME = 'global-management';
/** Tokens longer than this are refused before any lookup (Consul's IDs are 36 characters). */
export const MAX_SECRET_LENGTH = 256;

/** Who a request is: the token's AccessorID (never its secret) and what it may do. */
export interface Identity {
  accessorId: string;
  authorizer: Authorizer;
}

export const ERR_PERMISSION_DENIED = 'Permission denied';
export const ERR_ACL_NOT_FOUND = 'ACL not found';

/** Consul's PermissionDeniedError text for a refused check. */
export function permissionDeniedMessage(accessorId: string, resource: Resource, permission: Permission, name?: string): string {
  const res = resource === 'intention' ? 'intention' : resource;
  const who = accessorId === ANONYMOUS_ACCESSOR_ID ? 'anonymous token' : `token with AccessorID '${accessorId}'`;
  let msg = `${ERR_PERMISSION_DENIED}: ${who} lacks permission '${res}:${permission}'`;
  if (name !== undefined && name !== '') msg += ` on ${JSON.stringify(name)}`;
  if (accessorId === ANONYMOUS_ACCESSOR_ID) msg += '. The anonymous token is used implicitly when a request does not specify a token.';
  return msg;
}

/** Compares two secrets in time that depends on their lengths only, never on where they differ. */
export function secretsEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i % (a.length || 1)) | 0) ^ (b.charCodeAt(i % (b.length || 1)) | 0);
  return diff === 0;
}

/** Why a token string is refused before any lookup; undefined when it may be looked up. */
export function badSecret(secret: string): string | undefined {
  if (secret.length > MAX_SECRET_LENGTH) return `ACL token is too long (${secret.length} characters, at most ${MAX_SECRET_LENGTH})`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(secret)) return 'ACL token contains a control character';
  return undefined;
}
