/**
 * The realistic request population of issue 10: 10,000 api keys, 100 teams and 1,000 users drawn uniformly at
 * random from a fixed seed, token estimates 100–999 and actual usage 1–1.2× the estimate. Every side of a
 * comparison draws the same sequence (`population()` with the same seed), so the work is identical.
 */

import type { PriceTable, Usage } from "@tollgate/budgets";
import { scopes } from "@tollgate/core";
import type { GateRequest } from "@tollgate/gate";

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

/** The price table of the benchmarks' gate requests (one model). */
export const BENCH_PRICES: PriceTable = {
  "bench-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
};

/**
 * The full request of the Redis benchmarks through `@tollgate/gate`, for a drawn request: 3 scopes with requests +
 * tokens limits (max parallel on the key too, so a lease) and 3 budgets (key, team, user). Returns the admission's
 * input and the usage its settle reports.
 */
export function fullGateRequest(p: DrawnRequest, limit: number): { request: GateRequest; usage: Usage } {
  const limits = { requests: limit, tokens: limit };
  const input = p.estimate >> 1;
  return {
    request: {
      limits: [
        scopes.apiKey(p.apiKey, { ...limits, maxParallel: 1_000_000 }),
        scopes.team(p.team, limits),
        scopes.user(p.user, limits),
      ],
      tokens: { input, output: p.estimate - input },
      model: "bench-model",
      maxTokens: p.estimate - input,
      budgets: [
        { scope: "key", id: p.apiKey, maxBudget: "1000000", duration: "1d" },
        { scope: "team", id: p.team, maxBudget: "1000000", duration: "1mo" },
        { scope: "user", id: p.user, maxBudget: "1000000", duration: "1d" },
      ],
    },
    usage: { inputTokens: input, outputTokens: p.actual - input },
  };
}
