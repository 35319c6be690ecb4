import { randomUUID } from "node:crypto";
import type { CounterStore, Outcome } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { createRedisStore } from "@tollgate/store-redis";
import { inject } from "vitest";
import type { PriceTable } from "../src/index.js";

/** An injected clock shared by the store and the engine. */
export interface Clock {
  t: number;
  now: () => number;
  advance: (ms: number) => void;
}

export function clockAt(iso: string): Clock {
  const c: Clock = {
    t: Date.parse(iso),
    now: () => c.t,
    advance: (ms) => {
      c.t += ms;
    },
  };
  return c;
}

/**
 * Stores the budget tests run on: the memory store, a real standalone redis-server and a real 3-master Redis
 * Cluster (both started by the root vitest globalSetup).
 */
export const STORES: Array<{ name: string; create: (clock: Clock) => CounterStore }> = [
  { name: "memory", create: (clock) => createMemoryStore({ now: clock.now }) },
  {
    name: "redis",
    create: (clock) =>
      createRedisStore({
        connection: inject("redis").url,
        prefix: `budgets-test:${randomUUID()}:`,
        testClock: clock.now,
        timeoutMs: 5_000,
      }),
  },
  {
    name: "redis cluster",
    create: (clock) =>
      createRedisStore({
        cluster: { nodes: inject("redisCluster").nodes },
        prefix: `budgets-test:${randomUUID()}:`,
        testClock: clock.now,
        timeoutMs: 5_000,
      }),
  },
];

/**
 * `test-model`: 1000 nano-USD per input token, 2000 per output token. 2000 input tokens + max_tokens 4000
 * reserve exactly $0.01.
 */
export const PRICES: PriceTable = {
  "test-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
  "test-reasoner": {
    input_cost_per_token: "0.000001",
    output_cost_per_token: "0.000002",
    output_cost_per_reasoning_token: "0.000004",
  },
  "test-embed": { input_cost_per_token: "0.0000001", mode: "embedding" },
};

export const CENT = 10_000_000; // nano-USD
export const ONE_CENT_REQUEST = { model: "test-model", inputTokens: 2000, maxTokens: 4000 } as const;
export const ONE_CENT_USAGE = { inputTokens: 2000, outputTokens: 4000 } as const;

/** An outcome that must have been applied, as such (its cost, record and spend). */
export function applied<A>(o: Outcome<A>): { status: "applied" } & A {
  if (o.status !== "applied") throw new Error(`expected an applied outcome, got ${o.status}`);
  return o;
}
