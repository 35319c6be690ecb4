import { describe, expect, it } from "vitest";
import { errorFrom } from "../../ui/src/api";
import { count, daysBetween, share, timeLeft, usd } from "../../ui/src/format";
import { BUDGET_SPECS, CUSTOMER_SPECS, keySpecs, TEAM_SPECS } from "../../ui/src/specs";
import { type FieldSpec, rawOf, validateForm } from "../../ui/src/validate";

const keyForm = keySpecs([{ value: "t1", label: "Team one" }], true);

describe("form validation before sending", () => {
  it("the key form has every limit and budget field of /key/generate", () => {
    const names = keyForm.map((s) => s.name);
    for (const f of [
      "key_alias",
      "team_id",
      "user_id",
      "models",
      "duration",
      "max_budget",
      "soft_budget",
      "budget_duration",
      "budget_id",
      "rpm_limit",
      "tpm_limit",
      "max_parallel_requests",
      "model_rpm_limit",
      "model_tpm_limit",
      "model_max_budget",
      "metadata",
    ]) {
      expect(names).toContain(f);
    }
  });

  it("builds a create body with LiteLLM's types and omits empty fields", () => {
    const { body, errors } = validateForm(keyForm, {
      key_alias: " ci-bot ",
      team_id: "t1",
      models: "gpt-4o, gpt-4o-mini, gpt-4o",
      max_budget: "12.5",
      budget_duration: "30d",
      rpm_limit: "60",
      tpm_limit: "",
      model_rpm_limit: '{"gpt-4o": 10}',
      model_max_budget: '{"gpt-4o": {"budget_limit": 5, "time_period": "1d"}}',
      metadata: "",
    });
    expect(errors).toEqual({});
    expect(body).toEqual({
      key_alias: "ci-bot",
      team_id: "t1",
      models: ["gpt-4o", "gpt-4o-mini"],
      max_budget: 12.5,
      budget_duration: "30d",
      rpm_limit: 60,
      model_rpm_limit: { "gpt-4o": 10 },
      model_max_budget: { "gpt-4o": { budget_limit: 5, time_period: "1d" } },
    });
  });

  it("names each bad field with a readable message and sends nothing", () => {
    const { body, errors } = validateForm(keyForm, {
      max_budget: "-1",
      soft_budget: "ten",
      budget_duration: "10 days",
      rpm_limit: "1.5",
      tpm_limit: "-3",
      max_parallel_requests: "1e3",
      model_rpm_limit: '{"gpt-4o": -1}',
      model_tpm_limit: "{bad json",
      model_max_budget: '{"gpt-4o": {"time_period": "1d"}}',
      metadata: "[1,2]",
      team_id: "not-a-team",
      duration: "forever",
      user_id: "has space",
    });
    expect(body).toEqual({});
    expect(Object.keys(errors).sort()).toEqual(
      [
        "max_budget",
        "soft_budget",
        "budget_duration",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "model_rpm_limit",
        "model_tpm_limit",
        "model_max_budget",
        "metadata",
        "team_id",
        "duration",
        "user_id",
      ].sort(),
    );
    expect(errors.max_budget).toMatch(/non-negative amount/);
    expect(errors.budget_duration).toMatch(/30d/);
    expect(errors.model_rpm_limit).toMatch(/"gpt-4o" must be a whole number/);
    expect(errors.model_tpm_limit).toMatch(/Not valid JSON/);
    expect(errors.model_max_budget).toMatch(/budget_limit/);
  });

  it("accepts every LiteLLM duration unit and rejects the rest", () => {
    const spec: FieldSpec[] = [{ name: "d", label: "D", kind: "duration" }];
    for (const d of ["30s", "30m", "24h", "30d", "2w", "1mo"]) expect(validateForm(spec, { d }).errors).toEqual({});
    for (const d of ["0d", "1y", "d", "1.5d", "10 d", "-1d"]) expect(validateForm(spec, { d }).errors.d).toBeDefined();
  });

  it("requires required fields", () => {
    const { errors } = validateForm(TEAM_SPECS, { team_alias: "  " });
    expect(errors.team_alias).toBe("Team name is required.");
  });

  it("edit sends only the changed fields; a cleared limit is null; create-only ids are never sent", () => {
    const initial = rawOf(TEAM_SPECS, { team_id: "t1", team_alias: "A", max_budget: 10, rpm_limit: 5, models: ["m"] });
    const raw = { ...initial, team_id: "changed", max_budget: "20", rpm_limit: "", models: "" };
    const { body, errors } = validateForm(TEAM_SPECS, raw, "edit", initial);
    expect(errors).toEqual({});
    expect(body).toEqual({ max_budget: 20, rpm_limit: null, models: [] });
  });

  it("an end user gets either max_budget or budget_id, not both (LiteLLM's rule)", () => {
    const { errors } = validateForm(CUSTOMER_SPECS, { user_id: "u1", max_budget: "1", budget_id: "b1" });
    expect(errors.max_budget).toMatch(/either/);
    // editing the amount of an end user whose budget row is linked sends only the amount
    const initial = { user_id: "u1", max_budget: "1", budget_id: "b1" };
    const edit = validateForm(CUSTOMER_SPECS, { ...initial, max_budget: "2" }, "edit", initial);
    expect(edit).toEqual({ body: { max_budget: 2 }, errors: {} });
  });

  it("budget table per-model entries use max_budget/budget_duration", () => {
    const ok = validateForm(BUDGET_SPECS, {
      budget_id: "b",
      model_max_budget: '{"gpt-4o": {"max_budget": "0.5", "budget_duration": "1d"}}',
    });
    expect(ok.errors).toEqual({});
    const bad = validateForm(BUDGET_SPECS, { budget_id: "b", model_max_budget: '{"gpt-4o": {"budget_limit": 1}}' });
    expect(bad.errors.model_max_budget).toMatch(/max_budget/);
  });
});

describe("API errors become readable messages tied to their field", () => {
  it("reads OpenAI's error shape with param", () => {
    const e = errorFrom(400, {
      error: { message: "max_budget must be >= 0", type: "invalid_request_error", param: "max_budget", code: "400" },
    });
    expect([e.status, e.message, e.type, e.param]).toEqual([
      400,
      "max_budget must be >= 0",
      "invalid_request_error",
      "max_budget",
    ]);
  });
  it("treats param 'None' as no field", () => {
    expect(
      errorFrom(401, { error: { message: "Authentication Error", type: "auth_error", param: "None" } }).param,
    ).toBeNull();
  });
  it("reads LiteLLM's string errors and FastAPI details", () => {
    expect(errorFrom(404, { error: "No keys found" }).message).toBe("No keys found");
    expect(errorFrom(400, { detail: { error: "Team not found" } }).message).toBe("Team not found");
    const v = errorFrom(422, { detail: [{ loc: ["body", "rpm_limit"], msg: "value is not a valid integer" }] });
    expect([v.param, v.message]).toEqual(["rpm_limit", "value is not a valid integer"]);
  });
  it("falls back to the status when the body says nothing", () => {
    expect(errorFrom(502, "", "Bad Gateway").message).toBe("502 Bad Gateway");
    expect(errorFrom(0, null).message).toMatch(/could not be reached/);
  });
});

describe("formatting", () => {
  it("shows LLM-sized amounts", () => {
    expect(usd(0)).toBe("$0.00");
    expect(usd(0.000123)).toBe("$0.000123");
    expect(usd(0.0512)).toBe("$0.0512");
    expect(usd(1234.5)).toBe("$1,234.50");
    expect(usd(null)).toBe("—");
    expect(count(1234567)).toBe("1,234,567");
  });
  it("counts down to a reset", () => {
    expect(timeLeft(0)).toBe("now");
    expect(timeLeft(900)).toBe("1s");
    expect(timeLeft(65_000)).toBe("1m 05s");
    expect(timeLeft(2 * 3_600_000 + 3 * 60_000)).toBe("2h 03m");
    expect(timeLeft(3 * 86_400_000 + 4 * 3_600_000)).toBe("3d 04h");
  });
  it("lists the days of a range and shares of limits", () => {
    expect(daysBetween("2026-02-27", "2026-03-02")).toEqual(["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]);
    expect(daysBetween("2026-03-02", "2026-03-01")).toEqual([]);
    expect(share(5, 10)).toBe(0.5);
    expect(share(15, 10)).toBe(1);
    expect(share(1, null)).toBe(0);
    expect(share(1, 0)).toBe(1);
  });
});
