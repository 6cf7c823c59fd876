// The check-type model, shared by the agent's local state (local/), the check runners (checks/) and
// the HTTP API (http/routes/agent.ts): Consul's structs.CheckType (how a check runs), its Type() and
// Validate(), and the HealthCheckDefinition the catalog stores. Plain data and pure functions; it
// imports nothing of the agent but the state's row types and the Go duration printer.

import { formatGoDurationNs } from '../config/duration.ts';
import type { CheckStatus, HealthCheckDefinition } from '../state/types.ts';

/** The check the leader keeps on every node for gossip health; this agent never owns it. */
export const SERF_CHECK_ID = 'serfHealth';
/** Consul's IDs of the checks that put a node or a service into maintenance. */
export const NODE_MAINT_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINT_PREFIX = '_service_maintenance:';
/** Consul's default check OutputMaxSize. */
export const DEFAULT_OUTPUT_MAX_BYTES = 4096;

/** Consul's CheckType: how a check runs. Durations are nanoseconds. */
export interface CheckType {
  CheckID?: string;
  Name?: string;
  Notes?: string;
  Status?: CheckStatus | '';
  ScriptArgs?: string[];
  HTTP?: string;
  Header?: Record<string, string[]>;
  Method?: string;
  Body?: string;
  TCP?: string;
  UDP?: string;
  GRPC?: string;
  GRPCUseTLS?: boolean;
  H2PING?: string;
  H2PingUseTLS?: boolean;
  TLSServerName?: string;
  TLSSkipVerify?: boolean;
  DockerContainerID?: string;
  Shell?: string;
  AliasNode?: string;
  AliasService?: string;
  OSService?: string;
  IntervalNs?: number;
  TimeoutNs?: number;
  TTLNs?: number;
  DeregisterCriticalServiceAfterNs?: number;
  SuccessBeforePassing?: number;
  FailuresBeforeWarning?: number;
  FailuresBeforeCritical?: number;
  OutputMaxSize?: number;
}

/** Consul's CheckType.Type(): what kind of check a definition describes. */
export function checkKind(ct: CheckType): string {
  if (ct.TTLNs && ct.TTLNs > 0) return 'ttl';
  if (ct.HTTP) return 'http';
  if (ct.TCP) return 'tcp';
  if (ct.UDP) return 'udp';
  if (ct.GRPC) return 'grpc';
  if (ct.H2PING) return 'h2ping';
  if (ct.OSService) return 'os_service';
  if (ct.DockerContainerID) return 'docker';
  if (ct.ScriptArgs && ct.ScriptArgs.length > 0) return 'script';
  if (ct.AliasNode || ct.AliasService) return 'alias';
  return '';
}

/** Consul's CheckType.Validate(); null when valid, else its sentence. */
export function validateCheckType(ct: CheckType): string | null {
  const intervalCheck = Boolean(
    (ct.ScriptArgs && ct.ScriptArgs.length > 0) || ct.HTTP || ct.TCP || ct.UDP || ct.GRPC || ct.H2PING || ct.OSService,
  );
  const interval = ct.IntervalNs ?? 0;
  const ttl = ct.TTLNs ?? 0;
  if (interval > 0 && ttl > 0) return 'Interval and TTL cannot both be specified';
  if (intervalCheck && interval <= 0) return 'Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks';
  if (!intervalCheck && !(ct.AliasNode || ct.AliasService) && ttl <= 0) return 'TTL must be > 0 for TTL checks';
  if ((ct.OutputMaxSize ?? 0) < 0) return 'MaxOutputMaxSize must be positive';
  return null;
}

/** A check is "empty" when nothing describes how it runs (Consul skips such a `Check` block). */
export function isEmptyCheckType(ct: CheckType): boolean {
  return checkKind(ct) === '' && !ct.Name && !ct.CheckID && !ct.IntervalNs && !ct.TTLNs;
}

/** A duration in ns as Go prints it; undefined for none (0). */
export function goDur(ns: number | undefined): string | undefined {
  return ns === undefined || ns === 0 ? undefined : formatGoDurationNs(BigInt(Math.trunc(ns)));
}

/** The catalog's HealthCheckDefinition of a check type (durations as Go strings). */
export function checkDefinition(ct: CheckType): HealthCheckDefinition {
  const d: HealthCheckDefinition = {};
  const set = <K extends string>(k: K, v: unknown) => {
    if (v !== undefined && v !== '' && v !== false) d[k] = v;
  };
  set('HTTP', ct.HTTP);
  set('TLSServerName', ct.TLSServerName);
  set('TLSSkipVerify', ct.TLSSkipVerify);
  set('Header', ct.Header);
  set('Method', ct.Method);
  set('Body', ct.Body);
  set('TCP', ct.TCP);
  set('UDP', ct.UDP);
  set('GRPC', ct.GRPC);
  set('GRPCUseTLS', ct.GRPCUseTLS);
  set('H2PING', ct.H2PING);
  set('OSService', ct.OSService);
  set('AliasNode', ct.AliasNode);
  set('AliasService', ct.AliasService);
  set('ScriptArgs', ct.ScriptArgs);
  set('Interval', goDur(ct.IntervalNs));
  set('Timeout', goDur(ct.TimeoutNs));
  set('TTL', goDur(ct.TTLNs));
  set('DeregisterCriticalServiceAfter', goDur(ct.DeregisterCriticalServiceAfterNs));
  return d;
}
