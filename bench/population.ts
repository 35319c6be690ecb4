/**
 * The realistic request population of issue 10: 10,000 api keys, 100 teams and 1,000 users drawn uniformly at
 * random from a fixed seed, token estimates 100–999 and actual usage 1–1.2× the estimate. Every side of a
 * comparison draws the same sequence (`population()` with the same seed), so the work is identical.
 */

/** mulberry32: a small, fast, seeded 32-bit PRNG (deterministic across runs and processes). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One drawn request: its three identities, the token estimate and the actual usage. */
export interface DrawnRequest {
  apiKey: string;
  team: string;
  user: string;
  estimate: number;
  actual: number;
}

export interface PopulationOptions {
  keys?: number;
  teams?: number;
  users?: number;
  seed?: number;
}

/**
 * A pre-drawn ring of `size` requests (drawing is done once, outside the measured loop); `at(i)` answers the
 * i-th request of the ring.
 */
export function population(size = 1 << 16, o: PopulationOptions = {}): (i: number) => DrawnRequest {
  const { keys = 10_000, teams = 100, users = 1_000, seed = 20_251_130 } = o;
  const rnd = seededRandom(seed);
  const ring: DrawnRequest[] = new Array(size);
  for (let i = 0; i < size; i++) {
    const estimate = 100 + Math.floor(rnd() * 900);
    ring[i] = {
      apiKey: `k${Math.floor(rnd() * keys)}`,
      team: `t${Math.floor(rnd() * teams)}`,
      user: `u${Math.floor(rnd() * users)}`,
      estimate,
      actual: Math.max(1, Math.round(estimate * (1 + rnd() * 0.2))),
    };
  }
  const mask = size - 1;
  if ((size & mask) !== 0) throw new Error("population size must be a power of two");
  return (i) => ring[i & mask]!;
}
