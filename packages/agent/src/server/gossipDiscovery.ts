// ServerDiscovery over the LAN gossip pool, as Consul's servers find each other: every member
// whose serf tags say role=consul (tags.ts parseServer) is a server, reachable on the member's
// address at its `port` tag. Its status is the member's: alive (or suspect) → 'alive', dead →
// 'failed', left → 'left'; a reaped member is no longer listed.
import { EventEmitter } from 'node:events';
import { parseServer } from '../gossip/tags.ts';
import type { GossipPool } from '../gossip/libp2p/pool.ts';
import type { MemberState } from '../gossip/core/types.ts';
import type { Logger } from '../logger.ts';
import type { DiscoveredServer, ServerDiscovery, ServerStatus } from './discovery.ts';

export function serverStatusOf(state: MemberState): ServerStatus {
  return state === 'dead' ? 'failed' : state === 'left' ? 'left' : 'alive';
}

export class GossipDiscovery implements ServerDiscovery {
  readonly #pool: Pick<GossipPool, 'memberViews' | 'onMembershipChange'>;
  readonly #selfId: string;
  readonly #events = new EventEmitter();
  readonly #log: Logger | undefined;
  /** Servers already logged as discovered. */
  readonly #known = new Set<string>();
  readonly #onMember = (): void => {
    if (this.#log) {
      for (const s of this.servers()) {
        if (this.#known.has(s.id)) continue;
        this.#known.add(s.id);
        this.#log.info({ id: s.id, name: s.name, address: s.raftAddr, dc: s.dc, expect: s.expect }, 'discovered server');
      }
    }
    this.#events.emit('change');
  };
  /** Set while started: stops listening to the pool. */
  #unsubscribe: (() => void) | undefined;

  constructor(pool: Pick<GossipPool, 'memberViews' | 'onMembershipChange'>, selfId: string, logger?: Logger) {
    this.#pool = pool;
    this.#selfId = selfId;
    this.#log = logger?.child({ component: 'agent.server.discovery' });
  }

  servers(): DiscoveredServer[] {
    const out: DiscoveredServer[] = [];
    for (const m of this.#pool.memberViews()) {
      const s = parseServer(m);
      if (!s || !s.id || s.id === this.#selfId) continue;
      out.push({
        id: s.id, name: s.name, raftAddr: s.rpcAddr, dc: s.datacenter, expect: s.expect, bootstrap: s.bootstrap,
        version: s.build, status: serverStatusOf(m.state),
      });
    }
    return out;
  }

  on(event: 'change', fn: () => void): void {
    this.#events.on(event, fn);
  }

  off(event: 'change', fn: () => void): void {
    this.#events.off(event, fn);
  }

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.#pool.onMembershipChange(this.#onMember);
    this.#onMember();
  }

  stop(): void {
    if (!this.#unsubscribe) return;
    this.#unsubscribe();
    this.#unsubscribe = undefined;
    this.#events.removeAllListeners();
  }
}
