// A tiny Consul-shaped HTTP server for CLI tests: real sockets on 127.0.0.1:0, Consul's JSON shapes
// and status codes, an in-memory KV with sessions, acquire/release, CAS and blocking queries.
// It is an oracle for the CLI's wire behaviour, not a second agent: only what the CLI calls.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface FakeEntry {
  Key: string;
  Value: Buffer;
  Flags: bigint;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Session: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface FakeConsul {
  readonly addr: string;
  readonly requests: RecordedRequest[];
  readonly kv: Map<string, FakeEntry>;
  readonly sessions: Map<string, { Name: string; TTL: string; Behavior: string }>;
  /** Responses for read-only endpoints, set per test. */
  members: unknown[];
  datacenters: string[];
  nodes: unknown[];
  services: Record<string, string[]>;
  catalogNodes: Record<string, unknown>;
  serviceNodes: Record<string, unknown[]>;
  self: unknown;
  raftConfig: unknown;
  snapshot: Buffer;
  restored: Buffer | undefined;
  /** Forces the next responses of a path to an error status (e.g. 500 "No cluster leader"). */
  failures: Map<string, { status: number; body: string }>;
  index(): number;
  put(key: string, value: string, flags?: bigint): void;
  /** Invalidates a session as its TTL expiry would (release or delete its locks). */
  invalidateSession(id: string): void;
  close(): Promise<void>;
}

function bigJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `__big__${x}` : x)).replace(/"__big__(\d+)"/g, '$1');
}

export async function startFakeConsul(): Promise<FakeConsul> {
  let index = 10;
  const waiters = new Set<() => void>();
  const bump = () => {
    index++;
    for (const w of [...waiters]) w();
  };

  const state: Omit<FakeConsul, 'addr' | 'close'> = {
    requests: [],
    kv: new Map(),
    sessions: new Map(),
    members: [],
    datacenters: ['dc1'],
    nodes: [],
    services: {},
    catalogNodes: {},
    serviceNodes: {},
    self: { Config: { NodeName: 'n1', Datacenter: 'dc1' }, Stats: {} },
    raftConfig: { Servers: [], Index: 1 },
    snapshot: Buffer.from('snapshot-bytes'),
    restored: undefined,
    failures: new Map(),
    index: () => index,
    put(key, value, flags = 0n) {
      bump();
      const prev = state.kv.get(key);
      state.kv.set(key, { Key: key, Value: Buffer.from(value), Flags: flags, CreateIndex: prev?.CreateIndex ?? index, ModifyIndex: index, LockIndex: prev?.LockIndex ?? 0, Session: prev?.Session ?? '' });
    },
    invalidateSession(id) {
      const s = state.sessions.get(id);
      if (!s) return;
      state.sessions.delete(id);
      bump();
      for (const [k, e] of state.kv) {
        if (e.Session !== id) continue;
        if (s.Behavior === 'delete') state.kv.delete(k);
        else state.kv.set(k, { ...e, Session: '', ModifyIndex: index });
      }
    },
  };

  const toJson = (e: FakeEntry) => ({
    LockIndex: e.LockIndex, Key: e.Key, Flags: e.Flags, Value: e.Value.length ? e.Value.toString('base64') : null,
    CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex, ...(e.Session ? { Session: e.Session } : {}),
  });

  async function blockIfAsked(q: URLSearchParams): Promise<void> {
    const want = Number(q.get('index') ?? 0);
    if (!(want > 0) || index > want) return;
    const waitMs = Math.min(parseWait(q.get('wait')), 10_000);
    await new Promise<void>((resolve) => {
      const done = () => { clearTimeout(t); waiters.delete(done); resolve(); };
      const t = setTimeout(done, waitMs);
      waiters.add(done);
    });
  }

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    const q = url.searchParams;
    state.requests.push({ method: req.method ?? '', path, query: q, headers: req.headers, body });
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      const text = typeof payload === 'string' ? payload : bigJson(payload);
      res.writeHead(status, { 'Content-Type': typeof payload === 'string' ? 'text/plain' : 'application/json', 'X-Consul-Index': String(index), 'X-Consul-KnownLeader': 'true', ...headers });
      res.end(text);
    };
    const failure = state.failures.get(path);
    if (failure) return send(failure.status, failure.body);

    if (path.startsWith('/v1/kv/')) {
      const key = path.slice('/v1/kv/'.length);
      if (req.method === 'GET') {
        await blockIfAsked(q);
        if (q.has('keys')) {
          const sep = q.get('separator') ?? '';
          const keys = new Set<string>();
          for (const k of [...state.kv.keys()].sort()) {
            if (!k.startsWith(key)) continue;
            const rest = k.slice(key.length);
            const at = sep ? rest.indexOf(sep) : -1;
            keys.add(at >= 0 ? k.slice(0, key.length + at + sep.length) : k);
          }
          return keys.size ? send(200, [...keys]) : send(404, '');
        }
        if (q.has('recurse')) {
          const list = [...state.kv.values()].filter((e) => e.Key.startsWith(key)).sort((a, b) => (a.Key < b.Key ? -1 : 1)).map(toJson);
          return list.length ? send(200, list) : send(404, '');
        }
        const e = state.kv.get(key);
        return e ? send(200, [toJson(e)]) : send(404, '');
      }
      if (req.method === 'PUT') {
        const flags = BigInt(q.get('flags') ?? '0');
        const prev = state.kv.get(key);
        if (q.has('cas')) {
          const cas = Number(q.get('cas'));
          if ((cas === 0 && prev) || (cas !== 0 && prev?.ModifyIndex !== cas)) return send(200, false);
        }
        let session = prev?.Session ?? '';
        let lockIndex = prev?.LockIndex ?? 0;
        if (q.has('acquire')) {
          const s = q.get('acquire')!;
          if (!state.sessions.has(s)) return send(500, `invalid session "${s}"`);
          if (prev?.Session && prev.Session !== s) return send(200, false);
          if (prev?.Session !== s) lockIndex++;
          session = s;
        } else if (q.has('release')) {
          const s = q.get('release')!;
          if (prev?.Session !== s) return send(200, false);
          session = '';
        }
        bump();
        state.kv.set(key, { Key: key, Value: body, Flags: flags, CreateIndex: prev?.CreateIndex ?? index, ModifyIndex: index, LockIndex: lockIndex, Session: session });
        return send(200, true);
      }
      if (req.method === 'DELETE') {
        if (q.has('recurse')) {
          for (const k of [...state.kv.keys()]) if (k.startsWith(key)) state.kv.delete(k);
          bump();
          return send(200, true);
        }
        const prev = state.kv.get(key);
        if (q.has('cas') && prev?.ModifyIndex !== Number(q.get('cas'))) return send(200, false);
        state.kv.delete(key);
        bump();
        return send(200, true);
      }
    }
    if (path === '/v1/session/create' && req.method === 'PUT') {
      const b = JSON.parse(body.toString() || '{}');
      const id = randomUUID();
      state.sessions.set(id, { Name: b.Name ?? '', TTL: b.TTL ?? '', Behavior: b.Behavior ?? 'release' });
      bump();
      return send(200, { ID: id });
    }
    if (path.startsWith('/v1/session/renew/') && req.method === 'PUT') {
      const s = state.sessions.get(path.slice('/v1/session/renew/'.length));
      return s ? send(200, [{ ID: path.slice('/v1/session/renew/'.length), TTL: s.TTL }]) : send(404, 'Session id not found');
    }
    if (path.startsWith('/v1/session/destroy/') && req.method === 'PUT') {
      state.invalidateSession(path.slice('/v1/session/destroy/'.length));
      return send(200, true);
    }
    if (path === '/v1/agent/members') return send(200, state.members);
    if (path === '/v1/agent/self') return send(200, state.self);
    if (path === '/v1/agent/leave' || path === '/v1/agent/reload') return req.method === 'PUT' ? send(200, '') : send(405, 'method not allowed');
    if (path === '/v1/agent/service/register') return send(200, '');
    if (path.startsWith('/v1/agent/service/deregister/')) return send(200, '');
    if (path === '/v1/catalog/datacenters') return send(200, state.datacenters);
    if (path === '/v1/catalog/nodes') return send(200, state.nodes);
    if (path === '/v1/catalog/services') return send(200, state.services);
    if (path.startsWith('/v1/catalog/node/')) {
      const n = state.catalogNodes[path.slice('/v1/catalog/node/'.length)];
      return n ? send(200, n) : send(404, '');
    }
    if (path.startsWith('/v1/catalog/service/')) return send(200, state.serviceNodes[path.slice('/v1/catalog/service/'.length)] ?? []);
    if (path === '/v1/operator/raft/configuration') return send(200, state.raftConfig);
    if (path === '/v1/operator/raft/peer') {
      if (req.method !== 'DELETE') return send(405, 'method not allowed');
      if (!q.get('id') && !q.get('address')) return send(400, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove");
      return send(200, '');
    }
    if (path === '/v1/operator/raft/transfer-leader') {
      return req.method === 'POST' ? send(200, { Success: true }) : send(405, 'method not allowed');
    }
    if (path === '/v1/snapshot') {
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'application/x-gzip', 'X-Consul-Index': String(index), 'Content-Length': String(state.snapshot.length) });
        return res.end(state.snapshot);
      }
      state.restored = body;
      return send(200, '');
    }
    send(404, `no fake for ${req.method} ${path}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    addr: `127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => {
      for (const w of [...waiters]) w();
      server.closeAllConnections();
      server.close(() => r());
    }),
  }) as FakeConsul;
}

function parseWait(w: string | null): number {
  const m = /^(\d+)(ms|s|m)$/.exec(w ?? '');
  if (!m) return 5 * 60_000;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}
