// Lifeguard §4.1, the local health multiplier (memberlist awareness.go). A member that misses acks
// and nacks it should have received, or that has to refute suspicions about itself, is more likely
// slow itself than surrounded by failures: it stretches its own probe timeouts instead of
// accusing healthy peers. A successful probe brings the score back down.

export class Awareness {
  readonly #max: number;
  #score = 0;

  /** `maxMultiplier` is awarenessMaxMultiplier: the score ranges over 0 .. maxMultiplier - 1. */
  constructor(maxMultiplier: number) {
    this.#max = maxMultiplier;
  }

  get score(): number {
    return this.#score;
  }

  /** Adds `delta`, clamped to the range; returns the new score. */
  applyDelta(delta: number): number {
    this.#score = Math.min(this.#max - 1, Math.max(0, this.#score + delta));
    return this.#score;
  }

  /** `timeoutMs` × (score + 1). */
  scale(timeoutMs: number): number {
    return timeoutMs * (this.#score + 1);
  }
}
