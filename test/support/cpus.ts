// CPU placement for benchmarks (taskset, util-linux): how many CPUs this process may use, and
// pinning a running process with all its threads.

import { spawnSync } from 'node:child_process';
import os from 'node:os';

/** How many CPUs this process may run on (`nproc`: its affinity mask), else os.availableParallelism(). */
export function usableCpus(): number {
  const r = spawnSync('nproc', [], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || os.availableParallelism();
}

/**
 * Pins a running process and all its threads (taskset -a -p), e.g. a load generator or an agent.
 * Returns false where taskset is missing or refused.
 */
export function pin(pid: number, cpus: string): boolean {
  return spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' }).status === 0;
}
