// Where things are in the checkout, and the environment that makes the launcher run on Node 24.
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const binDir = path.join(repoRoot, 'node_modules', '.bin');
/** The `trellis` command users run (bin/trellis, an sh launcher that execs Node 24, through npm's link). */
export const launcher = path.join(binDir, 'trellis');

/**
 * The environment for a `trellis` process: node_modules/.bin first on PATH, as `npm test` has
 * it (the launcher execs the pinned Node 24 whatever PATH holds, so the pid we hold is the agent
 * itself: test/agent/launcher.test.ts checks that under the system's Node).
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
