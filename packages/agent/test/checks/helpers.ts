// Shared pieces of the check runner tests: a context that records reports, timers that know which
// are still pending, polling, free/closed loopback ports and a throwaway self-signed certificate.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { CheckStatus } from '../../src/state/types.ts';
import type { RunnerContext, Timers } from '../../src/checks/index.ts';

export interface Report {
  status: CheckStatus;
  output: string;
  at: number;
}

/** setTimeout/clearTimeout (unref'd, like the real ones) that track which timers are pending. */
export class TrackingTimers implements Timers {
  readonly pending = new Set<NodeJS.Timeout>();

  setTimeout(fn: () => void, ms: number): unknown {
    const t = setTimeout(() => {
      this.pending.delete(t);
      fn();
    }, ms);
    t.unref();
    this.pending.add(t);
    return t;
  }

  clearTimeout(handle: unknown): void {
    if (handle === undefined) return;
    clearTimeout(handle as NodeJS.Timeout);
    this.pending.delete(handle as NodeJS.Timeout);
  }
}

export const silentLogger = pino({ level: 'silent' });

export interface TestContext extends RunnerContext {
  reports: Report[];
  timers: TrackingTimers;
}

/** A context running the first check at once, with no minimum interval. */
export function context(overrides: Partial<RunnerContext> = {}): TestContext {
  const reports: Report[] = [];
  return {
    checkId: 'chk',
    report: (status, output) => reports.push({ status, output, at: Date.now() }),
    logger: silentLogger,
    enableScriptChecks: false,
    random: () => 0,
    minIntervalMs: 0,
    timers: new TrackingTimers(),
    ...overrides,
    reports,
  } as TestContext;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` every 10 ms until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** The n-th report (0-based), once it has come. */
export function nthReport(ctx: TestContext, n: number, timeoutMs = 5_000): Promise<Report> {
  return waitFor(`report #${n + 1} of ${ctx.checkId}`, () => ctx.reports[n], timeoutMs);
}

/** A loopback TCP port nothing listens on (bound and released). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Whether a process is still running (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** A self-signed certificate for localhost and 127.0.0.1 (openssl), or null without openssl. */
export function selfSignedCert(): { key: Buffer; cert: Buffer } | null {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-checks-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { cwd: dir, stdio: 'pipe' });
    return { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) };
  } catch {
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const MS = 1e6;
