import { describe, expect, it } from "vitest";
import { createBudgets, litellmBudgets } from "../src/index.js";
import { applied, clockAt, ONE_CENT_REQUEST, ONE_CENT_USAGE, PRICES, STORES } from "./helpers.js";

describe("litellmBudgets: which budgets LiteLLM enforces", () => {
  it("a team key: key, team, team member and end user, but not the personal user budget", () => {
    const specs = litellmBudgets({
      key: { token: "hk", key_alias: "prod", max_budget: 10, budget_duration: "30d" },
      user: { user_id: "u1", max_budget: 5 },
      team: { team_id: "t1", max_budget: "100", soft_budget: 80, budget_duration: "1mo" },
      team_member: { user_id: "u1", team_id: "t1", max_budget_in_team: 0.000000000001 },
      end_user: { end_user_id: "c1", max_budget: 1 },
    });
    expect(specs.map((s) => `${s.scope}:${s.id}`)).toEqual(["key:hk", "team:t1", "team_member:u1", "end_user:c1"]);
    expect(specs[0]).toMatchObject({ alias: "prod", maxBudget: 10, duration: "30d" });
    expect(specs[1]).toMatchObject({ softBudget: 80, duration: "1mo" });
    expect(specs[2]).toMatchObject({ teamId: "t1" });
  });
  it("a personal key includes the user budget; org and global only when max_budget > 0", () => {
    const specs = litellmBudgets({
      key: { token: "hk" },
      user: { user_id: "u1", max_budget: 5, budget_duration: "1d" },
      organization: { organization_id: "o1", max_budget: 0 },
      global: { max_budget: 1000, budget_duration: "30d" },
    });
    expect(specs.map((s) => `${s.scope}:${s.id}`)).toEqual(["user:u1", "global:proxy"]);
  });
  it("model_max_budget becomes per-model budgets; a key entry replaces the team's; negative means unlimited", () => {
    const specs = litellmBudgets({
      key: { token: "hk", model_max_budget: { "gpt-4o": { max_budget: 1, budget_duration: "1d" } } },
      team: {
        team_id: "t1",
        model_max_budget: {
          "gpt-4o": { max_budget: 50 },
          "claude-sonnet-4-5-20250929": { budget_limit: 5, time_period: "7d" },
          o3: { max_budget: -1 },
        },
      },
    });
    expect(specs).toEqual([
      { scope: "key", id: "hk", model: "gpt-4o", maxBudget: 1, duration: "1d" },
      { scope: "team", id: "t1", model: "claude-sonnet-4-5-20250929", maxBudget: 5, duration: "7d" },
    ]);
  });
});

describe.each(STORES)("litellmBudgets end to end on the $name store", ({ create }) => {
  it("a tiny max_budget_in_team blocks the member (LiteLLM's docs example) with LiteLLM's message", async () => {
    const clock = clockAt("2027-06-15T12:00:00Z");
    const store = create(clock);
    try {
      const budgets = createBudgets({ store, prices: PRICES, now: clock.now, mode: "check" });
      const specs = litellmBudgets({
        team: { team_id: "t1", max_budget: 100 },
        team_member: { user_id: "ishaan", team_id: "t1", max_budget_in_team: 0.000000000001 },
      });
      const r = await budgets.reserve({ requestId: "a", budgets: specs, ...ONE_CENT_REQUEST });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.denial.message).toBe(
          "Budget has been exceeded! User=ishaan in Team=t1 Current cost: 0.0, Max budget: 0.0",
        );
      }
      // The team alone still admits and is charged after the call.
      const t = await budgets.reserve({ requestId: "b", budgets: specs.slice(0, 1), ...ONE_CENT_REQUEST });
      if (!t.ok) throw new Error("denied");
      const s = applied(await t.reservation.settle(ONE_CENT_USAGE));
      expect(s.spend).toEqual([10_000_000]);
    } finally {
      await store.close();
    }
  });
});
