/**
 * Counting test (issue 10): a whole request through `@tollgate/gate` (3 scopes with requests + tokens limits and
 * max parallel on the key, 3 budgets) costs exactly 1 HTTP request to admit and 1 for each of settle, fail, release
 * and renew, through the real `@upstash/redis` client and the Upstash REST test server.
 */
import { randomUUID } from "node:crypto";
import type { PriceTable } from "@tollgate/budgets";
import { scopes } from "@tollgate/core";
import { createGate, type GateAdmission } from "@tollgate/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUpstashStore } from "../src/index.js";
import { type Harness, startHarness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.stop();
});

const PRICES: PriceTable = {
  "test-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
};

function request() {
  const id = randomUUID();
  return {
    limits: [
      scopes.apiKey(`k-${id}`, { requests: 100, tokens: 1_000_000, maxParallel: 10 }),
      scopes.team(`t-${id}`, { requests: 1000, tokens: 10_000_000 }),
      scopes.user(`u-${id}`, { requests: 100, tokens: 1_000_000 }),
    ],
    tokens: { input: 300, output: 500 },
    model: "test-model",
    maxTokens: 500,
    budgets: [
      { scope: "key" as const, id: `k-${id}`, maxBudget: "10", duration: "1d" },
      { scope: "team" as const, id: `t-${id}`, maxBudget: "100", duration: "1mo" },
      { scope: "user" as const, id: `u-${id}`, maxBudget: "5", duration: "1d" },
    ],
  };
}

const admitted = (a: GateAdmission) => {
  if (!a.ok) throw new Error(`denied: ${JSON.stringify(a)}`);
  return a;
};

describe("counting: one request through the gate on Upstash", () => {
  it("admit, settle, fail, release and renew: exactly 1 HTTP request each", async () => {
    const store = createUpstashStore({ client: h.client(), prefix: `count:${randomUUID()}:`, timeoutMs: 5_000 });
    const gate = createGate({ store, budgets: { prices: PRICES } });
    // Warm: the first use of each script after the cache was emptied sends EVAL once (the store does not load the
    // scripts up front on Upstash).
    const warm = admitted(await gate.admit(request()));
    await warm.ticket.renew();
    await warm.ticket.settle({ inputTokens: 300, outputTokens: 400 });
    const measure = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      h.rest.resetLog();
      const r = await f();
      expect([what, h.rest.requests, h.rest.log.map((x) => x.commands.join(" "))]).toEqual([what, 1, ["EVALSHA"]]);
      return r;
    };
    const a = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("settle", () => a.ticket.settle({ inputTokens: 300, outputTokens: 420 }));
    const b = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("renew", () => b.ticket.renew());
    await measure("fail", () => b.ticket.fail());
    const c = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("release", () => c.ticket.release());
    await store.close();
  });
});
