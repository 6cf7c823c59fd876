// The seeded gossip simulator: the real SWIM core on a simulated network, and the measurements
// the tests and the benchmark make with it.
export { GossipSim, memberName, type SimOptions, type SimMember, type FalsePositive, type Watch } from './cluster.ts';
export { measureJoin, measureFailure, measureLeave, measureLifecycle, falsePositives, epidemicModel, REACH_FRACTION } from './scenarios.ts';
export type { Propagation, FalsePositiveReport, Lifecycle } from './scenarios.ts';
export { SimRng } from './rng.ts';
