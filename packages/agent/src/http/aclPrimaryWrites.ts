// Which ACL writes a secondary datacenter sends to the primary (Consul's ACL endpoints forward there
// whenever !InPrimaryDatacenter(), except for local tokens): every policy and role write, and writes
// of global tokens (Local = false). A token's Local is the stored row's when this datacenter has it
// (a global token is also here once replicated), else the request body's; an unknown token's
// update or delete goes to the primary, which may hold it before replication has brought it here.
// The primary's rows then come back through ACL replication (server/aclReplication.ts).
import type { StateReader } from '../state/index.ts';

const ALWAYS = new Set(['/v1/acl/policy', '/v1/acl/policy/', '/v1/acl/role', '/v1/acl/role/']);

function bodyLocal(body: Buffer | undefined): boolean {
  if (!body || body.length === 0) return false;
  try {
    const b = JSON.parse(body.toString('utf8')) as unknown;
    return typeof b === 'object' && b !== null && (b as Record<string, unknown>).Local === true;
  } catch {
    return false;
  }
}

/** Whether a write to the ACL endpoint `specPath` (rest: what follows a prefix path) belongs to the primary. */
export function aclWriteInPrimary(specPath: string, method: string, rest: string, body: Buffer | undefined, store: StateReader): boolean {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return false;
  if (ALWAYS.has(specPath)) return true;
  if (specPath === '/v1/acl/token') return !bodyLocal(body);
  if (specPath !== '/v1/acl/token/') return false;
  const [id = '', action = ''] = rest.split('/');
  const stored = id === '' || id === 'self' ? null : store.aclToken(id).value;
  if (action === 'clone') return stored ? !stored.Local : true;
  if (method === 'DELETE') return stored ? !stored.Local : true;
  return stored ? !stored.Local : !bodyLocal(body);
}
