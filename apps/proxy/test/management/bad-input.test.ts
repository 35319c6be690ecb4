import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../src/management/index.js";
import { DIALECTS } from "../db/helpers.js";
import { startManagement, type TestManagement } from "./helpers.js";

const SQL = `'; DROP TABLE virtual_keys; --`;
const META = [SQL, `" OR "1"="1`, "\\'; SELECT pg_sleep(5); --", "%_*?", "$1 $$ ; ) ( ` \\\\", "ünï😀"];

describe.each(DIALECTS)("bad input on %s", (dialect) => {
  let m: TestManagement;
  beforeAll(async () => {
    m = await startManagement(dialect);
  });
  afterAll(async () => {
    await m.cleanup();
  });

  /** Every refusal is a 4xx in OpenAI's shape, and the database is unchanged. */
  async function rejects(path: string, body: unknown, param?: string, raw?: string) {
    const before = (await m.repo.listKeys({ page: 1, size: 100 })).total;
    const r = await m.call("POST", path, raw === undefined ? { body } : { rawBody: raw });
    expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body).toEqual({
      error: {
        message: expect.any(String),
        type: expect.any(String),
        param: expect.anything(),
        code: String(r.status),
      },
    });
    if (param !== undefined) expect(r.body.error.param).toBe(param);
    expect((await m.repo.listKeys({ page: 1, size: 100 })).total).toBe(before);
    return r.body.error.message as string;
  }

  it("invalid JSON, and the seed's broken forms (trailing commas, # comments, unquoted 10s), answer 400", async () => {
    expect(await rejects("/key/generate", null, "body", "{not json")).toMatch(/Invalid JSON/);
    await rejects("/key/generate", null, "body", '{"max_budget": 10,}');
    await rejects("/team/new", null, "body", '{"team_alias": "x", "budget_duration": 10s,}');
    await rejects("/key/generate", null, "body", '{\n"team_id": "core-infra", # [OPTIONAL]\n"max_budget": 10,\n}');
    await rejects("/key/generate", null, "body", "[1, 2]");
    await rejects("/key/generate", null, "body", '"a string"');
  });

  it("wrong types, negative or non-numeric budgets and limits", async () => {
    await rejects("/key/generate", { max_budget: -1 }, "max_budget");
    await rejects("/key/generate", { max_budget: "ten" }, "max_budget");
    await rejects("/key/generate", { max_budget: true }, "max_budget");
    await rejects("/key/generate", { max_budget: 1e300 }, "max_budget");
    await rejects("/key/generate", { soft_budget: -0.01 }, "soft_budget");
    await rejects("/key/generate", { rpm_limit: -5 }, "rpm_limit");
    await rejects("/key/generate", { rpm_limit: 1.5 }, "rpm_limit");
    await rejects("/key/generate", { tpm_limit: "lots" }, "tpm_limit");
    await rejects("/key/generate", { max_parallel_requests: [] }, "max_parallel_requests");
    await rejects("/key/generate", { models: "gpt-4o" }, "models");
    await rejects("/key/generate", { models: [1, 2] }, "models");
    await rejects("/key/generate", { metadata: "x" }, "metadata");
    await rejects("/key/generate", { model_rpm_limit: { "gpt-4o": -1 } }, "model_rpm_limit");
    await rejects("/key/generate", { model_max_budget: { "gpt-4o": { time_period: "1d" } } }, "model_max_budget");
    await rejects("/key/generate", { model_max_budget: { "gpt-4o": "lots" } }, "model_max_budget");
    await rejects("/key/generate", { key_alias: 42 }, "key_alias");
    await rejects("/key/generate", { blocked: "yes" }, "blocked");
    await rejects("/key/generate", { key: "not-sk-prefixed" }, "key");
    await rejects("/team/new", { max_budget: -3 }, "max_budget");
    await rejects("/team/member_add", { team_id: "none", member: { role: "owner", user_id: "x" } });
    await rejects("/customer/new", { user_id: "c-bad", max_budget: "-1" }, "max_budget");
    await rejects("/budget/new", { rpm_limit: "9.5" }, "rpm_limit");
    // Numeric strings are accepted like Pydantic does.
    const ok = await m.call("POST", "/key/generate", { body: { max_budget: "10.5", rpm_limit: "7" } });
    expect(ok.body).toMatchObject({ max_budget: 10.5, rpm_limit: 7 });
  });

  it("bad durations and unknown roles", async () => {
    for (const d of ["10", "1y", "-1d", "1.5h", "0d", "ten days"]) {
      await rejects("/key/generate", { budget_duration: d }, "budget_duration");
      await rejects("/key/generate", { duration: d }, "duration");
    }
    await rejects("/key/generate", { budget_duration: 10 }, "budget_duration");
    await rejects("/user/new", { user_role: "superuser" }, "user_role");
    await rejects("/user/new", { user_role: "PROXY_ADMIN" }, "user_role");
    await rejects("/team/new", { team_member_budget_duration: "soon" }, "team_member_budget_duration");
    // LiteLLM's lenient forms are read as LiteLLM reads them and stored canonically.
    const ok = await m.call("POST", "/key/generate", { body: { budget_duration: "1hr", max_budget: 1 } });
    expect(ok.body.budget_duration).toBe("1h");
  });

  it("ids with { } or NUL, over-long strings (a 1 MB alias) are refused", async () => {
    await rejects("/team/new", { team_id: "a{b}" }, "team_id");
    await rejects("/user/new", { user_id: "u}" }, "user_id");
    await rejects("/key/generate", { key_alias: "x".repeat(1024 * 1024) }, "key_alias");
    await rejects("/key/generate", { key_alias: "a\u0000b" }, "key_alias");
    await rejects("/key/generate", { metadata: { big: "y".repeat(100_000) } }, "metadata");
    await rejects("/customer/new", { user_id: "" }, "user_id");
    const e = await m.auth.endUserPolicy.bind(m.auth);
    expect(() => e("bad{user}")).toThrow(/must not contain/);
  });

  it("SQL metacharacters in every string field are stored and returned verbatim", async () => {
    for (const [i, s] of META.entries()) {
      const team = await m.call("POST", "/team/new", {
        body: { team_id: `t-${i}-${s}`, team_alias: s, metadata: { note: s }, models: [s] },
      });
      expect(team.status, JSON.stringify(team.body)).toBe(200);
      expect(team.body).toMatchObject({ team_id: `t-${i}-${s}`, team_alias: s, metadata: { note: s }, models: [s] });
      const user = await m.call("POST", "/user/new", {
        body: { user_id: `u-${i}-${s}`, user_alias: s, user_email: `${i}${s}@x`, auto_create_key: false },
      });
      expect(user.status).toBe(200);
      const key = await m.call("POST", "/key/generate", {
        body: {
          key_alias: `k-${i}-${s}`,
          user_id: `u-${i}-${s}`,
          team_id: `t-${i}-${s}`,
          metadata: { s },
          models: [s],
        },
      });
      expect(key.status).toBe(200);
      const info = await m.call("GET", "/key/info", { query: { key: key.body.key } });
      expect(info.body.info).toMatchObject({
        key_alias: `k-${i}-${s}`,
        user_id: `u-${i}-${s}`,
        team_id: `t-${i}-${s}`,
        metadata: { s },
        models: [s],
      });
      const list = await m.call("GET", "/key/list", { query: { key_alias: `k-${i}-${s}` } });
      expect(list.body.keys).toEqual([hashSecret(key.body.key)]);
      const cust = await m.call("POST", "/customer/new", { body: { user_id: `c-${i}-${s}`, alias: s } });
      expect(cust.body).toMatchObject({ user_id: `c-${i}-${s}`, alias: s });
      const teamInfo = await m.call("GET", "/team/info", { query: { team_id: `t-${i}-${s}` } });
      expect(teamInfo.body.keys).toHaveLength(1);
    }
    // Every table still exists and answers.
    expect((await m.call("GET", "/key/list", { query: { size: "100" } })).status).toBe(200);
    expect((await m.call("GET", "/team/list")).status).toBe(200);
  });

  it("duplicate team_id, user_id, key alias and customer: 400, the first stays as it was", async () => {
    await m.call("POST", "/team/new", { body: { team_id: "dup-team", max_budget: 1 } });
    await rejects("/team/new", { team_id: "dup-team", max_budget: 2 }, "team_id");
    await m.call("POST", "/user/new", { body: { user_id: "dup-user", max_budget: 1 } });
    await rejects("/user/new", { user_id: "dup-user", max_budget: 2 }, "user_id");
    await m.call("POST", "/key/generate", { body: { key_alias: "dup-alias" } });
    await rejects("/key/generate", { key_alias: "dup-alias" }, "key_alias");
    await m.call("POST", "/customer/new", { body: { user_id: "dup-cust" } });
    await rejects("/customer/new", { user_id: "dup-cust" }, "user_id");
    expect((await m.repo.getTeam("dup-team"))?.max_budget).toBe(1);
    expect((await m.repo.getUser("dup-user"))?.max_budget).toBe(1);
  });

  it("100 concurrent /key/generate: unique ids; concurrent creates of one team or alias: exactly one wins", async () => {
    const before = (await m.repo.listKeys({ page: 1, size: 1 })).total;
    const rs = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        m.call("POST", "/key/generate", { body: { key_alias: `conc-${i}`, max_budget: 1 } }),
      ),
    );
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(new Set(rs.map((r) => r.body.key)).size).toBe(100);
    expect((await m.repo.listKeys({ page: 1, size: 1 })).total).toBe(before + 100);

    const teams = await Promise.all(
      Array.from({ length: 20 }, () => m.call("POST", "/team/new", { body: { team_id: "race-team" } })),
    );
    expect(teams.filter((r) => r.status === 200)).toHaveLength(1);
    expect(teams.filter((r) => r.status === 400)).toHaveLength(19);
    const aliases = await Promise.all(
      Array.from({ length: 20 }, () => m.call("POST", "/key/generate", { body: { key_alias: "race-alias" } })),
    );
    expect(aliases.filter((r) => r.status === 200)).toHaveLength(1);
    expect(aliases.filter((r) => r.status === 400)).toHaveLength(19);
    expect((await m.repo.getKeysByAlias(["race-alias"])).length).toBe(1);
  });
});
