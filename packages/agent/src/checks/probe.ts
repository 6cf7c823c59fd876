// What every active check kind shares: a probe is one run of the check (one HTTP request, one TCP
// connect, one script run, ...) that always resolves to a status and an output, never throws, and
// gives up when its AbortSignal fires (the runner was stopped). Timers are injectable (as in
// LocalState) and unref'd by default, so no check keeps the process alive on its own.
import type { CheckStatus } from '../state/types.ts';

/** Timer functions, injectable for tests (LocalState's TTL timers use the same interface). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ProbeResult {
  status: CheckStatus;
  output: string;
}

/** One run of a check. Resolves (never rejects) once the run is over or `signal` aborted it. */
export type Probe = (signal: AbortSignal) => Promise<ProbeResult>;

export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export function passing(output: string): ProbeResult {
  return { status: 'passing', output };
}

export function critical(output: string): ProbeResult {
  return { status: 'critical', output };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Go's %q for the strings these outputs quote (URLs, check names). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

export interface Deadline {
  /** Aborts when the parent signal aborts or the time is up. */
  signal: AbortSignal;
  timedOut(): boolean;
  /** Cancels the timer and detaches from the parent; call once the run is over. */
  clear(): void;
}

/** A signal for one run: the runner's stop signal plus the check's timeout. */
export function deadline(parent: AbortSignal, ms: number, timers: Timers): Deadline {
  const ac = new AbortController();
  let timedOut = false;
  const onParentAbort = (): void => ac.abort(parent.reason);
  if (parent.aborted) ac.abort(parent.reason);
  else parent.addEventListener('abort', onParentAbort, { once: true });
  const handle = timers.setTimeout(() => {
    timedOut = true;
    ac.abort(new Error('timed out'));
  }, ms);
  return {
    signal: ac.signal,
    timedOut: () => timedOut,
    clear: () => {
      timers.clearTimeout(handle);
      parent.removeEventListener('abort', onParentAbort);
    },
  };
}
