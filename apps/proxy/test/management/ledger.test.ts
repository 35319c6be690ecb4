import { type BudgetSpec, compileBudget, createBudgets } from "@tollgate/budgets";
import { createMemoryStore } from "@tollgate/store-memory";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FinishedRequest, hashSecret } from "../../src/management/index.js";
import { DIALECTS } from "../db/helpers.js";
import { startManagement, type TestManagement } from "./helpers.js";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 4, 20, 23, 0, 0); // 23:00 UTC on May 20th

describe.each(DIALECTS)("spend ledger on %s", (dialect) => {
  let m: TestManagement;
  let clock = T0;
  let secret = "";
  let keyId = "";
  beforeAll(async () => {
    // A long flush interval: every write in this file is an explicit flush (no timing in the assertions).
    m = await startManagement(dialect, { now: () => clock, ledger: { flushIntervalMs: 3_600_000, batchSize: 50 } });
    await m.call("POST", "/user/new", {
      body: { user_id: "payer", max_budget: 100, budget_duration: "1mo", auto_create_key: false },
    });
    const k = await m.call("POST", "/key/generate", {
      body: { user_id: "payer", max_budget: 10, budget_duration: "1d", key_alias: "ledger-key" },
    });
    secret = k.body.key;
    keyId = hashSecret(secret);
  });
  afterAll(async () => {
    await m.cleanup();
  });

  async function request(
    id: string,
    cost: number,
    at: number,
    extra: Partial<FinishedRequest> = {},
  ): Promise<FinishedRequest> {
    const ident = await m.resolveRequest({
      headers: { authorization: `Bearer ${secret}` },
      model: "gpt-4o",
      endUser: "cust-l",
    });
    return {
      requestId: id,
      identity: ident,
      callType: "acompletion",
      modelGroup: "gpt-4o",
      status: cost > 0 ? "success" : "failure",
      promptTokens: 10,
      completionTokens: 5,
      costNano: cost,
      startTime: at - 100,
      endTime: at,
      budgets: ident.budgets,
      ...extra,
    };
  }

  it("one row per request id; entity spend added once; the budget periods each row was charged to are named", async () => {
    const a = await request("req-1", 1_000, T0);
    m.record(a);
    m.record(a); // a duplicate record of the same request
    m.record(await request("req-2", 2_000, T0 + 10));
    m.record(await request("req-denied", 0, T0 + 20));
    expect(m.ledger.pending).toBe(4);
    await m.ledger.flush();
    expect(m.ledger.pending).toBe(0);
    // Recorded again after it was written (a retry): still one row.
    m.record(a);
    await m.ledger.flush();
    const logs = await m.call("GET", "/spend/logs", { query: { api_key: secret } });
    expect(logs.body.map((r: any) => r.request_id).sort()).toEqual(["req-1", "req-2", "req-denied"]);
    const denied = logs.body.find((r: any) => r.request_id === "req-denied");
    expect(denied).toMatchObject({ status: "failure", spend: 0, user: "payer", end_user: "cust-l", api_key: keyId });
    expect((await m.repo.getKey(keyId))?.spend_nano).toBe(3_000);
    expect((await m.repo.getUser("payer"))?.spend_nano).toBe(3_000);
    expect((await m.repo.getEndUser("cust-l"))?.spend_nano).toBe(3_000);
    // /key/info shows the spend of the current daily period.
    const info = await m.call("GET", "/key/info", { query: { key: secret } });
    expect(info.body.info.spend).toBeCloseTo(3e-6, 12);
    expect(info.body.info.budget_reset_at).toBe(new Date(Date.UTC(2026, 4, 21)).toISOString());
  });

  it("rebuilding after a restart counts each record only in the periods it was charged to (daily key, monthly user)", async () => {
    // Two hours later it is May 21st: a new daily period for the key, the same monthly period for the user.
    clock = T0 + 2 * 3_600_000;
    m.record(await request("req-3", 4_000, clock));
    await m.ledger.flush();
    const keySpec: BudgetSpec = { scope: "key", id: keyId, maxBudget: 10, duration: "1d", alias: "ledger-key" };
    const totals = await m.hydrationTotals();
    const byScope = Object.fromEntries(totals.map((t) => [t.budget.scope + (t.budget.model ?? ""), t.spendNano]));
    expect(byScope).toEqual({ key: 4_000, user: 7_000 });
    // Fed to a fresh memory store (what the proxy does at start), the counters are those of live counting.
    const store = createMemoryStore({ now: () => clock });
    const budgets = createBudgets({
      store,
      now: () => clock,
      prices: { "gpt-4o": { input_cost_per_token: 1e-6, output_cost_per_token: 1e-6 } },
    });
    await budgets.hydrate({ totals });
    const [st] = await budgets.status([totals.find((t) => t.budget.scope === "key")!.budget]);
    expect(st?.spend).toBe(4_000);
    expect(compileBudget(keySpec, { timeZone: "UTC", reset: "calendar", keyPrefix: "budget" }).base).toBe(
      `{budget:key:${keyId}}`,
    );
  });

  it("with the gate's SpendRecord scopes and periods, the row names exactly those windows", async () => {
    const r = await request("req-4", 5_000, clock, {
      charged: [{ scope: "key", id: keyId }],
      periods: [`1d:${Date.UTC(2026, 4, 22)}`],
    });
    const row = m.ledger.toRow(r);
    expect(row.budgets).toEqual([
      {
        budget: `{budget:key:${keyId}}:1d:${Date.UTC(2026, 4, 22)}`,
        period_end: Date.UTC(2026, 4, 22),
        spend_nano: 5_000,
      },
    ]);
  });

  it("close() (SIGTERM) writes everything still queued", async () => {
    const m2 = await startManagement(dialect, {
      now: () => clock,
      ledger: { flushIntervalMs: 3_600_000, batchSize: 1_000 },
    });
    const k = await m2.call("POST", "/key/generate", { body: {} });
    const ident = await m2.resolveRequest({ headers: { authorization: `Bearer ${k.body.key}` } });
    for (let i = 0; i < 700; i++) {
      m2.record({
        requestId: `sig-${i}`,
        identity: ident,
        callType: "acompletion",
        modelGroup: "m",
        status: "success",
        costNano: 1,
        startTime: clock,
        endTime: clock,
      });
    }
    const db = m2.db;
    const repo = m2.repo;
    const { unwritten } = await m2.ledger.close();
    expect(unwritten).toBe(0);
    expect((await repo.spendLogs({ api_key: hashSecret(k.body.key) })).total).toBe(700);
    await db.close();
  });
});
