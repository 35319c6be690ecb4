/**
 * The admin UI's database side on a real management instance (SQLite): who is signed in (role, team roles), and the
 * limits and budgets of a key or team, with LiteLLM's access rules.
 */
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyHttpError } from "../../src/errors.js";
import { managementUiBackend } from "../../src/ui-backend.js";
import type { UiBackend } from "../../src/ui-routes.js";
import { MASTER, startManagement, type TestManagement } from "../management/helpers.js";

const req = (key: string) => ({ headers: { authorization: `Bearer ${key}` } }) as unknown as IncomingMessage;

let m: TestManagement;
let ui: UiBackend;
const keys: Record<string, { key: string; token: string }> = {};

async function refusal(p: Promise<unknown>): Promise<ProxyHttpError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProxyHttpError) return err;
    throw err;
  }
  throw new Error("not refused");
}

beforeAll(async () => {
  m = await startManagement("sqlite");
  ui = managementUiBackend(m);
  const ok = async (path: string, body: unknown) => {
    const r = await m.call("POST", path, { body });
    expect(r.status, `${path} ${JSON.stringify(r.body)}`).toBe(200);
    return r.body;
  };
  await ok("/team/new", {
    team_id: "t1",
    team_alias: "Research",
    max_budget: 5,
    budget_duration: "30d",
    rpm_limit: 100,
    model_rpm_limit: { "gpt-4o": 7 },
  });
  await ok("/team/new", { team_id: "t2", team_alias: "Other" });
  await ok("/user/new", { user_id: "lead", user_role: "internal_user", auto_create_key: false });
  await ok("/user/new", { user_id: "dev", user_role: "internal_user", auto_create_key: false });
  await ok("/user/new", { user_id: "auditor", user_role: "proxy_admin_viewer", auto_create_key: false });
  await ok("/team/member_add", { team_id: "t1", member: { user_id: "lead", role: "admin" } });
  await ok("/team/member_add", { team_id: "t1", member: { user_id: "dev", role: "user" } });
  for (const [name, body] of Object.entries({
    lead: { user_id: "lead", key_alias: "lead-key" },
    dev: {
      user_id: "dev",
      team_id: "t1",
      key_alias: "dev-key",
      rpm_limit: 10,
      max_parallel_requests: 2,
      max_budget: 1,
      model_tpm_limit: { "gpt-4o-mini": 1000 },
      model_max_budget: { "gpt-4o": { budget_limit: 0.5, time_period: "1d" } },
    },
    other: { team_id: "t2", key_alias: "other-key" },
    shared: { team_id: "t1", key_alias: "shared-key" },
    auditor: { user_id: "auditor", key_alias: "auditor-key" },
  })) {
    const k = await ok("/key/generate", body);
    keys[name] = { key: k.key, token: k.token ?? k.token_id };
  }
}, 60_000);

afterAll(async () => {
  await m?.cleanup();
});

describe("UI backend on the management API", () => {
  it("whoami: the master key, a team admin, a read-only admin", async () => {
    expect(await ui.whoami(req(MASTER))).toMatchObject({ role: "proxy_admin", teams: [] });
    expect(await ui.whoami(req(keys.lead!.key))).toMatchObject({
      role: "internal_user",
      user_id: "lead",
      key_alias: "lead-key",
      teams: [{ team_id: "t1", team_alias: "Research", role: "admin" }],
    });
    expect((await ui.whoami(req(keys.auditor!.key))).role).toBe("proxy_admin_viewer");
    expect((await refusal(ui.whoami(req("sk-unknown")))).status).toBe(401);
  });

  it("a key's limits and budgets are those the request path builds, per-model ones included", async () => {
    const s = await ui.keyLimits(req(MASTER), keys.dev!.key);
    expect(s).toMatchObject({ kind: "key", label: "dev-key" });
    expect(s.id).toMatch(/^[0-9a-f]{64}$/);
    const scopes = s.descriptors.map((d) => `${d.descriptor.scope}${d.model ? `:${d.model}` : ""}`).sort();
    expect(scopes).toEqual(["api_key", "model_per_key:gpt-4o-mini", "model_per_team:gpt-4o", "team"]);
    const key = s.descriptors.find((d) => d.descriptor.scope === "api_key")!.descriptor;
    expect([key.requests, key.maxParallel]).toEqual([10, 2]);
    const budgets = s.budgets.map((b) => `${b.scope}${b.model ? `:${b.model}` : ""}=${b.maxBudget}`).sort();
    expect(budgets).toEqual(["key:gpt-4o=0.5", "key=1", "team=5"]);
    // by hash too
    expect((await ui.keyLimits(req(MASTER), s.id)).id).toBe(s.id);
  });

  it("a team's limits and budget", async () => {
    const s = await ui.teamLimits(req(MASTER), "t1");
    expect(s.label).toBe("Research");
    expect(s.descriptors.map((d) => [d.descriptor.scope, d.model ?? null])).toEqual([
      ["team", null],
      ["model_per_team", "gpt-4o"],
    ]);
    expect(s.budgets).toMatchObject([{ scope: "team", id: "t1", maxBudget: 5, duration: "30d" }]);
  });

  it("others see only their own keys and their teams", async () => {
    // a team admin sees the team's keys; a member sees the team and their own keys, not the team's other keys
    expect((await ui.keyLimits(req(keys.lead!.key), keys.dev!.key)).label).toBe("dev-key");
    expect((await ui.keyLimits(req(keys.lead!.key), keys.shared!.key)).label).toBe("shared-key");
    expect((await ui.teamLimits(req(keys.dev!.key), "t1")).id).toBe("t1");
    expect((await ui.keyLimits(req(keys.dev!.key), keys.dev!.key)).label).toBe("dev-key");
    expect((await refusal(ui.keyLimits(req(keys.dev!.key), keys.shared!.key))).status).toBe(403);
    expect((await refusal(ui.keyLimits(req(keys.dev!.key), keys.other!.key))).status).toBe(403);
    expect((await refusal(ui.teamLimits(req(keys.dev!.key), "t2"))).status).toBe(403);
    expect((await refusal(ui.keyLimits(req(keys.dev!.key), keys.lead!.key))).status).toBe(403);
    // a team's key (no user) sees its team, not another
    expect((await ui.teamLimits(req(keys.other!.key), "t2")).id).toBe("t2");
    expect((await refusal(ui.teamLimits(req(keys.other!.key), "t1"))).status).toBe(403);
    // read-only admins see everything
    expect((await ui.teamLimits(req(keys.auditor!.key), "t2")).id).toBe("t2");
    // unknown and malformed
    expect((await refusal(ui.keyLimits(req(MASTER), `sk-${"x".repeat(20)}`))).status).toBe(404);
    expect((await refusal(ui.keyLimits(req(MASTER), "not a key"))).status).toBe(400);
    expect((await refusal(ui.teamLimits(req(MASTER), "nope"))).status).toBe(404);
  });
});
