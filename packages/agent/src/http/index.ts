// The HTTP API's public surface, for the agent wiring (agent.ts, server/).
export { createHttpServer, DEFAULT_MAX_BODY_BYTES, type HttpServer, type HttpServerOptions } from './server.ts';
export type { AgentBackend, AgentMember, HttpStore, RaftStatus, SessionTimers } from './backend.ts';
export { LocalState, type LocalCheck, type LocalService, type LocalStateOptions } from '../local/state.ts';
export type { LocalNodeInfo } from '../local/types.ts';
export type { ServiceFields } from '../state/types.ts';
export { SERF_CHECK_ID, NODE_MAINT_CHECK_ID, SERVICE_MAINT_PREFIX, type CheckType } from '../structs/check.ts';
export type { Timers } from '../checks/probe.ts';
export { MetricsSink, type MetricsSummary } from './metrics.ts';
export { EventLog, type UserEvent } from './events.ts';
export { serviceRegistrationFromJson, checkRegistrationFromJson } from './routes/agent.ts';
export { HttpError, mapError } from './errors.ts';
