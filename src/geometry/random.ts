/**
 * A small seeded pseudo-random generator for synthetic deformations and test data: mulberry32 for
 * uniform 32-bit values, Box–Muller for Gaussians. Everything runs on 32-bit integer arithmetic
 * (Math.imul) plus V8's own fdlibm-derived log/cos/sin, so a seed gives the same numbers on every
 * machine running Node.
 */
export class Random {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next unsigned 32-bit integer. */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  integer(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  gaussian(): number {
    if (this.spare !== undefined) {
      const g = this.spare;
      this.spare = undefined;
      return g;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform())); // 1 − U ∈ (0, 1]: no log(0)
    const angle = 2 * Math.PI * this.uniform();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }
}
