// Helpers for end-to-end tests that run Trellis as real processes. See agentProcess.ts.
export { AgentProcess, startServerAndClient, printLogsIfFailed, sleep, waitFor, type AgentPorts, type ExitInfo, type StartOptions } from './agentProcess.ts';
export { runTrellis, type CliOptions, type CliResult } from './cli.ts';
export { request, closeIdleSockets, type HttpResult, type RequestOptions } from './http.ts';
export { freePort, reservePort, type FreePortOptions } from './ports.ts';
export { repoRoot, launcher, binDir, trellisEnv } from './paths.ts';
export { pin, usableCpus } from './cpus.ts';
