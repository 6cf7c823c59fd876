// Test harness for the HTTP API: a real StateStore behind a unit-level stand-in for Raft (every
// command is applied synchronously at the next index), a LocalState for this node, and the fastify
// app for `inject`. End-to-end tests against the real agent process live elsewhere.

import type { LightMyRequestResponse } from 'fastify';
import { defaults } from '../../src/config/runtime.ts';
import type { RuntimeConfig } from '../../src/config/runtime.ts';
import { decodeCommand, encodeCommand } from '../../src/state/codec.ts';
import { StateStore } from '../../src/state/store.ts';
import type { Command, CommandResult } from '../../src/state/types.ts';
import type { AgentBackend, RaftStatus, SessionTimers } from '../../src/http/backend.ts';
import { LocalState, catalogStateFromStore } from '../../src/local/state.ts';
import type { Timers } from '../../src/checks/probe.ts';
import { createHttpServer, type HttpServer } from '../../src/http/server.ts';

export const NODE = 'node1';
export const NODE_ID = '11111111-2222-4333-8444-555555555555';

export interface Harness {
  store: StateStore;
  backend: AgentBackend;
  server: HttpServer;
  /** Commands proposed so far (after any `failApply`). */
  applied: Command[];
  raft: RaftStatus;
  /** When set, apply() rejects with this error instead of applying. */
  failApply: (Error & { code?: string }) | undefined;
  renewed: string[];
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  json<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T; headers: Record<string, unknown> }>;
  /** Applies a command directly (as another client would through Raft). */
  apply(cmd: Command): CommandResult;
  close(): Promise<void>;
}

export interface HarnessOptions {
  config?: Partial<RuntimeConfig>;
  logger?: import('pino').Logger;
  timers?: Timers;
  random?: () => number;
  sessionTimers?: boolean;
  /** Awaited before each proposed command is applied: a test holds a Raft write back with it. */
  beforeApply?: (cmd: Command) => Promise<void> | void;
  /** ACLs on (with config.acl.enabled): how tokens resolve, built from the harness's store. */
  acl?: (store: StateStore, config: RuntimeConfig) => import('../../src/http/aclResolve.ts').AclBackend;
}

export function harness(opts: HarnessOptions = {}): Harness {
  const store = new StateStore();
  let nextIndex = 1;
  const applied: Command[] = [];
  const raft: RaftStatus = { leaderAddr: '127.0.0.1:8300', knownLeader: true, lastContactMs: 0, peers: ['127.0.0.1:8300'] };
  const config: RuntimeConfig = {
    ...defaults(),
    nodeName: NODE,
    nodeId: NODE_ID,
    serverMode: true,
    advertiseAddrLan: '127.0.0.1',
    ...opts.config,
  };
  const h = {
    store,
    applied,
    raft,
    failApply: undefined as (Error & { code?: string }) | undefined,
    renewed: [] as string[],
  } as Harness;
  const applyNow = (cmd: Command): CommandResult =>
    // Through the real Raft entry codec, as the server wiring does: it stamps `now` (lock delays)
    // and proves every command the HTTP layer builds survives encoding.
    store.apply(nextIndex++, decodeCommand(encodeCommand(cmd)));
  h.apply = applyNow;
  const apply = async (cmd: Command): Promise<CommandResult> => {
    if (h.failApply) throw h.failApply;
    if (opts.beforeApply) await opts.beforeApply(cmd);
    applied.push(cmd);
    return applyNow(cmd);
  };
  const local = new LocalState({
    node: { Node: NODE, ID: NODE_ID, Address: '127.0.0.1', Datacenter: config.datacenter, TaggedAddresses: {}, Meta: {} },
    apply,
    catalogState: catalogStateFromStore(store),
    ...(opts.timers ? { timers: opts.timers } : {}),
    sidecarPorts: { min: config.ports.sidecarMinPort, max: config.ports.sidecarMaxPort },
  });
  const sessionTimers: SessionTimers = { renew: (id) => void h.renewed.push(id) };
  const backend: AgentBackend = {
    store,
    apply,
    consistentRead: async () => {},
    raftStatus: () => ({ ...raft, peers: [...raft.peers] }),
    config,
    local,
    ...(opts.sessionTimers === false ? {} : { sessionTimers }),
    ...(opts.acl ? { acl: opts.acl(store, config) } : {}),
  };
  // What the server wiring does at start: this node and its serfHealth check.
  applyNow({
    type: 'catalogRegister', Node: NODE, ID: NODE_ID, Address: '127.0.0.1', Datacenter: config.datacenter,
    Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Output: 'Agent alive and reachable' },
  });
  const server = createHttpServer(backend, {
    host: '127.0.0.1', port: 0, ...(opts.random ? { random: opts.random } : {}), ...(opts.logger ? { logger: opts.logger } : {}),
  });
  h.backend = backend;
  h.server = server;
  h.req = (method, url, body, headers = {}) =>
    server.app.inject({
      method: method as never,
      url,
      headers,
      ...(body === undefined ? {} : { payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
    });
  h.json = async (method, url, body) => {
    const res = await h.req(method, url, body);
    let parsed: unknown = res.body;
    if (String(res.headers['content-type'] ?? '').startsWith('application/json')) parsed = JSON.parse(res.body);
    return { status: res.statusCode, body: parsed as never, headers: res.headers as Record<string, unknown> };
  };
  h.close = async () => {
    local.close();
    await server.close();
  };
  return h;
}

/** A deterministic fake clock for TTL timers. */
export class FakeTimers implements Timers {
  now = 0;
  #next = 1;
  readonly #pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#pending) if (e[1].at <= until && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.#pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
  }
  get pending(): number {
    return this.#pending.size;
  }
}

/** Resolves after the microtask/IO queue has drained a few times. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
