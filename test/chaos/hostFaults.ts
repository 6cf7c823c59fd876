// Host faults: a stalled disk and a stepped clock, injected into one agent process at a time with
// LD_PRELOAD libraries the agents are started with (docs/CHAOS.md, "Disk stalls and clock steps").
//   disk-stall  test/chaos/stall/stall.c, built here with gcc: while the agent's control file says
//               so, its writes and syncs to files under its data directory block (LevelDB's Raft
//               log and state, snapshots); reads, sockets and logs go on. No device-mapper needed.
//   clock-step  libfaketime (Debian's faketime package) with a per-agent timestamp file holding an
//               offset ("+90", "-45"): the agent's wall clock (Date.now, CLOCK_REALTIME) steps by that
//               many seconds, within FAKETIME_CACHE_DURATION (1 s); CLOCK_MONOTONIC (performance.now,
//               libuv's timers) is left alone, as when NTP or an operator steps a host's clock.
//   clock-jump  libfaketime as above but faking CLOCK_MONOTONIC too: both clocks jump forward by the
//               same seconds and stay there (a monotonic clock never goes back), as a process sees a
//               VM paused and resumed by its hypervisor: every timer due in the gap fires at once.
// The tools are checked (and installed by deploy/install-host-fault-deps.sh when root) before
// anything starts; a run asking for a fault this machine cannot inject is refused with the reason.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../support/paths.ts';
import { request } from '../support/http.ts';
import type { Fault } from './options.ts';

const STALL_SOURCE = path.join(repoRoot, 'test', 'chaos', 'stall', 'stall.c');
const INSTALL = path.join(repoRoot, 'deploy', 'install-host-fault-deps.sh');
/** Size of the stall control file: byte 0 the flag, bytes 8..15 calls held, 16..23 calls being held. */
const FLAG_BYTES = 64;

export interface HostFaultTools {
  /** The built stall shim, when disk-stall was asked for. */
  stallLib?: string;
  /** libfaketimeMT (the thread-safe build: Node runs LevelDB and fs work on libuv's threads). */
  faketimeLib?: string;
  /** What libfaketime fakes: the wall clock alone (clock-step) or both clocks (clock-jump). */
  fakeMonotonic?: boolean;
}

function faketimeLib(): string | undefined {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib']) {
    const p = path.join(dir, 'faketime', 'libfaketimeMT.so.1');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

function hasGcc(): boolean {
  try { execFileSync('gcc', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** Builds the stall shim (once per source version) into the temp directory; returns its path. */
export function buildStallShim(): string {
  const src = fs.readFileSync(STALL_SOURCE);
  const out = path.join(os.tmpdir(), `trellis-chaos-stall-${createHash('sha256').update(src).digest('hex').slice(0, 12)}.so`);
  if (fs.existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-shared', '-fPIC', '-o', tmp, STALL_SOURCE, '-ldl'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`disk-stall: building ${path.relative(repoRoot, STALL_SOURCE)} with gcc failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`);
  }
  fs.renameSync(tmp, out);
  return out;
}

/**
 * Makes sure the LD_PRELOAD libraries the requested faults need are here (installing the Debian
 * packages as root, building the shim), or throws saying what is missing. Nothing is started.
 */
export function prepareHostFaults(faults: readonly Fault[]): HostFaultTools {
  const disk = faults.includes('disk-stall');
  const clock = faults.includes('clock-step') || faults.includes('clock-jump');
  if (!disk && !clock) return {};
  if (process.platform !== 'linux') throw new Error(`${disk ? 'disk-stall' : 'clock-step'}: needs Linux (LD_PRELOAD into the agent processes)`);
  if ((disk && !hasGcc()) || (clock && !faketimeLib())) {
    try {
      execFileSync('bash', [INSTALL, ...(disk ? ['disk'] : []), ...(clock ? ['clock'] : [])], { stdio: ['ignore', 'inherit', 'pipe'] });
    } catch (err) {
      const why = String((err as { stderr?: Buffer }).stderr ?? '').trim() || (err as Error).message;
      throw new Error(`${[disk && !hasGcc() ? 'disk-stall needs gcc (to build test/chaos/stall/stall.c)' : '', clock && !faketimeLib() ? 'clock-step and clock-jump need libfaketime (Debian package faketime)' : ''].filter(Boolean).join('; ')}: ${why}`);
    }
  }
  const tools: HostFaultTools = {};
  if (disk) tools.stallLib = buildStallShim();
  if (clock) {
    tools.faketimeLib = faketimeLib();
    if (!tools.faketimeLib) throw new Error('clock-step / clock-jump: libfaketimeMT.so.1 not found after installing faketime');
    tools.fakeMonotonic = faults.includes('clock-jump');
  }
  return tools;
}

/** One agent as the host faults see it. */
export interface HostFaultAgent {
  name: string;
  /** The agent's directory: its data directory is <dir>/data; control files live beside it. */
  dir: string;
  url: string;
}

/** The per-agent control of the host faults: environment at start, then stall/step/undo. */
export class HostFaults {
  readonly tools: HostFaultTools;

  constructor(tools: HostFaultTools) {
    this.tools = tools;
  }

  get any(): boolean {
    return this.tools.stallLib !== undefined || this.tools.faketimeLib !== undefined;
  }

  #flagFile(a: HostFaultAgent): string { return path.join(a.dir, 'disk-stall.flag'); }
  #clockFile(a: HostFaultAgent): string { return path.join(a.dir, 'faketime'); }

  /** The environment an agent starts with (control files made if missing; a restart keeps their state). */
  env(a: HostFaultAgent): Record<string, string> {
    const env: Record<string, string> = {};
    const preload: string[] = [];
    if (this.tools.stallLib) {
      const flag = this.#flagFile(a);
      if (!fs.existsSync(flag)) { const b = Buffer.alloc(FLAG_BYTES); b[0] = 0x30; fs.writeFileSync(flag, b); }
      fs.mkdirSync(path.join(a.dir, 'data'), { recursive: true });
      // The shim compares /proc/self/fd links, which are real paths.
      Object.assign(env, { TRELLIS_STALL_FLAG: flag, TRELLIS_STALL_DIR: fs.realpathSync(path.join(a.dir, 'data')) });
      preload.push(this.tools.stallLib);
    }
    if (this.tools.faketimeLib) {
      const f = this.#clockFile(a);
      if (!fs.existsSync(f)) fs.writeFileSync(f, '+0\n');
      Object.assign(env, { FAKETIME_TIMESTAMP_FILE: f, FAKETIME_CACHE_DURATION: '1' });
      // clock-step: the wall clock only (both spellings: libfaketime 0.9.10 reads FAKETIME_DONT_FAKE_MONOTONIC).
      if (!this.tools.fakeMonotonic) Object.assign(env, { FAKETIME_DONT_FAKE_MONOTONIC: '1', DONT_FAKE_MONOTONIC: '1' });
      preload.push(this.tools.faketimeLib);
    }
    if (preload.length > 0) env.LD_PRELOAD = [...preload, ...(process.env.LD_PRELOAD ? [process.env.LD_PRELOAD] : [])].join(':');
    return env;
  }

  /** Sets or clears the stall flag (a one-byte write in place: the shim has the file mapped, so it is never truncated). */
  setStall(a: HostFaultAgent, on: boolean): void {
    const fd = fs.openSync(this.#flagFile(a), 'r+');
    try { fs.writeSync(fd, on ? '1' : '0', 0); } finally { fs.closeSync(fd); }
  }

  /** Calls the shim has held since the agent first started (all its starts), and those held right now. */
  stallCounts(a: HostFaultAgent): { held: number; holding: number } {
    try {
      const b = fs.readFileSync(this.#flagFile(a));
      return { held: Number(b.readBigUInt64LE(8)), holding: Number(b.readBigUInt64LE(16)) };
    } catch {
      return { held: 0, holding: 0 };
    }
  }

  /** Steps the agent's wall clock to `offsetS` seconds from true time (0 = back to true time). */
  setClockOffset(a: HostFaultAgent, offsetS: number): void {
    const f = this.#clockFile(a);
    fs.writeFileSync(`${f}.tmp`, `${offsetS >= 0 ? '+' : ''}${Math.round(offsetS)}\n`);
    fs.renameSync(`${f}.tmp`, f);
  }

  clockOffset(a: HostFaultAgent): number {
    try { return Number(fs.readFileSync(this.#clockFile(a), 'utf8').trim()); } catch { return 0; }
  }
}

/**
 * How far the agent's wall clock is from ours, in seconds, from its HTTP Date header (whole
 * seconds, so ±1 s); undefined when it does not answer.
 */
export async function observedClockSkewS(url: string): Promise<number | undefined> {
  try {
    const before = Date.now();
    const r = await request(url, 'GET', '/v1/status/leader', { timeoutMs: 1500 });
    const after = Date.now();
    const date = r.headers.date;
    if (!date) return undefined;
    return Math.round((Date.parse(date) - (before + after) / 2) / 1000);
  } catch {
    return undefined;
  }
}

/** The agent's applied Raft index (GET /v1/agent/self Stats.raft.applied_index); undefined when it does not answer. */
export async function appliedIndex(url: string, timeoutMs = 1000): Promise<number | undefined> {
  try {
    const r = await request(url, 'GET', '/v1/agent/self', { timeoutMs });
    if (r.status !== 200) return undefined;
    const v = Number(r.json<{ Stats: { raft?: { applied_index?: string } } }>().Stats.raft?.applied_index);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lock-delay across clocks: a session holding `key` is destroyed through `destroyVia`, then another
 * session tries to acquire the key through `acquireVia` at once. With a lock-delay of `delayS` the
 * acquire must be refused (Consul: the key cannot be locked again for lock-delay after its session
 * is invalidated). Returns 'held' (refused), 'bypassed' (acquired inside the delay), or why the
 * probe could not run ('' when it ran). Both sessions are destroyed afterwards.
 */
export async function lockDelayProbe(destroyVia: string, acquireVia: string, key: string, delayS = 10): Promise<{ result: 'held' | 'bypassed' | 'not run'; why: string }> {
  const put = (url: string, p: string, body?: string) => request(url, 'PUT', p, { body, timeoutMs: 3000 });
  const sessions: string[] = [];
  try {
    for (const url of [destroyVia, acquireVia]) {
      const r = await put(url, '/v1/session/create', JSON.stringify({ Name: 'chaos-lock-delay-probe', LockDelay: `${delayS}s`, Behavior: 'release' }));
      if (r.status !== 200) return { result: 'not run', why: `session create via ${url}: ${r.status} ${r.text.trim()}` };
      sessions.push(r.json<{ ID: string }>().ID);
    }
    const [a, b] = sessions as [string, string];
    const acq = await put(destroyVia, `/v1/kv/${key}?acquire=${a}`, 'a');
    if (acq.status !== 200 || acq.text.trim() !== 'true') return { result: 'not run', why: `first acquire via ${destroyVia}: ${acq.status} ${acq.text.trim()}` };
    const d = await put(destroyVia, `/v1/session/destroy/${a}`);
    if (d.status !== 200) return { result: 'not run', why: `session destroy via ${destroyVia}: ${d.status} ${d.text.trim()}` };
    const t = performance.now();
    const second = await put(acquireVia, `/v1/kv/${key}?acquire=${b}`, 'b');
    const ms = Math.round(performance.now() - t);
    if (second.status !== 200) return { result: 'not run', why: `second acquire via ${acquireVia}: ${second.status} ${second.text.trim()}` };
    return second.text.trim() === 'true'
      ? { result: 'bypassed', why: `acquired ${ms} ms after the destroy, inside the ${delayS} s lock-delay` }
      : { result: 'held', why: '' };
  } catch (err) {
    return { result: 'not run', why: (err as Error).message };
  } finally {
    for (const s of sessions) await put(destroyVia, `/v1/session/destroy/${s}`).catch(() => undefined);
  }
}
