import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../src/management/index.js";
import { DIALECTS } from "../db/helpers.js";
import { resolveError, startManagement, type TestManagement } from "./helpers.js";

describe.each(DIALECTS)("management API on %s", (dialect) => {
  let m: TestManagement;
  beforeAll(async () => {
    m = await startManagement(dialect, {
      settings: { accessGroups: new Map([["beta-models", ["text-embedding-ada-002"]]]) },
    });
  });
  afterAll(async () => {
    await m.cleanup();
  });

  it("/team/new answers the seed's sample response", async () => {
    const r = await m.call("POST", "/team/new", {
      body: {
        team_alias: "my-new-team_4",
        members_with_roles: [{ role: "admin", user_id: "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a" }],
        rpm_limit: 99,
      },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      team_alias: "my-new-team_4",
      admins: [],
      members: [],
      members_with_roles: [{ role: "admin", user_id: "5c4a0aa3-a1e1-43dc-bd87-3c2da8382a3a" }],
      metadata: {},
      tpm_limit: null,
      rpm_limit: 99,
      max_budget: null,
      models: [],
      spend: 0,
      max_parallel_requests: null,
      budget_duration: null,
      budget_reset_at: null,
    });
    expect(r.body.team_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("/team/new with budget_duration sets budget_reset_at; a duplicate team_id is a 400 and changes nothing", async () => {
    const r = await m.call("POST", "/team/new", {
      body: { team_id: "dur-team", max_budget: 1, budget_duration: "10s" },
    });
    expect(r.status).toBe(200);
    expect(Date.parse(r.body.budget_reset_at)).toBeGreaterThan(Date.now() - 1);
    const dup = await m.call("POST", "/team/new", { body: { team_id: "dur-team", max_budget: 99 } });
    expect(dup.status).toBe(400);
    expect(dup.body.error).toMatchObject({ type: "bad_request_error", param: "team_id", code: "400" });
    const info = await m.call("GET", "/team/info", { query: { team_id: "dur-team" } });
    expect(info.body.team_info.max_budget).toBe(1);
  });

  it("team members: user/new, member_add with max_budget_in_team, a key for the member", async () => {
    const team = await m.call("POST", "/team/new", { body: { team_alias: "members" } });
    const teamId = team.body.team_id as string;
    const u = await m.call("POST", "/user/new", { body: { user_id: "ishaan" } });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ user_id: "ishaan", user_role: "internal_user", max_budget: null });
    expect(u.body.key).toMatch(/^sk-[A-Za-z0-9_-]{22}$/);
    const add = await m.call("POST", "/team/member_add", {
      body: { team_id: teamId, max_budget_in_team: 0.000000000001, member: { role: "user", user_id: "ishaan" } },
    });
    expect(add.status).toBe(200);
    expect(add.body.updated_team_memberships[0]).toMatchObject({ team_id: teamId, user_id: "ishaan" });
    expect(add.body.updated_team_memberships[0].litellm_budget_table.max_budget).toBe(1e-12);
    const again = await m.call("POST", "/team/member_add", {
      body: { team_id: teamId, member: { role: "user", user_id: "ishaan" } },
    });
    expect(again.status).toBe(400);

    const k = await m.call("POST", "/key/generate", { body: { user_id: "ishaan", team_id: teamId } });
    expect(k.status).toBe(200);
    // The seed's /key/generate response fields.
    expect(k.body).toMatchObject({
      models: [],
      spend: 0,
      max_budget: null,
      user_id: "ishaan",
      team_id: teamId,
      max_parallel_requests: null,
      metadata: {},
      tpm_limit: null,
      rpm_limit: null,
      budget_duration: null,
      allowed_cache_controls: [],
      soft_budget: null,
      key_alias: null,
      duration: null,
      aliases: {},
      config: {},
      permissions: {},
      model_max_budget: {},
      expires: null,
    });
    const secret = k.body.key as string;
    expect(secret).toMatch(/^sk-/);
    expect(k.body.key_name).toBe(`sk-...${secret.slice(-4)}`);
    expect(k.body.token).toBe(hashSecret(secret));
    expect(k.body.token_id).toBe(hashSecret(secret));
    // Only the hash is stored.
    const row = await m.repo.getKey(hashSecret(secret));
    expect(row?.token).toBe(hashSecret(secret));
    expect(JSON.stringify(row)).not.toContain(secret);

    // The request path: the member's budget inside the team, the team's budget; no personal user budget.
    const id = await m.resolveRequest({ headers: { authorization: `Bearer ${secret}` }, model: "llama3" });
    expect(id.caller).toMatchObject({ kind: "key", role: "internal_user", user_id: "ishaan", team_id: teamId });
    expect(id.budgets).toEqual([{ scope: "team_member", id: "ishaan", teamId, maxBudget: 1e-12, duration: null }]);
    expect(id.attribution).toMatchObject({ api_key: hashSecret(secret), user_id: "ishaan", team_id: teamId });
  });

  it("key lifecycle: info, update, block/unblock, regenerate (same budget identity), list, delete", async () => {
    const g = await m.call("POST", "/key/generate", {
      body: {
        key_alias: "life",
        max_budget: 10,
        budget_duration: "30d",
        rpm_limit: 5,
        tpm_limit: 1000,
        max_parallel_requests: 2,
        models: ["gpt-4o"],
        model_rpm_limit: { "gpt-4o": 3 },
        model_max_budget: { "gpt-4o": { budget_limit: "0.0000001", time_period: "1d" } },
        metadata: { app: "x" },
        duration: "1h",
      },
    });
    expect(g.status).toBe(200);
    const secret = g.body.key as string;
    expect(g.body).toMatchObject({
      key_alias: "life",
      max_budget: 10,
      rpm_limit: 5,
      metadata: { app: "x", model_rpm_limit: { "gpt-4o": 3 } },
    });
    expect(Date.parse(g.body.expires) - Date.now()).toBeGreaterThan(3_500_000);
    expect(g.body.budget_reset_at).not.toBeNull();

    const info = await m.call("GET", "/key/info", { query: { key: secret } });
    expect(info.status).toBe(200);
    expect(info.body.key).toBe(secret);
    expect(info.body.info).toMatchObject({ key_alias: "life", max_budget: 10, blocked: false, spend: 0 });
    expect(info.body.info.token).toBeUndefined();

    const id1 = await m.resolveRequest({ headers: { authorization: `Bearer ${secret}` }, model: "gpt-4o" });
    const keyId = hashSecret(secret);
    expect(id1.descriptors).toEqual([
      { scope: "api_key", value: keyId, requests: 5, tokens: 1000, maxParallel: 2, windowMs: 60_000 },
      { scope: "model_per_key", value: `${keyId}:gpt-4o`, requests: 3, windowMs: 60_000 },
    ]);
    expect(id1.budgets).toEqual([
      expect.objectContaining({ scope: "key", id: keyId, maxBudget: 10, duration: "30d", alias: "life" }),
      expect.objectContaining({ scope: "key", id: keyId, model: "gpt-4o", maxBudget: 1e-7, duration: "1d" }),
    ]);

    const up = await m.call("POST", "/key/update", { body: { key: secret, rpm_limit: 7, max_budget: null } });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ rpm_limit: 7, max_budget: null });
    // Takes effect on this instance at once.
    const id2 = await m.resolveRequest({ headers: { authorization: `Bearer ${secret}` }, model: "gpt-4o" });
    expect(id2.descriptors[0]).toMatchObject({ requests: 7 });

    const blocked = await m.call("POST", "/key/block", { body: { key: secret } });
    expect(blocked.status).toBe(200);
    expect(blocked.body.blocked).toBe(true);
    expect((await resolveError(m, { headers: { authorization: `Bearer ${secret}` } })).message).toMatch(
      /Key is blocked/,
    );
    await m.call("POST", "/key/unblock", { body: { key: keyId } });
    expect(await m.resolveRequest({ headers: { authorization: `Bearer ${secret}` } })).toBeTruthy();

    const rg = await m.call("POST", "/key/regenerate", { body: { key: secret } });
    expect(rg.status).toBe(200);
    const fresh = rg.body.key as string;
    expect(fresh).not.toBe(secret);
    expect(await resolveError(m, { headers: { authorization: `Bearer ${secret}` } })).toMatchObject({
      status: 401,
      type: "token_not_found_in_db",
    });
    const id3 = await m.resolveRequest({ headers: { authorization: `Bearer ${fresh}` }, model: "gpt-4o" });
    // Budgets and limits still count under the first hash: regenerating never resets what the key spent.
    expect(id3.budgets[0]).toMatchObject({ scope: "key", id: keyId });
    expect(id3.attribution.api_key).toBe(hashSecret(fresh));

    const list = await m.call("GET", "/key/list", { query: { key_alias: "life" } });
    expect(list.body).toEqual({ keys: [hashSecret(fresh)], total_count: 1, current_page: 1, total_pages: 1 });
    const tooBig = await m.call("GET", "/key/list", { query: { size: "101" } });
    expect(tooBig.status).toBe(400);

    const del = await m.call("POST", "/key/delete", { body: { key_aliases: ["life"] } });
    expect(del.body).toEqual({ deleted_keys: ["life"] });
    const none = await m.call("POST", "/key/delete", { body: { keys: [fresh] } });
    expect(none.status).toBe(404);
    expect((await resolveError(m, { headers: { authorization: `Bearer ${fresh}` } })).message).toMatch(
      /Invalid proxy server token/,
    );
  });

  it("model access: allow-list, access groups, 403 key_model_access_denied", async () => {
    const u = await m.call("POST", "/user/new", { body: { models: ["beta-models"], max_budget: 0 } });
    const secret = u.body.key as string;
    expect(u.body.models).toEqual(["beta-models"]);
    const ok = await m.resolveRequest({
      headers: { authorization: `Bearer ${secret}` },
      model: "text-embedding-ada-002",
    });
    expect(ok.budgets).toEqual([expect.objectContaining({ scope: "user", id: u.body.user_id, maxBudget: 0 })]);
    const err = await resolveError(m, { headers: { authorization: `Bearer ${secret}` }, model: "gpt-4o" });
    expect(err.toBody().error).toMatchObject({ type: "key_model_access_denied", param: "model", code: "403" });
  });

  it("customers and reusable budgets: budget_id links, either max_budget or budget_id, block/unblock", async () => {
    const b = await m.call("POST", "/budget/new", {
      body: { budget_id: "tier-free", max_budget: 0.5, rpm_limit: 10, budget_duration: "1d" },
    });
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ budget_id: "tier-free", max_budget: 0.5, rpm_limit: 10 });
    const both = await m.call("POST", "/customer/new", {
      body: { user_id: "c1", max_budget: 1, budget_id: "tier-free" },
    });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain("Set either 'max_budget' or 'budget_id', not both.");
    const c = await m.call("POST", "/customer/new", { body: { user_id: "c1", budget_id: "tier-free" } });
    expect(c.body).toMatchObject({
      user_id: "c1",
      blocked: false,
      spend: 0,
      litellm_budget_table: { max_budget: 0.5 },
    });
    const id = await m.resolveRequest({ headers: { authorization: "Bearer sk-1234" }, endUser: "c1", model: "gpt-4o" });
    expect(id.descriptors).toEqual([{ scope: "end_user", value: "c1", requests: 10, windowMs: 60_000 }]);
    expect(id.budgets).toEqual([
      expect.objectContaining({ scope: "end_user", id: "c1", maxBudget: 0.5, duration: "1d" }),
    ]);
    // Updating the shared budget changes every customer on it.
    await m.call("POST", "/budget/update", { body: { budget_id: "tier-free", rpm_limit: 20 } });
    const id2 = await m.resolveRequest({ headers: { authorization: "Bearer sk-1234" }, endUser: "c1" });
    expect(id2.descriptors[0]).toMatchObject({ requests: 20 });
    const inUse = await m.call("POST", "/budget/delete", { body: { id: "tier-free" } });
    expect(inUse.status).toBe(400);
    await m.call("POST", "/customer/block", { body: { user_ids: ["c1"] } });
    expect((await resolveError(m, { headers: { authorization: "Bearer sk-1234" }, endUser: "c1" })).message).toMatch(
      /End User=c1 is blocked/,
    );
    await m.call("POST", "/customer/unblock", { body: { user_ids: ["c1"] } });
    const info = await m.call("GET", "/customer/info", { query: { end_user_id: "c1" } });
    expect(info.body).toMatchObject({ user_id: "c1", blocked: false, budget_id: "tier-free" });
    expect((await m.call("POST", "/budget/info", { body: { budgets: ["tier-free"] } })).body[0].rpm_limit).toBe(20);
  });

  it("organizations: budget fields become a budget row; keys of its teams carry its limits", async () => {
    const o = await m.call("POST", "/organization/new", {
      body: { organization_alias: "acme", max_budget: 100, rpm_limit: 50, model_rpm_limit: { "gpt-4o": 9 } },
    });
    expect(o.status).toBe(200);
    expect(o.body.litellm_budget_table).toMatchObject({ max_budget: 100, rpm_limit: 50 });
    const orgId = o.body.organization_id as string;
    const t = await m.call("POST", "/team/new", { body: { organization_id: orgId, team_alias: "acme-team" } });
    const k = await m.call("POST", "/key/generate", { body: { team_id: t.body.team_id } });
    const id = await m.resolveRequest({ headers: { authorization: `Bearer ${k.body.key}` }, model: "gpt-4o" });
    expect(id.descriptors).toEqual([
      { scope: "organization", value: orgId, requests: 50, windowMs: 60_000 },
      { scope: "model_per_organization", value: `${orgId}:gpt-4o`, requests: 9, windowMs: 60_000 },
    ]);
    expect(id.budgets).toEqual([expect.objectContaining({ scope: "organization", id: orgId, maxBudget: 100 })]);
    const add = await m.call("POST", "/organization/member_add", {
      body: { organization_id: orgId, member: { user_id: "org-u", role: "internal_user" } },
    });
    expect(add.status).toBe(200);
    const info = await m.call("GET", "/organization/info", { query: { organization_id: orgId } });
    expect(info.body.members.map((x: any) => x.user_id)).toEqual(["org-u"]);
    expect(info.body.teams.map((x: any) => x.team_alias)).toEqual(["acme-team"]);
  });

  it("users: info, update (role, budget), list, delete removes their keys", async () => {
    const u = await m.call("POST", "/user/new", {
      body: { user_id: "del-me", user_role: "internal_user", max_budget: 5 },
    });
    const secret = u.body.key as string;
    const info = await m.call("GET", "/user/info", { query: { user_id: "del-me" } });
    expect(info.body.user_info).toMatchObject({ user_id: "del-me", max_budget: 5 });
    expect(info.body.keys).toHaveLength(1);
    const up = await m.call("POST", "/user/update", { body: { user_id: "del-me", user_role: "proxy_admin_viewer" } });
    expect(up.body.data.user_role).toBe("proxy_admin_viewer");
    const bad = await m.call("POST", "/user/update", { body: { user_id: "del-me", user_role: "superuser" } });
    expect(bad.status).toBe(400);
    const list = await m.call("GET", "/user/list", { query: { page_size: "100" } });
    expect(list.body.users.map((x: any) => x.user_id)).toContain("del-me");
    const del = await m.call("POST", "/user/delete", { body: { user_ids: ["del-me"] } });
    expect(del.status).toBe(200);
    expect(await m.repo.getKey(hashSecret(secret))).toBeUndefined();
    expect((await resolveError(m, { headers: { authorization: `Bearer ${secret}` } })).message).toMatch(
      /Invalid proxy server token/,
    );
  });
});
