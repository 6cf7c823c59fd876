// @trellis/agent as a library: start an agent in-process from Consul-style flags, as `trellis
// agent` does (the CLI in cli/ is the usual way in; tests and embedders use this).
//
//   const { config } = buildRuntimeConfig(['-dev', '-http-port', '0']);
//   const agent = await startAgent(config);
//   ... agent.httpPort ...
//   await agent.stop();
export { startAgent, type Agent } from './agent.ts';
export { buildRuntimeConfig, defaults, TRELLIS_VERSION, type RuntimeConfig, type BuildResult } from './config/runtime.ts';
export { ConfigError } from './config/errors.ts';
