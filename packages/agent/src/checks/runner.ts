// Starting and stopping one active check. A runner owns its timers and in-flight work and talks to
// the rest of the agent only through `report(status, output)`; it never touches state. Interval
// checks (HTTP, TCP, UDP, gRPC, script) run as Consul's do: the first run after a random stagger
// within the interval, each next run one interval after the previous one finished (so runs of one
// check never overlap), every result through the StatusHandler's thresholds. Alias checks follow
// their AliasSource instead (alias.ts). stop() clears every timer, aborts an in-flight request or
// connection and kills a running script; nothing is reported after it.
import type { CheckStatus } from '../state/types.ts';
import type { Logger } from '../logger.ts';
import { checkKind, validateCheckType, type CheckType } from '../structs/check.ts';
import { startAliasRunner, type AliasSource } from './alias.ts';
import { grpcProbe } from './grpc.ts';
import { httpProbe } from './http.ts';
import { tcpProbe, udpProbe } from './net.ts';
import { outputMaxBytes } from './output.ts';
import { realTimers, type Probe, type ProbeResult, type Timers } from './probe.ts';
import { scriptProbe } from './script.ts';
import { StatusHandler } from './statusHandler.ts';

/** Timeout of HTTP, TCP, UDP and gRPC checks without one (Consul's 10 s). */
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** Timeout of script checks without one (Consul's 30 s). */
export const DEFAULT_SCRIPT_TIMEOUT_MS = 30_000;
/** Consul raises shorter intervals to this, so a check cannot fork-bomb the host. */
export const MIN_CHECK_INTERVAL_MS = 1_000;

const ACTIVE_KINDS = new Set(['http', 'tcp', 'udp', 'grpc', 'script', 'alias']);

export interface CheckRunner {
  /** Stops the check for good; idempotent. */
  stop(): void;
}

export interface RunnerContext {
  checkId: string;
  /** Every result to record. The same value may come again; the caller dedups. */
  report(status: CheckStatus, output: string): void;
  logger: Logger;
  /** enable_script_checks (or enable_local_script_checks for a local definition). */
  enableScriptChecks: boolean;
  /** Required for alias checks. */
  alias?: AliasSource;
  /** In [0, 1); picks the first run's stagger. Default Math.random. */
  random?: () => number;
  /** Default setTimeout/clearTimeout, unref'd. */
  timers?: Timers;
  /** Intervals below this are raised to it (with a warning). Default MIN_CHECK_INTERVAL_MS. */
  minIntervalMs?: number;
  /** How often an alias check re-reads its target unprompted. Default ALIAS_REFRESH_MS. */
  aliasRefreshMs?: number;
}

/** True for the kinds this module runs: HTTP, TCP, UDP, gRPC, script and alias (not TTL). */
export function isActiveCheck(ct: CheckType): boolean {
  return ACTIVE_KINDS.has(checkKind(ct));
}

/**
 * Starts running a check. Throws (naming the check) for a TTL or unknown kind, a kind this agent
 * does not run (H2PING, Docker, OS service), an invalid definition, a script check while script
 * checks are disabled, or an alias check without an AliasSource.
 */
export function startCheckRunner(ct: CheckType, ctx: RunnerContext): CheckRunner {
  const name = `check ${JSON.stringify(ctx.checkId)}`;
  const kind = checkKind(ct);
  if (kind === 'ttl') throw new Error(`${name} is a TTL check: its status comes from agent/check updates, not a runner`);
  if (kind === '') throw new Error(`${name} has nothing to run: set one of HTTP, TCP, UDP, GRPC, ScriptArgs, AliasNode or AliasService`);
  if (!ACTIVE_KINDS.has(kind)) throw new Error(`${name}: ${kind} checks are not supported by this agent`);
  const invalid = validateCheckType(ct);
  if (invalid) throw new Error(`${name}: ${invalid}`);
  if (kind === 'script' && !ctx.enableScriptChecks) {
    throw new Error(`${name}: script checks are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true`);
  }

  const logger = ctx.logger.child({ check: ctx.checkId });
  const timers = ctx.timers ?? realTimers;
  const maxBytes = outputMaxBytes(ct);
  const report = (status: CheckStatus, output: string): void => {
    try {
      ctx.report(status, output);
    } catch (err) {
      logger.error({ err }, 'recording the check result failed');
    }
  };

  if (kind === 'alias') {
    if (!ctx.alias) throw new Error(`${name}: alias checks need an alias source, and none was given`);
    const stop = startAliasRunner({
      checkId: ctx.checkId, node: ct.AliasNode || undefined, serviceId: ct.AliasService || undefined,
      source: ctx.alias, report, logger, timers, outputMaxBytes: maxBytes, refreshMs: ctx.aliasRefreshMs,
    });
    return { stop };
  }

  const timeoutNs = ct.TimeoutNs && ct.TimeoutNs > 0
    ? ct.TimeoutNs
    : (kind === 'script' ? DEFAULT_SCRIPT_TIMEOUT_MS : DEFAULT_CHECK_TIMEOUT_MS) * 1e6;
  const timeoutMs = timeoutNs / 1e6;
  let probe: Probe;
  switch (kind) {
    case 'http':
      probe = httpProbe({
        url: ct.HTTP!, method: (ct.Method || 'GET').toUpperCase(), header: ct.Header ?? {}, body: ct.Body ?? '',
        tlsSkipVerify: ct.TLSSkipVerify ?? false, tlsServerName: ct.TLSServerName ?? '', timeoutMs,
        outputMaxBytes: maxBytes, timers,
      });
      break;
    case 'tcp':
      probe = tcpProbe(ct.TCP!, timeoutMs, timers);
      break;
    case 'udp':
      probe = udpProbe(ct.UDP!, timeoutMs, timers);
      break;
    case 'grpc':
      probe = grpcProbe({
        target: ct.GRPC!, useTls: ct.GRPCUseTLS ?? false, tlsSkipVerify: ct.TLSSkipVerify ?? false,
        tlsServerName: ct.TLSServerName ?? '', timeoutMs, outputMaxBytes: maxBytes,
      });
      break;
    default:
      probe = scriptProbe({ args: ct.ScriptArgs!, timeoutNs, outputMaxBytes: maxBytes, timers });
  }

  const minInterval = ctx.minIntervalMs ?? MIN_CHECK_INTERVAL_MS;
  let intervalMs = ct.IntervalNs! / 1e6;
  if (intervalMs < minInterval) {
    logger.warn({ interval_ms: intervalMs, minimum_interval_ms: minInterval }, 'check has interval below minimum');
    intervalMs = minInterval;
  }
  const handler = new StatusHandler({
    checkId: ctx.checkId, report, logger, successBeforePassing: ct.SuccessBeforePassing,
    failuresBeforeWarning: ct.FailuresBeforeWarning, failuresBeforeCritical: ct.FailuresBeforeCritical,
  });
  return runEvery(probe, handler, intervalMs, Math.floor((ctx.random ?? Math.random)() * intervalMs), timers);
}

function runEvery(probe: Probe, handler: StatusHandler, intervalMs: number, firstMs: number, timers: Timers): CheckRunner {
  let stopped = false;
  let timer: unknown;
  let inflight: AbortController | undefined;

  const run = async (): Promise<void> => {
    timer = undefined;
    inflight = new AbortController();
    let result: ProbeResult;
    try {
      result = await probe(inflight.signal);
    } catch (err) {
      // Probes resolve rather than throw; this is the backstop for a bug in one.
      result = { status: 'critical', output: `check failed to run: ${(err as Error).message}` };
    }
    inflight = undefined;
    if (stopped) return;
    handler.update(result.status, result.output);
    timer = timers.setTimeout(() => void run(), intervalMs);
  };

  timer = timers.setTimeout(() => void run(), firstMs);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
      inflight?.abort();
    },
  };
}
