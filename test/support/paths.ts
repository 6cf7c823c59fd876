// Where things are in the checkout, and the environment that makes the launcher run on Node 24.
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const binDir = path.join(repoRoot, 'node_modules', '.bin');
/** The `trellis` command users run (bin/trellis.cjs through npm's link). */
export const launcher = path.join(binDir, 'trellis');

/**
 * The environment for a `trellis` process: node_modules/.bin first on PATH so the launcher's
 * `#!/usr/bin/env node` finds the pinned Node 24 and runs the CLI in-process. Then the pid we hold
 * is the agent itself, so a SIGKILL really kills the agent (not a launcher that would leave its
 * child running with the data dir open).
 */
export function trellisEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}` };
  // An address from the developer's shell must not redirect a test's CLI calls to another agent.
  delete env.CONSUL_HTTP_ADDR;
  delete env.TRELLIS_HTTP_ADDR;
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT; // set by `node --test` in its children; not for the agent
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}
