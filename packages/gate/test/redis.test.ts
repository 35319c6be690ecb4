import { randomUUID } from "node:crypto";
import type { BudgetSpec } from "@tollgate/budgets";
import type { Descriptor } from "@tollgate/core";
import { createRedisStore } from "@tollgate/store-redis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createGate, type Gate } from "../src/index.js";
import { applied, PRICES } from "./helpers.js";

// The gate on real Redis (standalone and a 3-master Cluster): one batch mixes rate-limit and budget keys of several
// hash tags, which the Cluster store groups by slot.
const stores = [
  () => createRedisStore({ connection: inject("redis").url, prefix: `gate-test:${randomUUID()}:`, timeoutMs: 5_000 }),
  () =>
    createRedisStore({
      cluster: { nodes: inject("redisCluster").nodes },
      prefix: `gate-test:${randomUUID()}:`,
      timeoutMs: 5_000,
    }),
];
const open: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const s of open) await s.close();
});

describe.each([
  ["redis standalone", 0],
  ["redis cluster", 1],
])("gate on %s", (_name, which) => {
  function gate(): Gate {
    const store = stores[which]!();
    open.push(store);
    return createGate({ store, budgets: { prices: PRICES } });
  }

  it("exact under concurrency: a $0.50 budget admits 50 of 100 $0.01 requests, a limit of 30 on another scope 30", async () => {
    const g = gate();
    const key: Descriptor = {
      scope: "api_key",
      value: randomUUID(),
      requests: 1000,
      tokens: 10_000_000,
      maxParallel: 200,
    };
    const user: Descriptor = { scope: "user", value: randomUUID(), requests: 30 };
    const budgets: BudgetSpec[] = [
      { scope: "key", id: randomUUID(), maxBudget: "0.50", duration: "1d" },
      { scope: "team", id: randomUUID(), maxBudget: "100", duration: "1mo" },
    ];
    const req = { limits: [key], model: "test-model", budgets, tokens: { input: 2000, output: 4000 }, maxTokens: 4000 };
    const results = await Promise.all(Array.from({ length: 100 }, () => g.admit(req)));
    expect(results.filter((r) => r.ok)).toHaveLength(50);
    const more = await Promise.all(Array.from({ length: 60 }, () => g.admit({ limits: [key, user] })));
    expect(more.filter((r) => r.ok)).toHaveLength(30);
    const outcomes = await Promise.all(
      results.map((r) => (r.ok ? r.ticket.settle({ inputTokens: 1000, outputTokens: 500 }) : undefined)),
    );
    expect(outcomes.filter((o) => o !== undefined).map((o) => applied(o!).cost)).toEqual(
      Array.from({ length: 50 }, () => 2_000_000),
    );
    const status = await g.budgets.status(budgets);
    expect(status.map((s) => [s.spend, s.reserved])).toEqual([
      [100_000_000, 0],
      [100_000_000, 0],
    ]);
    await Promise.all(more.map((r) => r.ok && r.ticket.release()));
  });
});
