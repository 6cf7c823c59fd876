// The KV calls the CLI's commands and recipes share (Consul's api/kv.go, the part we use).
import { keyPath, type ApiClient } from '../http.ts';

export interface KVPair {
  Key: string;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  /** uint64: a bigint when above 2^53 (lock/semaphore markers are). */
  Flags: number | bigint;
  Value: string | null;
  Session?: string;
}

export async function kvGet(client: ApiClient, key: string, opts: { consistent?: boolean; index?: bigint; wait?: string; signal?: AbortSignal } = {}): Promise<{ pair: KVPair | undefined; index: bigint }> {
  const res = await client.json<KVPair[]>('GET', `/v1/kv/${keyPath(key)}`, {
    query: { consistent: opts.consistent, index: opts.index && opts.index > 0n ? opts.index : undefined, wait: opts.index && opts.index > 0n ? opts.wait : undefined },
    accept: [404],
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { pair: res.status === 404 ? undefined : res.value?.[0], index: res.index };
}

export async function kvList(client: ApiClient, prefix: string, opts: { consistent?: boolean; index?: bigint; wait?: string; signal?: AbortSignal } = {}): Promise<{ pairs: KVPair[]; index: bigint }> {
  const res = await client.json<KVPair[]>('GET', `/v1/kv/${keyPath(prefix)}`, {
    query: { recurse: true, consistent: opts.consistent, index: opts.index && opts.index > 0n ? opts.index : undefined, wait: opts.index && opts.index > 0n ? opts.wait : undefined },
    accept: [404],
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { pairs: res.status === 404 ? [] : (res.value ?? []), index: res.index };
}

/** PUT /v1/kv/<key>; true/false is the agent's answer (false: CAS or lock not obtained). */
export async function kvPut(client: ApiClient, key: string, value: Uint8Array, q: { flags?: bigint | number; cas?: bigint | number; acquire?: string; release?: string } = {}): Promise<boolean> {
  const res = await client.request('PUT', `/v1/kv/${keyPath(key)}`, {
    query: {
      flags: q.flags !== undefined && BigInt(q.flags) !== 0n ? q.flags : undefined,
      cas: q.cas, acquire: q.acquire, release: q.release,
    },
    body: value,
  });
  return res.body.toString('utf8').trim() === 'true';
}

export async function kvDelete(client: ApiClient, key: string, q: { recurse?: boolean; cas?: bigint | number } = {}): Promise<boolean> {
  const res = await client.request('DELETE', `/v1/kv/${keyPath(key)}`, { query: { recurse: q.recurse, cas: q.cas } });
  return res.body.toString('utf8').trim() !== 'false';
}
