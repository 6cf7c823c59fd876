// Active health checks (Consul's agent/checks): HTTP, TCP, UDP, gRPC, script and alias runners that
// report each result through a callback. TTL checks stay in LocalState. See runner.ts.
export {
  startCheckRunner, isActiveCheck, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_SCRIPT_TIMEOUT_MS, MIN_CHECK_INTERVAL_MS,
  type CheckRunner, type RunnerContext,
} from './runner.ts';
export { ALIAS_REFRESH_MS, aliasResult, type AliasSource, type AliasTarget, type AliasCheckState } from './alias.ts';
export { StatusHandler, type StatusHandlerOptions } from './statusHandler.ts';
export { truncateOutput, outputMaxBytes, OutputCapture } from './output.ts';
export { HTTP_USER_AGENT, HTTP_ACCEPT } from './http.ts';
export type { Timers } from './probe.ts';
