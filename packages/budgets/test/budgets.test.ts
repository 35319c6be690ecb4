import { type CounterStore, TollgateError } from "@tollgate/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  type BudgetEvent,
  type BudgetSpec,
  type BudgetsOptions,
  createBudgets,
  type SpendRecord,
} from "../src/index.js";
import { applied, CENT, type Clock, clockAt, ONE_CENT_REQUEST, ONE_CENT_USAGE, PRICES, STORES } from "./helpers.js";

const key = (maxBudget: string | null, extra: Partial<BudgetSpec> = {}): BudgetSpec => ({
  scope: "key",
  id: "k1",
  maxBudget,
  ...extra,
});

let rid = 0;
const req = (budgets: BudgetSpec[], extra: Record<string, unknown> = {}) => ({
  requestId: `r${++rid}`,
  budgets,
  ...ONE_CENT_REQUEST,
  ...extra,
});

describe.each(STORES)("budgets on the $name store", ({ create }) => {
  const open: CounterStore[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  function setup(iso = "2027-06-15T12:00:00Z", opts: Partial<BudgetsOptions> = {}) {
    const clock: Clock = clockAt(iso);
    const store = create(clock);
    open.push(store);
    const events: BudgetEvent[] = [];
    const records: SpendRecord[] = [];
    const budgets = createBudgets({
      store,
      prices: PRICES,
      now: clock.now,
      onEvent: (e) => events.push(e),
      sink: { write: (r) => void records.push(r) },
      ...opts,
    });
    return { clock, store, budgets, events, records };
  }

  it("100 concurrent $0.01 reservations against a $0.50 budget admit exactly 50; spend never exceeds $0.50", async () => {
    const { budgets } = setup();
    const spec = [key("0.50"), { scope: "team", id: "t1", maxBudget: "100" } as BudgetSpec];
    const results = await Promise.all(Array.from({ length: 100 }, () => budgets.reserve(req(spec))));
    const admitted = results.filter((r) => r.ok);
    expect(admitted).toHaveLength(50);
    for (const r of results) if (!r.ok) expect(r.denial.budget).toEqual({ scope: "key", id: "k1" });
    const [during] = await budgets.status([key("0.50")]);
    expect(during).toMatchObject({ spend: 0, reserved: 50 * CENT });
    await Promise.all(admitted.map((r) => r.ok && r.reservation.settle(ONE_CENT_USAGE)));
    const [after, team] = await budgets.status(spec);
    expect(after).toMatchObject({ spend: 50 * CENT, reserved: 0 });
    expect(team).toMatchObject({ spend: 50 * CENT, reserved: 0 });
    const again = await budgets.reserve(req(spec, { maxTokens: 0, inputTokens: 1 }));
    expect(again.ok).toBe(false);
    if (!again.ok) {
      expect(again.denial).toMatchObject({ spend: 50 * CENT, max: 50 * CENT, requested: 1000 });
      expect(again.denial.message).toBe("Budget has been exceeded! Current cost: 0.5, Max budget: 0.5");
    }
  });

  it("is all-or-nothing across budgets and names the binding one", async () => {
    const { budgets } = setup();
    const spec: BudgetSpec[] = [
      key("10"),
      { scope: "user", id: "u1", maxBudget: "10" },
      { scope: "team_member", id: "u1", teamId: "t1", maxBudget: "0.015" },
      { scope: "end_user", id: "c1", maxBudget: null },
      { scope: "organization", id: "o1", maxBudget: "10" },
      { scope: "global", id: "proxy", maxBudget: "10" },
    ];
    const first = await budgets.reserve(req(spec));
    expect(first.ok).toBe(true);
    const second = await budgets.reserve(req(spec));
    expect(second.ok).toBe(false);
    if (second.ok) return;
    expect(second.denial.budget).toEqual({ scope: "team_member", id: "u1", teamId: "t1" });
    expect(second.denial).toMatchObject({ spend: 0, reserved: CENT, max: 15_000_000, requested: CENT });
    expect(second.denial.resetAt).toBeNull();
    expect(second.denial.message).toBe(
      "Budget has been exceeded! User=u1 in Team=t1 Current cost: 0.0, Max budget: 0.015",
    );
    // Nothing of the denied request was held anywhere.
    for (const s of await budgets.status(spec)) expect(s.reserved).toBe(CENT);
  });

  it("a budget given twice in one request is counted once, with the strictest limit", async () => {
    const { budgets, events, records } = setup();
    const team: BudgetSpec = { scope: "team", id: "t1", maxBudget: "10" };
    const spec = [key("0.05", { softBudget: "0.005" }), team, key("0.015", { softBudget: "0.001" })];
    const r = await budgets.reserve(req(spec));
    if (!r.ok) throw new Error("denied");
    expect(r.reservation.budgets).toEqual([
      { scope: "key", id: "k1" },
      { scope: "team", id: "t1" },
    ]);
    expect(await budgets.status([key("0.05"), team])).toMatchObject([{ reserved: CENT }, { reserved: CENT }]);
    const settled = applied(await r.reservation.settle({ inputTokens: 1500, outputTokens: 3000 }));
    expect(settled.cost).toBe(7_500_000);
    expect(settled.spend).toEqual([7_500_000, 7_500_000]);
    expect(records.map((x) => x.scopes)).toEqual([
      [
        { scope: "key", id: "k1" },
        { scope: "team", id: "t1" },
      ],
    ]);
    expect(await budgets.status([key("0.05"), team])).toMatchObject([
      { spend: 7_500_000, reserved: 0 },
      { spend: 7_500_000, reserved: 0 },
    ]);
    // Alerts follow the strictest maximum and the first occurrence's soft budget, once each.
    const keyAlerts = events.filter(
      (e) => e.type !== "unknown_model" && e.type !== "sink_error" && e.budget.id === "k1",
    );
    expect(keyAlerts).toMatchObject([
      { type: "soft_budget", spend: 7_500_000, softBudget: 5_000_000 },
      { type: "threshold", threshold: 0.5, spend: 7_500_000, max: 15_000_000 },
    ]);
    // $0.0075 + $0.01 fits $0.05 but not $0.015: the smaller limit binds, whichever order the specs come in.
    for (const order of [spec, [...spec].reverse()]) {
      const denied = await budgets.reserve(req(order));
      expect(denied.ok).toBe(false);
      if (denied.ok) return;
      expect(denied.denial).toMatchObject({ budget: { scope: "key", id: "k1" }, spend: 7_500_000, max: 15_000_000 });
      expect(denied.denial.message).toBe("Budget has been exceeded! Current cost: 0.0075, Max budget: 0.015");
    }
  });

  it("a count-only copy of a budget neither loosens nor tightens its enforced copy", async () => {
    const { budgets } = setup();
    const spec = [key("0.001", { shadow: true }), key(null), key("0.015")];
    const first = await budgets.reserve(req(spec));
    expect(first.ok && first.reservation.budgets).toEqual([{ scope: "key", id: "k1" }]);
    const second = await budgets.reserve(req(spec));
    expect(!second.ok && second.denial).toMatchObject({ reserved: CENT, max: 15_000_000 });
  });

  it("a spec changed in place takes effect at once; a frozen spec works too (compiled budgets are cached per spec)", async () => {
    const { budgets } = setup();
    const spec = key("0.015");
    const first = await budgets.reserve(req([spec]));
    expect(first.ok).toBe(true);
    spec.maxBudget = "0.025"; // raised in place: a second $0.01 hold now fits
    expect((await budgets.reserve(req([spec]))).ok).toBe(true);
    spec.maxBudget = "0.02"; // lowered: $0.02 held, a third does not fit
    expect((await budgets.reserve(req([spec]))).ok).toBe(false);
    expect(Object.keys(spec)).toEqual(Object.keys(key("1"))); // nothing visible was added to the caller's object
    expect(JSON.parse(JSON.stringify(spec))).toEqual({ ...spec });
    const frozen = Object.freeze(key("0.01", { id: "frozen" } as Partial<BudgetSpec>));
    const r = await budgets.reserve(req([frozen]));
    expect(r.ok).toBe(true);
    expect((await budgets.reserve(req([frozen]))).ok).toBe(false);
  });

  it("settles to the actual cost in one call and releases the hold; a second settle or release is a duplicate", async () => {
    const { budgets, records } = setup();
    const r = await budgets.reserve(req([key("1")]));
    if (!r.ok) throw new Error("denied");
    const usage = { inputTokens: 1500, outputTokens: 100 };
    const [s1, s2] = await Promise.all([r.reservation.settle(usage), r.reservation.settle(usage)]);
    expect(s1).toMatchObject({ status: "applied", cost: 1500 * 1000 + 100 * 2000, spend: [1_700_000] });
    expect(s2).toEqual({ status: "duplicate" });
    expect(await r.reservation.settle(usage)).toEqual({ status: "duplicate" });
    expect(await r.reservation.release()).toEqual({ status: "duplicate" }); // nothing after a settle
    const [st] = await budgets.status([key("1")]);
    expect(st).toMatchObject({ spend: 1_700_000, reserved: 0 });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      cost: 1_700_000,
      costUsd: "0.0017",
      model: "test-model",
      scopes: [{ scope: "key", id: "k1" }],
    });

    const q = await budgets.reserve(req([key("1")]));
    if (!q.ok) throw new Error("denied");
    const released = await Promise.all([q.reservation.release(), q.reservation.release()]);
    expect(released.map((o) => o.status)).toEqual(["applied", "duplicate"]);
    expect(await q.reservation.release()).toEqual({ status: "duplicate" });
    expect(q.reservation.state).toBe("released");
    expect(await budgets.status([key("1")])).toMatchObject([{ spend: 1_700_000, reserved: 0 }]);
    // a settle after a release is a harmless duplicate: nothing charged, no record
    expect(await q.reservation.settle(usage)).toEqual({ status: "duplicate" });
    expect(records).toHaveLength(1);
    expect(await budgets.status([key("1")])).toMatchObject([{ spend: 1_700_000, reserved: 0 }]);
  });

  it("an unsettled reservation expires by itself after the lease TTL", async () => {
    const { budgets, clock } = setup("2027-06-15T12:00:00Z", { reservationTtlMs: 30_000 });
    const held = await budgets.reserve(req([key("0.01")]));
    expect(held.ok).toBe(true);
    expect((await budgets.reserve(req([key("0.01")]))).ok).toBe(false);
    clock.advance(29_999);
    expect((await budgets.reserve(req([key("0.01")]))).ok).toBe(false);
    clock.advance(1);
    expect(await budgets.status([key("0.01")])).toMatchObject([{ reserved: 0 }]);
    expect((await budgets.reserve(req([key("0.01")]))).ok).toBe(true);
    // renew keeps a live reservation; an expired one cannot be revived.
    if (held.ok) expect(await held.reservation.renew()).toBe(false);
  });

  it("renew keeps a long-running reservation alive past its original TTL", async () => {
    const { budgets, clock } = setup("2027-06-15T12:00:00Z", { reservationTtlMs: 30_000 });
    const held = await budgets.reserve(req([key("0.01")]));
    if (!held.ok) throw new Error("denied");
    clock.advance(20_000);
    expect(await held.reservation.renew()).toBe(true);
    clock.advance(20_000);
    expect(await budgets.status([key("0.01")])).toMatchObject([{ reserved: CENT }]);
    clock.advance(10_000);
    expect(await budgets.status([key("0.01")])).toMatchObject([{ reserved: 0 }]);
    // Settling after expiry still charges the actual cost: the spend happened.
    await held.reservation.settle(ONE_CENT_USAGE);
    expect(await budgets.status([key("0.01")])).toMatchObject([{ spend: CENT, reserved: 0 }]);
  });

  it("shadow budgets count and alert but never deny", async () => {
    const { budgets, events } = setup();
    const spec = [key("0.01", { shadow: true })];
    for (let i = 0; i < 3; i++) {
      const r = await budgets.reserve(req(spec));
      if (!r.ok) throw new Error("shadow budget denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    }
    expect(await budgets.status(spec)).toMatchObject([{ spend: 3 * CENT, max: CENT }]);
    expect(events.filter((e) => e.type === "threshold")).toHaveLength(3);
  });

  it("resets exactly at midnight (no polling job) and reports the reset time", async () => {
    const { budgets, clock } = setup("2027-06-15T23:59:00Z");
    const spec = [key("0.01", { duration: "1d" })];
    const r = await budgets.reserve(req(spec));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle(ONE_CENT_USAGE);
    clock.t = Date.parse("2027-06-15T23:59:59.999Z");
    const denied = await budgets.reserve(req(spec));
    expect(denied.ok).toBe(false);
    if (!denied.ok) expect(denied.denial.resetAt).toBe(Date.parse("2027-06-16T00:00:00Z"));
    clock.t = Date.parse("2027-06-16T00:00:00Z");
    expect((await budgets.reserve(req(spec))).ok).toBe(true);
  });

  it("month ends and the leap day 2028-02-29 in America/New_York", async () => {
    const { budgets, clock } = setup("2028-02-29T12:00:00Z", { timeZone: "America/New_York" });
    const spec = [key("0.01", { duration: "1mo" })];
    const r = await budgets.reserve(req(spec));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle(ONE_CENT_USAGE);
    // 2028-03-01 00:00 in New York is 05:00Z; 23:59 local on the leap day is still February.
    clock.t = Date.parse("2028-03-01T04:59:59.999Z");
    const denied = await budgets.reserve(req(spec));
    expect(!denied.ok && denied.denial.resetAt).toBe(Date.parse("2028-03-01T05:00:00Z"));
    clock.t = Date.parse("2028-03-01T05:00:00Z");
    expect((await budgets.reserve(req(spec))).ok).toBe(true);
  });

  it("daily budgets in Asia/Kolkata and across a DST change in America/New_York", async () => {
    const { budgets, clock } = setup("2027-03-13T12:00:00Z");
    const kolkata = [key("0.01", { id: "in", duration: "1d", timeZone: "Asia/Kolkata" })];
    const ny = [key("0.01", { id: "ny", duration: "1d", timeZone: "America/New_York" })];
    for (const spec of [kolkata, ny]) {
      const r = await budgets.reserve(req(spec));
      if (!r.ok) throw new Error("denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    }
    // Kolkata midnight is 18:30Z.
    clock.t = Date.parse("2027-03-13T18:29:59.999Z");
    expect((await budgets.reserve(req(kolkata))).ok).toBe(false);
    clock.t = Date.parse("2027-03-13T18:30:00Z");
    expect((await budgets.reserve(req(kolkata))).ok).toBe(true);
    // New York springs forward on 2027-03-14; midnight of the 14th is still EST (05:00Z).
    clock.t = Date.parse("2027-03-14T04:59:59.999Z");
    expect((await budgets.reserve(req(ny))).ok).toBe(false);
    clock.t = Date.parse("2027-03-14T05:00:00Z");
    const r = await budgets.reserve(req(ny));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle(ONE_CENT_USAGE);
    // That day has 23 hours: the next reset is 2027-03-15 00:00 EDT = 04:00Z.
    clock.t = Date.parse("2027-03-15T03:59:59.999Z");
    const denied = await budgets.reserve(req(ny));
    expect(!denied.ok && denied.denial.resetAt).toBe(Date.parse("2027-03-15T04:00:00Z"));
    clock.t = Date.parse("2027-03-15T04:00:00Z");
    expect((await budgets.reserve(req(ny))).ok).toBe(true);
  });

  it("changing a budget's duration starts a fresh period", async () => {
    const { budgets } = setup();
    const r = await budgets.reserve(req([key("0.01", { duration: "1d" })]));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle(ONE_CENT_USAGE);
    expect((await budgets.reserve(req([key("0.01", { duration: "1d" })]))).ok).toBe(false);
    expect((await budgets.reserve(req([key("0.01", { duration: "7d" })]))).ok).toBe(true);
    // Raising the maximum keeps the period's spend.
    expect(await budgets.status([key("0.02", { duration: "1d" })])).toMatchObject([{ spend: CENT }]);
  });

  it("check mode denies once spend has reached the maximum and charges after the call", async () => {
    const { budgets } = setup("2027-06-15T12:00:00Z", { mode: "check" });
    const spec = [key("0.015")];
    const a = await budgets.reserve(req(spec));
    const b = await budgets.reserve(req(spec));
    if (!a.ok || !b.ok) throw new Error("denied");
    expect(a.maxTokens).toBeNull();
    expect(a.reservation.reserved).toBe(0);
    await a.reservation.settle(ONE_CENT_USAGE);
    await b.reservation.settle(ONE_CENT_USAGE); // LiteLLM's behaviour: concurrent calls can overshoot
    expect(await budgets.status(spec)).toMatchObject([{ spend: 2 * CENT }]);
    const c = await budgets.reserve(req(spec));
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.denial.message).toBe("Budget has been exceeded! Current cost: 0.02, Max budget: 0.015");
  });

  // LiteLLM blocks a key, user, team member, organization and every per-model budget at spend >= max, but a team, an
  // end user and the global budget only at spend > max (auth_checks.py). Check mode matches it scope by scope.
  it.each<[string, ">=" | ">", BudgetSpec]>([
    ["key", ">=", { scope: "key", id: "k1", maxBudget: "0.02" }],
    ["user", ">=", { scope: "user", id: "u1", maxBudget: "0.02" }],
    ["team member", ">=", { scope: "team_member", id: "u1", teamId: "t1", maxBudget: "0.02" }],
    ["organization", ">=", { scope: "organization", id: "o1", maxBudget: "0.02" }],
    ["team", ">", { scope: "team", id: "t1", maxBudget: "0.02" }],
    ["end user", ">", { scope: "end_user", id: "c1", maxBudget: "0.02" }],
    ["global", ">", { scope: "global", id: "proxy", maxBudget: "0.02" }],
    ["key per model", ">=", { scope: "key", id: "k1", model: "test-model", maxBudget: "0.02" }],
    ["team per model", ">=", { scope: "team", id: "t1", model: "test-model", maxBudget: "0.02" }],
    ["end user per model", ">=", { scope: "end_user", id: "c1", model: "test-model", maxBudget: "0.02" }],
  ])("check mode, %s: LiteLLM blocks at spend %s max", async (_name, rule, spec) => {
    const { budgets } = setup("2027-06-15T12:00:00Z", { mode: "check" });
    const max = 2 * CENT;
    const at = async (spend: number) => {
      const [before] = await budgets.status([spec]);
      await budgets.hydrate({ totals: [{ budget: spec, spendNano: spend - (before?.spend ?? 0) }] });
      const r = await budgets.reserve(req([spec]));
      if (r.ok) await r.reservation.release();
      return r;
    };
    expect((await at(max - 1)).ok).toBe(true);
    const atMax = await at(max);
    expect(atMax.ok).toBe(rule === ">");
    const over = await at(max + 1);
    expect(over.ok).toBe(false);
    if (!over.ok) {
      expect(over.denial).toMatchObject({ spend: max + 1, max, requested: 0 });
      if (spec.model === undefined) expect(over.denial.message).toMatch(/0\.020000001.*0\.02$/);
    }
    if (!atMax.ok) expect(atMax.denial).toMatchObject({ spend: max, max });
    // nothing was held or charged by the checks
    expect(await budgets.status([spec])).toMatchObject([{ spend: max + 1, reserved: 0 }]);
  });

  it("reserve mode keeps its own exact rule on every scope: spend + held + hold <= max", async () => {
    const { budgets } = setup();
    const team: BudgetSpec = { scope: "team", id: "t1", maxBudget: "0.02" };
    await budgets.hydrate({ totals: [{ budget: team, spendNano: CENT }] });
    const a = await budgets.reserve(req([team])); // 0.01 + 0.01 <= 0.02
    expect(a.ok).toBe(true);
    const b = await budgets.reserve(req([team]));
    expect(b.ok).toBe(false);
  });

  it("durations from LiteLLM data load: None/NULL mean never, 1hr reads as 1h with a warning event", async () => {
    const { budgets, events } = setup("2027-06-15T12:30:00Z");
    const never = await budgets.status([key("1", { duration: " None " }), key("1", { id: "k2", duration: "NULL" })]);
    expect(never.map((s) => s.resetAt)).toEqual([null, null]);
    expect(events).toEqual([]);
    const [hourly] = await budgets.status([key("1", { id: "k3", duration: "1hr" })]);
    expect(hourly?.resetAt).toBe(Date.parse("2027-06-15T13:00:00Z"));
    expect(events).toEqual([
      {
        type: "duration_warning",
        budget: { scope: "key", id: "k3" },
        duration: "1hr",
        readAs: "1h",
        message: expect.stringContaining('read as "1h"'),
      },
    ]);
    // 5h without a start resets on LiteLLM's grid: after 20:00 the next reset is 01:00 the next day
    const { budgets: late } = setup("2027-06-15T22:30:00Z");
    const [five] = await late.status([key("1", { duration: "5h" })]);
    expect([five?.periodStart, five?.resetAt]).toEqual([
      Date.parse("2027-06-15T20:00:00Z"),
      Date.parse("2027-06-16T01:00:00Z"),
    ]);
    // with a start, fixed 5-hour periods from it
    const [started] = await late.status([key("1", { duration: "5h", startedAt: Date.parse("2027-06-15T09:00:00Z") })]);
    expect(started?.resetAt).toBe(Date.parse("2027-06-16T00:00:00Z"));
  });

  it("shrink reserves what remains and reports the largest max_tokens that fits every budget", async () => {
    const { budgets } = setup("2027-06-15T12:00:00Z", { shrink: true });
    const spec = [key("0.012"), { scope: "team", id: "t1", maxBudget: "0.0105" } as BudgetSpec];
    const first = await budgets.reserve(req(spec));
    if (!first.ok) throw new Error("denied");
    await first.reservation.settle({ inputTokens: 2000, outputTokens: 1000 }); // $0.004
    // Team has $0.0065 left: 2000 input tokens ($0.002) + 2250 output tokens ($0.0045).
    const second = await budgets.reserve(req(spec));
    expect(second).toMatchObject({ ok: true, shrunk: true, maxTokens: 2250 });
    if (second.ok) expect(second.reservation.reserved).toBe(6_500_000);
    expect(await budgets.status(spec)).toMatchObject([{ reserved: 6_500_000 }, { reserved: 6_500_000 }]);
    // Nothing left for even one output token: denied.
    const third = await budgets.reserve(req(spec));
    expect(third.ok).toBe(false);
    if (!third.ok) expect(third.denial.budget.scope).toBe("team");
  });

  it("uses the model's max_output_tokens, then defaultMaxTokens, and the worst reasoning price", async () => {
    const { budgets } = setup("2027-06-15T12:00:00Z", { defaultMaxTokens: 100 });
    const a = await budgets.reserve(req([key("10")], { maxTokens: undefined, inputTokens: 0 }));
    expect(a.ok && a.reservation.reserved).toBe(8000 * 2000);
    const b = await budgets.reserve(req([key("10")], { model: "test-reasoner", maxTokens: null, inputTokens: 10 }));
    expect(b.ok && [b.maxTokens, b.reservation.reserved]).toEqual([100, 10 * 1000 + 100 * 4000]);
    const c = await budgets.reserve(req([key("10")], { model: "test-embed", inputTokens: 10 }));
    expect(c.ok && [c.maxTokens, c.reservation.reserved]).toEqual([0, 1000]);
  });

  it("per-model budgets apply only to their model", async () => {
    const { budgets } = setup();
    const spec = [key("10"), key("0.01", { model: "openai/test-model", alias: "prod" })];
    const a = await budgets.reserve(req(spec));
    if (!a.ok) throw new Error("denied");
    expect(a.reservation.budgets).toHaveLength(2);
    await a.reservation.settle(ONE_CENT_USAGE);
    const b = await budgets.reserve(req(spec));
    expect(!b.ok && b.denial.message).toBe(
      "LiteLLM Virtual Key: k1, key_alias: prod, exceeded budget for model=openai/test-model",
    );
    const other = await budgets.reserve(req(spec, { model: "test-reasoner" }));
    expect(other.ok && other.reservation.budgets).toEqual([{ scope: "key", id: "k1" }]);
  });

  it("threshold and soft-budget alerts fire once per period, even across 100 concurrent settles", async () => {
    const { budgets, events, clock } = setup("2027-06-15T12:00:00Z");
    const spec = [key("1", { softBudget: "0.3", duration: "1d" })];
    const res = await Promise.all(Array.from({ length: 100 }, () => budgets.reserve(req(spec))));
    await Promise.all(res.map((r) => r.ok && r.reservation.settle(ONE_CENT_USAGE)));
    const alerts = events.filter((e) => e.type === "threshold" || e.type === "soft_budget");
    expect(alerts.map((e) => (e.type === "threshold" ? e.threshold : "soft")).sort()).toEqual([0.5, 0.8, 1, "soft"]);
    const fifty = alerts.find((e) => e.type === "threshold" && e.threshold === 0.5);
    expect(fifty).toMatchObject({ spend: 50 * CENT, max: 1_000_000_000, resetAt: Date.parse("2027-06-16T00:00:00Z") });
    clock.t = Date.parse("2027-06-16T00:00:00Z");
    const r = await budgets.reserve(req(spec, { maxTokens: 249_000, inputTokens: 2000 }));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle({ inputTokens: 2000, outputTokens: 249_000 }); // $0.5 in the new period
    expect(events.filter((e) => e.type === "threshold")).toHaveLength(4);
  });

  it("unknown models: deny with UNKNOWN_MODEL, or admit, charge nothing and warn", async () => {
    const strict = setup();
    await expect(strict.budgets.reserve(req([key("1")], { model: "mystery" }))).rejects.toMatchObject({
      code: "UNKNOWN_MODEL",
    });
    const lax = setup("2027-06-15T12:00:00Z", { unknownModel: "allow" });
    const r = await lax.budgets.reserve(req([key("1")], { model: "mystery" }));
    if (!r.ok) throw new Error("denied");
    const s = applied(await r.reservation.settle({ inputTokens: 1000, outputTokens: 1000 }));
    expect(s.cost).toBe(0);
    expect(lax.events).toEqual([{ type: "unknown_model", model: "mystery", requestId: r.reservation.requestId }]);
  });

  it("hydrate after a simulated restart restores the current period and keeps enforcing", async () => {
    const first = setup("2027-06-15T12:00:00Z");
    const daily = key("0.05", { duration: "1d" });
    const lifetime: BudgetSpec = { scope: "team", id: "t1", maxBudget: "0.06" };
    for (let i = 0; i < 3; i++) {
      const r = await first.budgets.reserve(req([daily, lifetime]));
      if (!r.ok) throw new Error("denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    }
    first.clock.t = Date.parse("2027-06-16T08:00:00Z");
    for (let i = 0; i < 2; i++) {
      const r = await first.budgets.reserve(req([daily, lifetime]));
      if (!r.ok) throw new Error("denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    }
    // Restart: a new, empty store and engine; the ledger survived.
    const second = setup("2027-06-16T09:00:00Z");
    const restored = await second.budgets.hydrate({ budgets: [daily, lifetime], records: first.records });
    expect(restored.map((s) => s.spend)).toEqual([2 * CENT, 5 * CENT]);
    expect((await second.budgets.reserve(req([daily, lifetime]))).ok).toBe(true);
    const denied = await second.budgets.reserve(req([daily, lifetime]));
    expect(!denied.ok && denied.denial.budget).toEqual({ scope: "team", id: "t1" });
    // Totals work too (floats round up to the next nano-USD).
    const third = setup("2027-06-16T09:00:00Z");
    await third.budgets.hydrate({ totals: [{ budget: daily, spend: 0.05 }] });
    expect((await third.budgets.reserve(req([daily]))).ok).toBe(false);
  });

  it("hydrate keeps two budgets of one key with different durations apart", async () => {
    const first = setup("2027-06-15T12:00:00Z");
    const daily = key("0.05", { duration: "1d" });
    const monthly = key("0.10", { duration: "1mo" });
    for (const day of ["2027-06-15T12:00:00Z", "2027-06-16T08:00:00Z", "2027-06-16T08:30:00Z"]) {
      first.clock.t = Date.parse(day);
      const r = await first.budgets.reserve(req([daily, monthly]));
      if (!r.ok) throw new Error("denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    }
    const second = setup("2027-06-16T09:00:00Z");
    const restored = await second.budgets.hydrate({ budgets: [daily, monthly], records: first.records });
    // The daily budget's period holds today's 2 cents; the monthly one's all 3.
    expect(restored.map((s) => s.spend)).toEqual([2 * CENT, 3 * CENT]);
    expect((await second.budgets.status([daily, monthly])).map((s) => s.spend)).toEqual([2 * CENT, 3 * CENT]);
    // Totals land on their own budget too.
    const third = setup("2027-06-16T09:00:00Z");
    await third.budgets.hydrate({
      totals: [
        { budget: daily, spend: 0.01 },
        { budget: monthly, spend: 0.07 },
      ],
    });
    expect((await third.budgets.status([daily, monthly])).map((s) => s.spend)).toEqual([CENT, 7 * CENT]);
  });

  it("hydrate counts each ledger record only toward the budget windows it was charged to", async () => {
    const first = setup("2027-06-15T12:00:00Z");
    const daily = key("0.05", { duration: "1d" });
    const monthly = key("0.10", { duration: "1mo" });
    const charge = async (iso: string, budgets: BudgetSpec[]) => {
      first.clock.t = Date.parse(iso);
      const r = await first.budgets.reserve(req(budgets));
      if (!r.ok) throw new Error("denied");
      await r.reservation.settle(ONE_CENT_USAGE);
    };
    await charge("2027-06-15T12:00:00Z", [daily, monthly]); // yesterday: monthly only counts it now
    await charge("2027-06-16T08:00:00Z", [daily, monthly]);
    await charge("2027-06-16T08:10:00Z", [monthly]); // a request that carried only the monthly budget
    await charge("2027-06-16T08:20:00Z", [daily]); // and one that carried only the daily budget
    const day = (iso: string) => `1d:${Date.parse(iso)}`;
    const month = `1mo:${Date.parse("2027-07-01T00:00:00Z")}`;
    expect(first.records.map((r) => r.periods)).toEqual([
      [day("2027-06-16T00:00:00Z"), month],
      [day("2027-06-17T00:00:00Z"), month],
      [month],
      [day("2027-06-17T00:00:00Z")],
    ]);
    const live = (await first.budgets.status([daily, monthly])).map((s) => s.spend);
    expect(live).toEqual([2 * CENT, 3 * CENT]);
    // Restart: both budgets are rebuilt exactly as they were counted live.
    const second = setup("2027-06-16T09:00:00Z");
    const restored = await second.budgets.hydrate({ budgets: [daily, monthly], records: first.records });
    expect(restored.map((s) => s.spend)).toEqual(live);
    // A record names the schedule too: a 2-day budget of the same key gets none of them.
    const third = setup("2027-06-16T09:00:00Z");
    const twoDay = key("0.10", { duration: "2d" });
    expect((await third.budgets.hydrate({ budgets: [twoDay], records: first.records })).map((s) => s.spend)).toEqual([
      0,
    ]);
    // Records written before `periods` existed are still read by identity and time, as before: each then counts
    // toward every budget of its key whose period contains it (the gap `periods` closes).
    const legacy = first.records.map(({ periods: _periods, ...old }) => old);
    const fourth = setup("2027-06-16T09:00:00Z");
    const old = await fourth.budgets.hydrate({ budgets: [daily, monthly], records: legacy });
    expect(old.map((s) => s.spend)).toEqual([3 * CENT, 4 * CENT]);
  });

  it("rejects bad budgets with typed errors before touching the store", async () => {
    const { budgets } = setup();
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e) => (e instanceof TollgateError ? e.code : String(e)),
      );
    expect(await codeOf(budgets.reserve(req([key("1", { duration: "30" })])))).toBe("INVALID_DURATION");
    expect(await codeOf(budgets.reserve(req([key("1", { duration: "1y" })])))).toBe("INVALID_DURATION");
    expect(await codeOf(budgets.reserve(req([key("1", { id: "a{b}" })])))).toBe("INVALID_SCOPE");
    expect(await codeOf(budgets.reserve(req([key("-1")])))).toBe("INVALID_AMOUNT");
    expect(await codeOf(budgets.reserve(req([key("1", { timeZone: "Nowhere/City" })])))).toBe("INVALID_ARGUMENT");
    expect(await codeOf(budgets.reserve(req([key("1")], { maxTokens: -5 })))).toBe("INVALID_AMOUNT");
    expect(await codeOf(budgets.reserve(req([key("1")], { model: "test-embed", maxTokens: 1.5 })))).toBe(
      "INVALID_AMOUNT",
    );
    expect(await codeOf(budgets.reserve(req([{ scope: "team_member", id: "u", maxBudget: "1" }])))).toBe(
      "INVALID_SCOPE",
    );
  });

  it("a failing sink does not lose the charge; it becomes an event", async () => {
    const { budgets, events } = setup("2027-06-15T12:00:00Z", {
      sink: {
        write: () => {
          throw new Error("db down");
        },
      },
    });
    const r = await budgets.reserve(req([key("1")]));
    if (!r.ok) throw new Error("denied");
    await r.reservation.settle(ONE_CENT_USAGE);
    expect(await budgets.status([key("1")])).toMatchObject([{ spend: CENT }]);
    expect(events.map((e) => e.type)).toEqual(["sink_error"]);
  });
});
