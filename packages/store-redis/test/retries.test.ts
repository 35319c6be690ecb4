/**
 * Issue 11: a settle or release that times out may still be applied by Redis (the command was sent), and the caller
 * retries it. Before tickets the retry applied a second time (11 admitted on a limit of 10, 1,100 tokens on 1,000,
 * $0.02 charged for a $0.01 request). Here Redis is frozen (SIGSTOP) while the calls are in flight, so they time out
 * and run on resume; the callers retry until they get an answer; everything must apply exactly once.
 */
import { randomUUID } from "node:crypto";
import type { PriceTable } from "@tollgate/budgets";
import { createLimiter, type Outcome, type Reservation, scopes, TollgateError } from "@tollgate/core";
import { createGate, type GateAdmission } from "@tollgate/gate";
import { type RedisServerHandle, startRedisServer } from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisStore } from "../src/index.js";

// A dedicated server: these tests freeze it.
let server: RedisServerHandle;
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  server.resume();
  await server.stop();
});

/** Calls `f` until it answers (STORE_UNAVAILABLE is retried, as a caller does after a timeout); answers the outcomes. */
async function retried<T>(f: () => Promise<T>): Promise<{ value: T; attempts: number }> {
  for (let attempts = 1; ; attempts++) {
    try {
      return { value: await f(), attempts };
    } catch (err) {
      if (!(err instanceof TollgateError) || err.code !== "STORE_UNAVAILABLE" || attempts > 200) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Freezes Redis, starts `calls` (they hang on the frozen server, then time out), resumes, then retries them. */
async function throughAFreeze<T>(calls: Array<() => Promise<T>>): Promise<Array<{ value: T; attempts: number }>> {
  server.pause();
  const first = calls.map((f) =>
    f().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
  );
  const settled = await Promise.all(first);
  server.resume();
  // Every call timed out while Redis was frozen: Redis runs them now, and the callers try again.
  for (const s of settled) expect(s.ok ? "answered" : (s.error as TollgateError).code).toBe("STORE_UNAVAILABLE");
  return Promise.all(calls.map((f) => retried(f)));
}

const options = { timeoutMs: 200, retryIntervalMs: 100 };

describe("retried after a timeout: exactly once (real Redis frozen with SIGSTOP)", () => {
  it("limiter: settles and releases retried after timing out apply once (limit 10 admits 10, tokens exact)", async () => {
    const prefix = `retry:${randomUUID()}:`;
    const store = createRedisStore({ connection: server.url, prefix, ...options });
    const limiter = createLimiter({ store });
    const key = randomUUID();
    const limit = scopes.apiKey(key, { requests: 10, tokens: 1_000 });
    const reservations: Reservation[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await limiter.admit([limit], { tokens: 100 });
      if (!a.ok) throw new Error("denied");
      reservations.push(a.reservation);
    }
    // 3 settles (100 reserved -> 40 used) and 2 releases (the request never ran: its request and tokens come back).
    const results = await throughAFreeze<Outcome>([
      ...reservations.slice(0, 3).map((r) => () => r.settle({ tokens: 40 })),
      ...reservations.slice(3, 5).map((r) => () => r.release()),
    ]);
    expect(results.every((r) => r.attempts >= 1)).toBe(true);
    expect(await store.flush(5_000)).toBe(0);
    // Exactly once each: 10 - 2 released = 8 requests; 1,000 - 3 × 60 - 2 × 100 = 620 tokens.
    const status = await limiter.status([limit]);
    expect(status.map((s) => [s.type, s.used])).toEqual([
      ["requests", 8],
      ["tokens", 620],
    ]);
    // So exactly 2 more are admitted (a double release would let 4 in).
    const more = await Promise.all(Array.from({ length: 5 }, () => limiter.admit([limit], { tokens: 1 })));
    expect(more.filter((a) => a.ok)).toHaveLength(2);
    await store.close();
  });

  it("gate: a $0.01 request settled through a timeout and retried is charged $0.01, once", async () => {
    const PRICES: PriceTable = {
      "test-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
    };
    const store = createRedisStore({ connection: server.url, prefix: `retry:${randomUUID()}:`, ...options });
    const gate = createGate({ store, budgets: { prices: PRICES } });
    const budgets = [{ scope: "key" as const, id: randomUUID(), maxBudget: "1", duration: "1d" }];
    const admitted: GateAdmission[] = [];
    for (let i = 0; i < 4; i++) {
      admitted.push(
        await gate.admit({
          limits: [],
          model: "test-model",
          budgets,
          tokens: { input: 2000, output: 4000 },
          maxTokens: 4000,
        }),
      );
    }
    const tickets = admitted.map((a) => {
      if (!a.ok) throw new Error("denied");
      return a.ticket;
    });
    // 2000 input + 4000 output tokens = $0.002 + $0.008 = $0.01 each, settled through the freeze; one released.
    const results = await throughAFreeze([
      ...tickets.slice(0, 3).map((t) => () => t.settle({ inputTokens: 2000, outputTokens: 4000 })),
      () => tickets[3]!.release(),
    ]);
    expect(results.map((r) => r.value.status).every((s) => s === "applied" || s === "duplicate")).toBe(true);
    expect(await store.flush(5_000)).toBe(0);
    const [status] = await gate.budgets.status(budgets);
    // $0.03 spent (3 × $0.01, never twice), nothing left held.
    expect([status!.spend, status!.reserved]).toEqual([30_000_000, 0]);
    await store.close();
  });
});
