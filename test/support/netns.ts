// Network namespaces for tests that need real network faults: a bridge namespace holding a Linux
// bridge, N member namespaces each joined to it by a veth pair, and one veth from the test's own
// (root) namespace into the bridge so the test process can reach every member directly. Faults are
// nftables rules inside the member namespaces (their input hook), so they are real packet drops:
//
//   const net = await Netns.create({ members: ['s1', 's2', 's3'] });   // 10.x.y.2, .3, .4; host .254
//   const child = net.spawn('s1', launcher, ['agent', '-bind', net.address('s1'), ...]);
//   await net.partition([['s1'], ['s2', 's3']]);       // symmetric
//   await net.dropOneWay(['s1'], ['s2']);               // s2 stops hearing s1 (s1 still hears s2)
//   await net.ring();                                   // Jepsen's majorities-ring
//   await net.loss(20);                                 // 20% of packets between members dropped
//   await net.heal();
//   await net.destroy();                                // also on exit, SIGINT, SIGTERM
//
// The test process's own address (hostAddress) is never dropped: a client co-located with each
// node, as in Jepsen, so faults cut members off from each other, not from the observer.
//
// Names: every namespace and the root-namespace veth start with a prefix unique to the run
// (`tn<pid base36><random>`, at most 15 characters with suffixes as Linux interface names require);
// create() refuses a prefix whose namespace or link already exists rather than reuse or delete
// something it did not make. Needs root, iproute2 and nftables: ensureNetnsTools() installs the
// Debian packages (deploy/install-netns-deps.sh) when missing.
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './paths.ts';

export interface NetnsOptions {
  /** Member names (letters, digits, '-'; at most 8 characters), or a count (members m1..mN). */
  members: string[] | number;
  /** Name prefix for namespaces and links (letters, digits; at most 8 characters). Default: unique per run. */
  prefix?: string;
  /**
   * The /24 to use, as its first three octets ("10.213.7"). Default: a random 10.213-222.x.0/24 that
   * no route on this machine covers yet.
   */
  subnet?: string;
}

export interface Member {
  name: string;
  /** Its namespace (`ip netns exec <ns> ...`). */
  ns: string;
  address: string;
}

/** drop[m] = the members whose packets m's input hook drops. */
export type Grudge = Map<string, Set<string>>;

const TABLE = 'trellis_chaos';

/** Every topology not yet destroyed, torn down synchronously when the process exits or is signalled. */
const live = new Set<Netns>();
let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => { for (const n of live) n.destroySync(); });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const n of live) n.destroySync();
      process.kill(process.pid, sig);
    });
  }
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

function runSync(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** Installs iproute2 and nftables when missing (Debian, needs root); throws with what is missing. */
export function ensureNetnsTools(): void {
  const r = spawnSync('bash', [path.join(repoRoot, 'deploy', 'install-netns-deps.sh')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`network namespaces: deploy/install-netns-deps.sh failed: ${(r.stderr || r.stdout).trim()}`);
}

/** Why this machine cannot run namespace tests ('' when it can): root, `ip netns`, nft. */
export function netnsUnavailable(): string {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!runSync('ip', ['-V']).ok) return 'iproute2 (ip) is not installed';
  if (!runSync('nft', ['--version']).ok) return 'nftables (nft) is not installed';
  return '';
}

export function namespaceExists(name: string): boolean {
  return runSync('ip', ['netns', 'list']).out.split('\n').some((l) => l.split(' ')[0] === name);
}

function linkExists(name: string): boolean {
  return runSync('ip', ['link', 'show', name]).ok;
}

function usedSubnets(): string {
  return runSync('ip', ['-4', 'route', 'show', 'table', 'all']).out;
}

/**
 * Claims of random subnets between plan() and the route build() adds: test files run in parallel
 * processes, and two that read the route table before either added its route could pick the same
 * /24 (the host would then have two routes to it and answer one topology through the other's link).
 * A claim is a directory made with mkdir (atomic) holding the claiming pid; a dead pid's claim is free.
 */
const CLAIMS = path.join(os.tmpdir(), 'trellis-netns-subnets');

function claimSubnet(subnet: string): boolean {
  fs.mkdirSync(CLAIMS, { recursive: true });
  const dir = path.join(CLAIMS, subnet);
  try {
    fs.mkdirSync(dir);
  } catch {
    let pid = 0;
    try { pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8')); } catch { /* being written, or gone */ }
    if (pid > 0 && pidAlive(pid)) return false;
    if (pid === 0) return false;
    fs.rmSync(dir, { recursive: true, force: true });
    try { fs.mkdirSync(dir); } catch { return false; }
  }
  fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
  return true;
}

function releaseSubnet(subnet: string): void {
  const dir = path.join(CLAIMS, subnet);
  try {
    if (Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8')) === process.pid) fs.rmSync(dir, { recursive: true, force: true });
  } catch { /* not ours, or already gone */ }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pickSubnet(): string {
  const routes = usedSubnets();
  for (let i = 0; i < 50; i++) {
    const s = `10.${213 + Math.floor(Math.random() * 10)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${s}.`) && claimSubnet(s)) return s;
  }
  throw new Error('network namespaces: no free 10.213-222.x.0/24 found');
}

export class Netns {
  readonly prefix: string;
  readonly subnet: string;
  readonly bridgeNs: string;
  /** The root namespace's end of the host veth. */
  readonly hostLink: string;
  readonly hostAddress: string;
  readonly members: Member[];
  #destroyed = false;
  #grudge: Grudge = new Map();
  #lossPercent = 0;
  /** Extra nft statements per member (dnat for relays, see redirect()). */
  #nat = new Map<string, string[]>();
  #outputDrops = new Map<string, string[]>();

  private constructor(prefix: string, subnet: string, names: string[]) {
    this.prefix = prefix;
    this.subnet = subnet;
    this.bridgeNs = `${prefix}-br`;
    this.hostLink = `${prefix}-h`;
    this.hostAddress = `${subnet}.254`;
    this.members = names.map((name, i) => ({ name, ns: `${prefix}-${name}`, address: `${subnet}.${i + 2}` }));
  }

  /**
   * Checks names before anything is made: a bad member name, a prefix in use (namespace or link),
   * a subnet already routed. Throws with what is wrong; makes nothing.
   */
  static plan(opts: NetnsOptions): Netns {
    const names = typeof opts.members === 'number' ? Array.from({ length: opts.members }, (_, i) => `m${i + 1}`) : opts.members;
    if (names.length === 0 || names.length > 250) throw new Error(`network namespaces: need 1 to 250 members, not ${names.length}`);
    for (const n of names) {
      if (!/^[A-Za-z0-9-]{1,8}$/.test(n)) throw new Error(`network namespaces: member name ${JSON.stringify(n)} must be 1-8 letters, digits or '-'`);
    }
    if (new Set(names).size !== names.length) throw new Error('network namespaces: member names must be distinct');
    const prefix = opts.prefix ?? `tn${(process.pid % 46656).toString(36)}${randomBytes(2).toString('hex').slice(0, 3)}`;
    if (!/^[A-Za-z0-9]{1,8}$/.test(prefix)) throw new Error(`network namespaces: prefix ${JSON.stringify(prefix)} must be 1-8 letters or digits`);
    const subnet = opts.subnet ?? pickSubnet();
    if (!/^10\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`network namespaces: subnet ${JSON.stringify(subnet)} must be the first three octets of a 10.x.y.0/24`);
    const net = new Netns(prefix, subnet, names);
    const taken = [net.bridgeNs, ...net.members.map((m) => m.ns)].filter(namespaceExists);
    if (taken.length > 0) {
      throw new Error(`network namespace ${taken.join(', ')} already exists; refusing to reuse or remove it (another run, or a leftover: \`ip netns del ${taken[0]}\`)`);
    }
    if (linkExists(net.hostLink)) throw new Error(`network link ${net.hostLink} already exists; refusing to reuse it (\`ip link del ${net.hostLink}\` if it is a leftover)`);
    if (opts.subnet !== undefined && usedSubnets().includes(`${subnet}.`)) throw new Error(`network namespaces: subnet ${subnet}.0/24 is already routed on this machine`);
    return net;
  }

  /** plan() then make it all; on any failure, removes what was made and rethrows. */
  static async create(opts: NetnsOptions): Promise<Netns> {
    const net = Netns.plan(opts);
    await net.build();
    return net;
  }

  async build(): Promise<void> {
    installExitHooks();
    live.add(this);
    try {
      await run('ip', ['netns', 'add', this.bridgeNs]);
      await run('ip', ['-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
      await run('ip', ['-n', this.bridgeNs, 'link', 'set', 'br0', 'up']);
      for (const [i, m] of this.members.entries()) {
        await run('ip', ['netns', 'add', m.ns]);
        const outer = `${this.prefix}-p${i}`;
        const inner = `${this.prefix}-v${i}`;
        await run('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer]);
        await run('ip', ['link', 'set', inner, 'netns', m.ns]);
        await run('ip', ['link', 'set', outer, 'netns', this.bridgeNs]);
        await run('ip', ['-n', m.ns, 'link', 'set', inner, 'name', 'eth0']);
        await run('ip', ['-n', m.ns, 'addr', 'add', `${m.address}/24`, 'dev', 'eth0']);
        await run('ip', ['-n', m.ns, 'link', 'set', 'eth0', 'up']);
        await run('ip', ['-n', m.ns, 'link', 'set', 'lo', 'up']);
        await run('ip', ['-n', this.bridgeNs, 'link', 'set', outer, 'master', 'br0']);
        await run('ip', ['-n', this.bridgeNs, 'link', 'set', outer, 'up']);
      }
      const outer = `${this.prefix}-ph`;
      await run('ip', ['link', 'add', this.hostLink, 'type', 'veth', 'peer', 'name', outer]);
      await run('ip', ['link', 'set', outer, 'netns', this.bridgeNs]);
      await run('ip', ['addr', 'add', `${this.hostAddress}/24`, 'dev', this.hostLink]);
      await run('ip', ['link', 'set', this.hostLink, 'up']);
      await run('ip', ['-n', this.bridgeNs, 'link', 'set', outer, 'master', 'br0']);
      await run('ip', ['-n', this.bridgeNs, 'link', 'set', outer, 'up']);
      for (const m of this.members) await this.#writeRules(m);
    } catch (err) {
      this.destroySync();
      throw err;
    }
  }

  member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`network namespaces: no member ${JSON.stringify(name)} (have ${this.members.map((x) => x.name).join(', ')})`);
    return m;
  }

  address(name: string): string {
    return this.member(name).address;
  }

  /** `ip netns exec <ns> cmd args…` as a child process (the pid is the command's own: ip execs it). */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.member(name).ns, cmd, ...args], opts);
  }

  /** Runs a command inside a member's namespace and returns its stdout (throws on a non-zero exit). */
  exec(name: string, cmd: string, args: string[], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.member(name).ns, cmd, ...args], input);
  }

  /** The current drops (a copy). */
  grudge(): Grudge {
    return new Map([...this.#grudge].map(([k, v]) => [k, new Set(v)]));
  }

  /** Replaces every drop rule: member m drops packets from each member in grudge[m]. */
  async setGrudge(grudge: Grudge): Promise<void> {
    for (const [k, v] of grudge) {
      this.member(k);
      for (const x of v) this.member(x);
    }
    this.#grudge = new Map([...grudge].map(([k, v]) => [k, new Set(v)]));
    await this.#writeAll();
  }

  /** Symmetric partition: members in different groups cannot reach each other. Members in no group keep every link. */
  partition(groups: string[][]): Promise<void> {
    return this.setGrudge(partitionGrudge(groups));
  }

  /** One-way: every member of `to` stops receiving from every member of `from` (the reverse direction works). */
  dropOneWay(from: string[], to: string[]): Promise<void> {
    return this.setGrudge(oneWayGrudge(from, to));
  }

  /** Cuts one member off from all others (both directions). */
  isolate(name: string): Promise<void> {
    return this.partition([[name], this.members.map((m) => m.name).filter((n) => n !== name)]);
  }

  /**
   * Jepsen's majorities-ring over `names` (default: all members, in order): each member reaches
   * the members next to it on a ring so that it sees a majority, and no two see the same majority.
   * Symmetric for 5 or more members (each sees its ⌊n/4⌋-ish neighbours on both sides); needs ≥ 5.
   */
  ring(names: string[] = this.members.map((m) => m.name)): Promise<void> {
    return this.setGrudge(ringGrudge(names));
  }

  /**
   * Jepsen's bridge: two halves that cannot reach each other and one member (the middle one) that
   * reaches both. Needs ≥ 3 members.
   */
  bridge(names: string[] = this.members.map((m) => m.name)): Promise<void> {
    return this.partition(bridgeGroups(names, 'network namespaces'));
  }

  /** Drops `percent`% of packets between members, at random (nft numgen), on every member's input. 0 removes it. */
  async loss(percent: number): Promise<void> {
    if (!(Number.isInteger(percent) && percent >= 0 && percent <= 100)) throw new RangeError(`network namespaces: loss must be an integer percentage 0-100, not ${percent}`);
    this.#lossPercent = percent;
    await this.#writeAll();
  }

  /**
   * In member `name`, new TCP connections to `dest`:`port` go to `to` (host:port) instead (nft dnat):
   * a user-space relay can then delay them. Connections already open to dest:port are dropped so
   * they reconnect through the relay. `undefined` removes every redirect of that member.
   */
  async redirect(name: string, rules: Array<{ dest: string; port: number; to: string }> | undefined): Promise<void> {
    this.member(name);
    if (!rules || rules.length === 0) {
      this.#nat.delete(name);
      this.#outputDrops.delete(name);
    } else {
      this.#nat.set(name, rules.map((r) => `ip daddr ${r.dest} tcp dport ${r.port} dnat to ${r.to}`));
      // Only packets of connections opened before the dnat still carry the original destination.
      this.#outputDrops.set(name, rules.map((r) => `ip daddr ${r.dest} tcp dport ${r.port} drop`));
    }
    await this.#writeRules(this.member(name));
  }

  /** Removes every drop, loss and redirect rule. */
  async heal(): Promise<void> {
    this.#grudge = new Map();
    this.#lossPercent = 0;
    this.#nat.clear();
    this.#outputDrops.clear();
    await this.#writeAll();
  }

  /** The nft ruleset in effect for a member (for reports and tests). */
  rules(name: string): Promise<string> {
    return this.exec(name, 'nft', ['list', 'ruleset']);
  }

  async #writeAll(): Promise<void> {
    await Promise.all(this.members.map((m) => this.#writeRules(m)));
  }

  /** One nft transaction per member: the table is replaced as a whole, so no half-applied state. */
  async #writeRules(m: Member): Promise<void> {
    const input: string[] = [];
    const dropFrom = [...(this.#grudge.get(m.name) ?? [])].map((n) => this.address(n));
    if (dropFrom.length > 0) input.push(`ip saddr { ${dropFrom.join(', ')} } drop`);
    if (this.#lossPercent === 100) input.push(`ip saddr != ${this.hostAddress} drop`);
    else if (this.#lossPercent > 0) input.push(`ip saddr != ${this.hostAddress} numgen random mod 100 < ${this.#lossPercent} drop`);
    const nat = this.#nat.get(m.name) ?? [];
    const out = this.#outputDrops.get(m.name) ?? [];
    const script = [
      `table inet ${TABLE} {}`,
      `delete table inet ${TABLE}`,
      `table inet ${TABLE} {`,
      `  chain input { type filter hook input priority 0; policy accept;`,
      ...input.map((r) => `    ${r};`),
      `  }`,
      `  chain output { type filter hook output priority 0; policy accept;`,
      ...out.map((r) => `    ${r};`),
      `  }`,
      `}`,
      `table ip ${TABLE}_nat {}`,
      `delete table ip ${TABLE}_nat`,
      `table ip ${TABLE}_nat {`,
      `  chain output { type nat hook output priority -100; policy accept;`,
      ...nat.map((r) => `    ${r};`),
      `  }`,
      `}`,
    ].join('\n');
    await this.exec(m.name, 'nft', ['-f', '-'], `${script}\n`);
  }

  /** Removes every namespace and link this topology made (idempotent). */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  /** Synchronous, for exit and signal handlers. Errors are ignored: best effort over everything. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    // Deleting a namespace deletes its veth ends and their peers; the host link is removed
    // explicitly because namespace teardown is asynchronous in the kernel.
    runSync('ip', ['link', 'del', this.hostLink]);
    for (const m of this.members) runSync('ip', ['netns', 'del', m.ns]);
    runSync('ip', ['netns', 'del', this.bridgeNs]);
    releaseSubnet(this.subnet);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }
}

/** Drops for a symmetric partition: members in different groups cannot reach each other. */
export function partitionGrudge(groups: string[][]): Grudge {
  const g: Grudge = new Map();
  groups.forEach((a, i) => groups.forEach((b, j) => {
    if (i === j) return;
    for (const x of a) {
      const s = g.get(x) ?? new Set<string>();
      for (const y of b) if (y !== x) s.add(y);
      g.set(x, s);
    }
  }));
  return g;
}

/** Drops for a one-way cut: every member of `to` stops receiving from every member of `from`. */
export function oneWayGrudge(from: string[], to: string[]): Grudge {
  const g: Grudge = new Map();
  for (const t of to) g.set(t, new Set(from.filter((f) => f !== t)));
  return g;
}

/** Jepsen's bridge as two groups: the halves either side of the middle member, which is in neither. */
export function bridgeGroups(names: string[], what: string): [string[], string[]] {
  if (names.length < 3) throw new Error(`${what}: a bridge needs at least 3 members`);
  const mid = Math.floor(names.length / 2);
  return [names.slice(0, mid), names.slice(mid + 1)];
}

/**
 * Majorities-ring drops: with members on a ring, each reaches its k nearest on each side, where
 * 2k + 1 is a majority; no two members see the same majority. Needs ≥ 5 (with 3 or 4 every
 * majority ring is one-directional, which TCP turns into a plain partition).
 */
export function ringGrudge(names: string[]): Grudge {
  const n = names.length;
  if (n < 5) throw new Error(`network namespaces: a majorities ring needs at least 5 members, not ${n}`);
  const majority = Math.floor(n / 2) + 1;
  const k = Math.ceil((majority - 1) / 2);
  const g: Grudge = new Map();
  names.forEach((name, i) => {
    const sees = new Set<string>();
    for (let d = -k; d <= k; d++) sees.add(names[(i + d + n) % n]!);
    g.set(name, new Set(names.filter((x) => !sees.has(x))));
  });
  return g;
}

/** The namespaces whose names start with `prefix` (e.g. leftovers of a killed run). */
export function namespacesWithPrefix(prefix: string): string[] {
  return runSync('ip', ['netns', 'list']).out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n && n.startsWith(`${prefix}-`));
}
