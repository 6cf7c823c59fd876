// Why the agent's local state refused a change. The state knows nothing of HTTP: http/errors.ts
// maps each code to Consul's status (the messages are Consul's texts and go out unchanged), and the
// agent's start-up registration (agent.ts) tells a refusal (drop it) from a failure (retry it).

export type LocalStateErrorCode =
  /** A check kind this agent cannot run (h2ping, docker, os_service). */
  | 'ERR_LOCAL_CHECK_UNSUPPORTED'
  /** A script check while enable_script_checks / enable_local_script_checks forbid it. */
  | 'ERR_LOCAL_SCRIPTS_DISABLED'
  /** The service ID names no service of this agent. */
  | 'ERR_LOCAL_UNKNOWN_SERVICE'
  /** The check ID names no check of this agent. */
  | 'ERR_LOCAL_UNKNOWN_CHECK'
  /** agent/check/pass|warn|fail|update on a check that is not a TTL check. */
  | 'ERR_LOCAL_NOT_TTL_CHECK'
  /** A sidecar without a port and none left in ports.sidecar_min_port..sidecar_max_port (or assignment disabled). */
  | 'ERR_LOCAL_NO_SIDECAR_PORT'
  /** The agent is stopping; nothing changes any more. */
  | 'ERR_STOPPED';

export class LocalStateError extends Error {
  readonly code: LocalStateErrorCode;
  constructor(code: LocalStateErrorCode, message: string) {
    super(message);
    this.name = 'LocalStateError';
    this.code = code;
  }

  /** The change can never succeed as asked (bad definition, unknown ID); retrying is pointless. */
  get refused(): boolean {
    return this.code !== 'ERR_STOPPED';
  }
}
