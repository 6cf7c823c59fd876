// Planted bugs for the chaos harness (test/chaos, docs/CHAOS.md): a checker that never fails is not
// a checker, so its tests run agents with one of these bugs switched on and expect a violation.
//
//   TRELLIS_CHAOS_PLANT=stale-reads   ?consistent reads skip the ReadIndex round / read barrier and
//                                     answer from the local store (a lagging or deposed server
//                                     serves stale values).
//   TRELLIS_CHAOS_PLANT=early-ack     KV writes (set, cas) on the leader are acknowledged as soon as
//                                     they are appended to its own log, before a quorum has them
//                                     (a deposed leader acknowledges writes that are then lost; a
//                                     read right after the ack may not see it; cas always says true).
//
// Only this environment variable switches them on: there is deliberately no configuration key,
// flag or HTTP endpoint, so no configuration file can enable one. An agent started with it logs a
// warning at every start (server.ts) so a planted agent is never mistaken for a real one.

export type ChaosPlant = 'stale-reads' | 'early-ack';

export const CHAOS_PLANT_ENV = 'TRELLIS_CHAOS_PLANT';
const PLANTS: readonly ChaosPlant[] = ['stale-reads', 'early-ack'];

/** The planted bug this process runs with, if any. An unknown value is refused (the agent does not start). */
export function chaosPlant(env: NodeJS.ProcessEnv = process.env): ChaosPlant | undefined {
  const v = env[CHAOS_PLANT_ENV];
  if (v === undefined || v === '') return undefined;
  if (!(PLANTS as readonly string[]).includes(v)) {
    throw new Error(`${CHAOS_PLANT_ENV}=${JSON.stringify(v)} is not a planted bug; known: ${PLANTS.join(', ')} (test-only, see docs/CHAOS.md)`);
  }
  return v as ChaosPlant;
}
