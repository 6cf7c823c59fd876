// Where the three datacenters of SCENARIOS.md A5–A7 live. Two modes:
//
//   netns     each datacenter in its own network namespace (test/support/netns.ts: a bridge
//             namespace, one veth per datacenter, one veth from the test's namespace). Inside
//             every namespace the services bind the SAME address (127.0.0.1) and the SAME ports as
//             in the others: overlapping addresses for real. Across namespaces only the mesh
//             gateway's WAN port and the server's RPC and WAN gossip ports (federation needs them)
//             are let through (with `wanfed`, WAN federation through mesh gateways: the gateway's
//             WAN port only; server RPC and WAN gossip cross the gateways), by an nftables table of this module's own (trellis_fed) in each
//             namespace; the test process (the host address) reaches everything, as a user would.
//   loopback  when namespaces cannot be made (not root, no ip/nft): every datacenter on
//             127.0.0.1 with ports of its own. Nothing overlaps; the suite says so in its output.
//
// Every process is started through start(): `ip netns exec <ns> <cmd> ...` in netns mode (ip execs
// the command, and the launcher execs Node, so the pid held is the process itself), the command
// itself on loopback. Processes are killed when the test process exits or is signalled.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Netns, netnsUnavailable } from '../../support/netns.ts';
import { binDir, freePort, launcher, trellisEnv } from '../../support/index.ts';

export const DATACENTERS = ['onprem', 'cloud', 'space'] as const;
export type Dc = (typeof DATACENTERS)[number];

/**
 * Port slots. In netns mode every datacenter uses the same number for a slot; the cast puts
 * services of different datacenters in the same slot (api in web's, backend in payments-v1's,
 * cloud's currency in onprem currency's), so a sidecar that dialled an address of another
 * datacenter directly would reach a local process, never the remote one.
 */
export const SLOTS = ['http', 'dns', 'server', 'serfLan', 'serfWan', 'gwLan', 'gwWan', 'gwMetrics',
  'front', 'frontSidecar', 'frontUpstream', 'p1', 'p1Sidecar', 'p1Upstream', 'p2', 'p2Sidecar', 'p2Upstream',
  'currency', 'currencySidecar', 'currencyUpstream'] as const;
export type Slot = (typeof SLOTS)[number];

/** A process started in a datacenter; its output is kept (the last 30 kB) for failure reports. */
export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  #out = '';
  readonly exited: Promise<void>;
  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    const keep = (b: Buffer) => { this.#out = (this.#out + b.toString()).slice(-30_000); };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    live.add(this);
    this.exited = new Promise((resolve) => child.once('exit', () => { live.delete(this); resolve(); }));
    child.once('error', (err) => { this.#out += `\n[spawn failed: ${err.message}]`; });
  }
  get pid(): number | undefined { return this.child.pid; }
  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }
  output(): string { return this.#out; }
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (this.running) this.child.kill('SIGKILL'); }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const live = new Set<Proc>();
const killAll = () => { for (const p of live) if (p.running) p.child.kill('SIGKILL'); };
process.on('exit', killAll);
// once: a listener left in place would keep the process alive when netns.ts and agentProcess.ts
// raise the signal again to die of it.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, killAll);

export interface Site {
  dc: Dc;
  /** The namespace (netns mode). */
  ns?: string;
  /** Where this datacenter's services, sidecars and the gateway's LAN side bind: 127.0.0.1 in both modes. */
  lanHost: string;
  /** The datacenter's address on the WAN: the server, the gateway's WAN side, and what the user reaches. */
  wanHost: string;
  ports: Record<Slot, number>;
  /** A temp directory for this datacenter (data dir, config, pid file). */
  dir: string;
}

export class Topology {
  readonly mode: 'netns' | 'loopback';
  /** Why namespaces were not used (loopback mode). */
  readonly fallbackReason: string;
  readonly sites: Record<Dc, Site>;
  readonly net: Netns | undefined;
  readonly root: string;

  /** Server RPC ports closed between datacenters (WAN federation through mesh gateways). */
  wanfed = false;

  private constructor(mode: 'netns' | 'loopback', reason: string, sites: Record<Dc, Site>, netns: Netns | undefined, root: string) {
    this.mode = mode;
    this.fallbackReason = reason;
    this.sites = sites;
    this.net = netns;
    this.root = root;
  }

  /**
   * Namespaces when this machine allows them (TRELLIS_FED_LOOPBACK=1 forces the fallback), else
   * loopback. Prints which, and why, on stdout.
   */
  static async create(log: (line: string) => void = (l) => process.stdout.write(`# ${l}\n`), o: { wanfed?: boolean } = {}): Promise<Topology> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-fed-'));
    let reason = process.env['TRELLIS_FED_LOOPBACK'] === '1' ? 'TRELLIS_FED_LOOPBACK=1' : netnsUnavailable();
    let netns: Netns | undefined;
    if (!reason) {
      try {
        netns = await Netns.create({ members: [...DATACENTERS] });
      } catch (err) {
        reason = `creating the namespaces failed: ${(err as Error).message}`;
      }
    }
    const shared: Partial<Record<Slot, number>> = {};
    const sites = {} as Record<Dc, Site>;
    for (const dc of DATACENTERS) {
      const ports = {} as Record<Slot, number>;
      for (const s of SLOTS) {
        // One number per slot for all datacenters in netns mode (overlapping), one per dc on loopback.
        const udp = s === 'dns' || s === 'serfLan' || s === 'serfWan';
        ports[s] = netns ? (shared[s] ??= await freePort({ udp })) : await freePort({ udp });
      }
      const dir = path.join(root, dc);
      fs.mkdirSync(dir, { recursive: true });
      sites[dc] = netns
        ? { dc, ns: netns.member(dc).ns, lanHost: '127.0.0.1', wanHost: netns.address(dc), ports, dir }
        : { dc, lanHost: '127.0.0.1', wanHost: '127.0.0.1', ports, dir };
    }
    const topo = new Topology(netns ? 'netns' : 'loopback', reason, sites, netns, root);
    topo.wanfed = o.wanfed === true;
    if (netns) {
      for (const dc of DATACENTERS) await topo.#firewall(sites[dc]);
      log(`federation topology: network namespaces ${DATACENTERS.map((d) => `${sites[d].ns} (${d}, WAN ${sites[d].wanHost})`).join(', ')}; ` +
        `services bind 127.0.0.1 with the same ports in every datacenter; only ${topo.wanfed ? 'the gateway WAN port crosses (server RPC and WAN gossip only through the gateways)' : 'gateway WAN and server RPC/WAN gossip ports cross'}`);
    } else {
      log(`federation topology: LOOPBACK FALLBACK (no network namespaces: ${reason}); every datacenter on 127.0.0.1 with ports of its own, ` +
        'so addresses do NOT overlap and nothing but good behaviour keeps traffic on the gateways');
    }
    return topo;
  }

  /** Only the gateway's WAN port and the server's RPC and WAN gossip ports (wanfed: the gateway's WAN port alone) accept packets from other datacenters. */
  async #firewall(site: Site): Promise<void> {
    const n = this.net!;
    const p = site.ports;
    const script = [
      'table inet trellis_fed {}',
      'delete table inet trellis_fed',
      'table inet trellis_fed {',
      '  chain input { type filter hook input priority 10; policy accept;',
      '    iifname "lo" accept;',
      '    ct state established,related accept;',
      `    ip saddr ${n.hostAddress} accept;`,
      // wanfed: the gateway's WAN port only (server RPC and WAN gossip both cross the gateways).
      ...(this.wanfed
        ? [`    ip saddr ${n.subnet}.0/24 tcp dport ${p.gwWan} accept;`]
        : [`    ip saddr ${n.subnet}.0/24 tcp dport { ${p.server}, ${p.gwWan}, ${p.serfWan} } accept;`, `    ip saddr ${n.subnet}.0/24 udp dport ${p.serfWan} accept;`]),
      `    ip saddr ${n.subnet}.0/24 drop;`,
      '  }',
      '}',
    ].join('\n');
    await n.exec(site.dc, 'nft', ['-f', '-'], `${script}\n`);
  }

  /** Starts `cmd args` in the datacenter (inside its namespace in netns mode). */
  start(dc: Dc, name: string, cmd: string, args: string[], env: Record<string, string | undefined> = {}): Proc {
    const site = this.sites[dc];
    const [file, argv] = site.ns ? ['ip', ['netns', 'exec', site.ns, cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { env: trellisEnv(env), stdio: ['ignore', 'pipe', 'pipe'], cwd: site.dir });
    return new Proc(`${dc}/${name}`, child);
  }

  trellis(dc: Dc, name: string, args: string[]): Proc {
    return this.start(dc, name, launcher, args);
  }

  /** A test app (test/fixtures/testApp.ts) as a process of its own. */
  app(dc: Dc, name: string, display: string, listen: string, upstreams: string[]): Proc {
    const script = path.join(import.meta.dirname, '..', '..', 'fixtures', 'testApp.ts');
    return this.start(dc, name, path.join(binDir, 'node'), [script, '-name', display, '-listen', listen, ...upstreams.flatMap((u) => ['-upstream', u])]);
  }

  /**
   * Can a TCP connection from inside `from` reach host:port? (netns mode; a bounded 3 s attempt.)
   * Used to show what crosses between datacenters and what does not.
   */
  async reachableFrom(from: Dc, host: string, port: number): Promise<boolean> {
    if (!this.net) throw new Error('reachableFrom needs network namespaces');
    const code = `const s=require('net').connect(${port},'${host}');s.setTimeout(3000,()=>process.exit(2));s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));`;
    try {
      await this.net.exec(from, path.join(binDir, 'node'), ['-e', code]);
      return true;
    } catch {
      return false;
    }
  }

  async destroy(): Promise<void> {
    killAll();
    await Promise.all([...live].map((p) => p.exited));
    await this.net?.destroy();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Resolves when something accepts TCP connections on host:port (one 1 s attempt). */
export function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
