// Seeded randomness for the gossip simulator. Every component (each member's core, the network,
// the fault schedule) draws from its own stream forked off the one seed, so a seed reproduces a
// run exactly and a change in how much one component draws does not reshuffle the others.
// sfc32 (Chris Doty-Humphrey's small fast counting generator), seeded through splitmix32.

function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class SimRng {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`simulator seed must be a non-negative safe integer, got ${seed}`);
    this.#a = splitmix32((seed >>> 0) ^ Math.imul(stream, 0x27d4eb2d));
    this.#b = splitmix32(this.#a ^ Math.floor(seed / 0x1_0000_0000));
    this.#c = splitmix32(this.#b + stream);
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** A function suitable as a core's `random`. */
  fn(): () => number {
    return () => this.float();
  }
}
