// Alias checks, as Consul's CheckAlias: the check mirrors the health of another service instance
// (AliasService, on this node or on AliasNode) or of a node (AliasNode alone). The checks that count
// are the node's own checks and, with a service, that service's checks:
//   - any critical → critical, "Aliased check "<name>" failing: <its output>" (the first critical);
//   - else any warning → warning, with the same text for the last warning;
//   - else passing: "All checks passing.", or "No checks found." when there are none;
//   - a service that is not registered → critical "Service <id> could not be found on node <node>".
// The runner reads the target through an AliasSource, right away, whenever the source says
// something changed, and every ALIAS_REFRESH_MS regardless. Like Consul's, it reports straight away:
// the success/failure thresholds do not apply.
import type { CheckStatus } from '../state/types.ts';
import type { Logger } from '../logger.ts';
import { truncateOutput } from './output.ts';
import { errorMessage, goQuote, type ProbeResult, type Timers } from './probe.ts';

/** How often an alias re-reads its target without being told of a change (Consul: 1 minute). */
export const ALIAS_REFRESH_MS = 5_000;

export interface AliasCheckState {
  Name: string;
  Status: CheckStatus;
  Output: string;
}

export interface AliasTarget {
  /** Whether the aliased service is registered (for a node alias: whether the node is known). */
  found: boolean;
  /**
   * The checks that decide the alias, in a stable order: the node's own checks (no ServiceID) and,
   * for a service alias, that service's checks. The alias check itself must not be among them.
   */
  checks: AliasCheckState[];
}

export interface AliasSource {
  /** `node` undefined means this agent's node; `serviceId` undefined means a node alias. */
  target(node: string | undefined, serviceId: string | undefined): AliasTarget | Promise<AliasTarget>;
  /** Calls `onChange` after any change that may affect a target; returns the unsubscribe function. */
  subscribe(onChange: () => void): () => void;
}

/** Consul's processChecks: the alias's status and output for one reading of the target. */
export function aliasResult(target: AliasTarget, node: string | undefined, serviceId: string | undefined): ProbeResult {
  if (!target.found) {
    return { status: 'critical', output: `Service ${serviceId ?? ''} could not be found on node ${node ?? ''}` };
  }
  let status: CheckStatus = 'passing';
  let output = 'No checks found.';
  for (const c of target.checks) {
    if (c.Status === 'critical' || c.Status === 'warning') {
      status = c.Status;
      output = `Aliased check ${goQuote(c.Name)} failing: ${c.Output}`;
      if (c.Status === 'critical') break;
    } else if (status === 'passing') {
      output = 'All checks passing.';
    }
  }
  return { status, output };
}

export interface AliasRunnerOptions {
  checkId: string;
  node: string | undefined;
  serviceId: string | undefined;
  source: AliasSource;
  report(status: CheckStatus, output: string): void;
  logger: Logger;
  timers: Timers;
  outputMaxBytes: number;
  refreshMs?: number;
}

/**
 * Starts mirroring; returns the stop function. A change notification reports only a new status or
 * output; the periodic refresh reports even an unchanged one, so a report the caller failed to
 * store is repeated.
 */
export function startAliasRunner(o: AliasRunnerOptions): () => void {
  const refreshMs = o.refreshMs ?? ALIAS_REFRESH_MS;
  let stopped = false;
  let last: ProbeResult | undefined;
  let running = false;
  let again = false;
  let soon: unknown;
  let refresh: unknown;

  const read = async (): Promise<ProbeResult> => {
    try {
      return aliasResult(await o.source.target(o.node, o.serviceId), o.node, o.serviceId);
    } catch (err) {
      return { status: 'critical', output: `Failure checking aliased node or service: ${errorMessage(err)}` };
    }
  };

  const evaluate = async (why: 'changed' | 'refresh'): Promise<void> => {
    // One reading at a time; a change during a reading reads once more after it. (The refresh
    // timer is not armed during a reading.)
    if (running) {
      again = true;
      return;
    }
    running = true;
    o.timers.clearTimeout(refresh);
    const r = await read();
    running = false;
    if (stopped) return;
    r.output = truncateOutput(r.output, o.outputMaxBytes);
    if (why === 'refresh' || !last || last.status !== r.status || last.output !== r.output) {
      last = r;
      o.logger.debug({ check: o.checkId, status: r.status }, 'alias check status updated');
      o.report(r.status, r.output);
    }
    refresh = o.timers.setTimeout(() => void evaluate('refresh'), refreshMs);
    if (again) {
      again = false;
      void evaluate('changed');
    }
  };

  const schedule = (): void => {
    if (stopped || soon !== undefined) return;
    soon = o.timers.setTimeout(() => {
      soon = undefined;
      void evaluate('changed');
    }, 0);
  };

  const unsubscribe = o.source.subscribe(schedule);
  schedule();
  return () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    o.timers.clearTimeout(soon);
    o.timers.clearTimeout(refresh);
    soon = undefined;
  };
}
