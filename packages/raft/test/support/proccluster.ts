// Starts kvnode.ts processes and talks to them over IPC. Used by the real-process test and bench:raft.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const script = path.join(import.meta.dirname, 'kvnode.ts');

// Ports come from the repository's shared test allocator: below the ephemeral range and reserved
// across the parallel test processes.
import { freePort } from '../../../../test/support/ports.ts';
export { freePort };

interface Proc { child: ChildProcess; waiters: Map<number, (m: any) => void>; exited: Promise<void> }

export class ProcCluster {
  readonly ids: string[];
  readonly addresses: Record<string, string> = {};
  private procs = new Map<string, Proc>();
  private rid = 0;
  private readonly baseDir: string;
  private readonly extraArgs: string[];

  constructor(ids: string[], baseDir: string, extraArgs: string[] = []) {
    this.ids = ids;
    this.baseDir = baseDir;
    this.extraArgs = extraArgs;
  }

  /** Picks ports, bootstraps every member with the same configuration, starts them all. */
  async boot(): Promise<void> {
    for (const id of this.ids) this.addresses[id] = `127.0.0.1:${await freePort()}`;
    await Promise.all(this.ids.map(async (id) => {
      await this.spawn(id);
      await this.rpc(id, { op: 'bootstrap', members: this.addresses });
      await this.rpc(id, { op: 'start' });
    }));
  }

  async spawn(id: string): Promise<void> {
    const child = fork(script, ['--id', id, '--dir', path.join(this.baseDir, id), '--listen', this.addresses[id]!, ...this.extraArgs], {
      execPath: process.execPath, execArgv: process.env.KVNODE_EXEC_ARGV ? process.env.KVNODE_EXEC_ARGV.split(' ') : [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const waiters = new Map<number, (m: any) => void>();
    let readyResolve!: () => void;
    const ready = new Promise<void>((r) => { readyResolve = r; });
    child.on('message', (m: any) => {
      if (m.ready) { readyResolve(); return; }
      const w = waiters.get(m.rid);
      if (w) { waiters.delete(m.rid); w(m); }
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => {
      for (const [, w] of waiters) w({ ok: false, error: 'process exited' });
      waiters.clear();
      resolve();
    }));
    this.procs.set(id, { child, waiters, exited });
    await Promise.race([ready, exited.then(() => { throw new Error(`node ${id} exited during start`); })]);
  }

  rpc(id: string, req: Record<string, unknown>, timeoutMs = 30_000): Promise<any> {
    const p = this.procs.get(id);
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve({ ok: false, error: 'not running' });
    const rid = ++this.rid;
    return new Promise((resolve) => {
      const t = setTimeout(() => { p.waiters.delete(rid); resolve({ ok: false, error: 'rpc timeout' }); }, timeoutMs);
      p.waiters.set(rid, (m) => { clearTimeout(t); resolve(m); });
      p.child.send({ rid, ...req });
    });
  }

  running(): string[] {
    return this.ids.filter((id) => { const p = this.procs.get(id); return p && p.child.exitCode === null && p.child.signalCode === null; });
  }

  /** The id of the node that says it is leader (polling until one does, or throws after timeoutMs). */
  async leader(timeoutMs = 15_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      for (const id of this.running()) {
        const r = await this.rpc(id, { op: 'status' }, 2000);
        if (r.ok && r.status.role === 'leader') return id;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  async kill9(id: string): Promise<void> {
    const p = this.procs.get(id);
    if (!p) return;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  async restart(id: string): Promise<void> {
    await this.spawn(id);
    const r = await this.rpc(id, { op: 'start' });
    if (!r.ok) throw new Error(`restart ${id}: ${r.error}`);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.keys()].map(async (id) => {
      const p = this.procs.get(id)!;
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      const r = await this.rpc(id, { op: 'stop' }, 5000);
      if (!r.ok) p.child.kill('SIGKILL');
      await Promise.race([p.exited, new Promise((res) => setTimeout(res, 5000))]);
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }));
  }
}
