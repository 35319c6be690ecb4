import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../src/management/index.js";
import { DIALECTS } from "../db/helpers.js";
import { resolveError, startManagement, type TestManagement } from "./helpers.js";

/**
 * The auth matrix of issue 13: every refusal with LiteLLM's status and type, and nothing changed in the database.
 * (The HTTP-level version runs against the proxy process in proxy-http.test.ts.)
 */
describe.each(DIALECTS)("auth matrix on %s", (dialect) => {
  let m: TestManagement;
  let clock = Date.UTC(2026, 2, 1, 12, 0, 0);
  const keys: Record<string, string> = {};
  let snapshot: () => Promise<string>;

  beforeAll(async () => {
    m = await startManagement(dialect, { now: () => clock });
    const user = async (id: string, role: string) => {
      const r = await m.call("POST", "/user/new", { body: { user_id: id, user_role: role } });
      expect(r.status).toBe(200);
      keys[id] = r.body.key;
    };
    await user("alice", "internal_user");
    await user("bob", "internal_user");
    await user("viewer", "proxy_admin_viewer");
    await user("iviewer", "internal_user_viewer");
    await m.call("POST", "/team/new", {
      body: {
        team_id: "t1",
        members_with_roles: [
          { role: "admin", user_id: "alice" },
          { role: "user", user_id: "carol" },
        ],
      },
    });
    await m.call("POST", "/team/new", {
      body: { team_id: "t2", members_with_roles: [{ role: "admin", user_id: "bob" }] },
    });
    keys.t2 = (
      await m.call("POST", "/key/generate", { body: { team_id: "t2", user_id: "bob", models: ["gpt-4o"] } })
    ).body.key;
    keys.blockedTeam = (await m.call("POST", "/key/generate", { body: { team_id: "t3" } })).body.key;
    await m.call("POST", "/team/new", { body: { team_id: "t3" } });
    await m.call("POST", "/team/block", { body: { team_id: "t3" } });
    keys.blocked = (await m.call("POST", "/key/generate", { body: {} })).body.key;
    await m.call("POST", "/key/block", { body: { key: keys.blocked } });
    keys.expiring = (await m.call("POST", "/key/generate", { body: { duration: "1h" } })).body.key;
    snapshot = async () => {
      const all = await m.repo.listKeys({ page: 1, size: 100 });
      const teams = await m.repo.listTeams();
      const members = await m.repo.teamMembersOf(teams.map((t) => t.team_id));
      return JSON.stringify([all, teams, members]);
    };
  });
  afterAll(async () => {
    await m.cleanup();
  });

  /** Calls as `who` and checks the refusal and that nothing changed. */
  async function refused(
    who: string | null,
    method: string,
    path: string,
    body: unknown,
    status: number,
    type: string,
    message?: RegExp,
  ) {
    const before = await snapshot();
    const r = await m.call(method, path, { key: who === null ? null : (keys[who] ?? who), body });
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    expect(r.body.error.type).toBe(type);
    expect(r.body.error.code).toBe(String(status));
    if (message) expect(r.body.error.message).toMatch(message);
    expect(await snapshot()).toBe(before);
  }

  it("no key: 401 auth_error", async () => {
    await refused(null, "POST", "/key/generate", {}, 401, "auth_error", /No api key passed in/);
    const e = await resolveError(m, { headers: {} });
    expect(e.toBody().error).toMatchObject({ type: "auth_error", code: "401" });
  });

  it("malformed Authorization header: 401 auth_error", async () => {
    const r = await m.api.handle({
      method: "POST",
      path: "/key/generate",
      headers: { authorization: "Token abc" },
      query: new URLSearchParams(),
      body: "{}",
    });
    expect(r.status).toBe(401);
    expect((r.body as any).error.type).toBe("auth_error");
    expect((r.body as any).error.message).toMatch(/Malformed API Key/);
    // Not an sk- key and not the master key.
    await refused("not-a-virtual-key", "POST", "/key/generate", {}, 401, "auth_error", /LiteLLM Virtual Key expected/);
  });

  it("unknown key: 401 token_not_found_in_db", async () => {
    await refused(
      "sk-unknown-key-1234",
      "POST",
      "/key/generate",
      {},
      401,
      "token_not_found_in_db",
      /Invalid proxy server token passed/,
    );
    const e = await resolveError(m, { headers: { authorization: "Bearer sk-unknown-key-1234" }, model: "gpt-4o" });
    expect(e.toBody().error).toMatchObject({ type: "token_not_found_in_db", param: "key", code: "401" });
  });

  it("expired key: LiteLLM's 400 expired_key, on the LLM route and the management routes", async () => {
    clock += 2 * 3_600_000;
    try {
      const e = await resolveError(m, { headers: { authorization: `Bearer ${keys.expiring}` } });
      expect(e.toBody().error).toMatchObject({ type: "expired_key", code: "400" });
      await refused("expiring", "GET", "/key/info", undefined, 400, "expired_key", /Expired Key/);
    } finally {
      clock -= 2 * 3_600_000;
    }
  });

  it("blocked key and blocked team: 401 auth_error", async () => {
    const e = await resolveError(m, { headers: { authorization: `Bearer ${keys.blocked}` } });
    expect(e.toBody().error).toMatchObject({ type: "auth_error", code: "401" });
    expect(e.message).toContain("Key is blocked. Update via `/key/unblock` if you're an admin.");
    const t = await resolveError(m, { headers: { authorization: `Bearer ${keys.blockedTeam}` } });
    expect(t.toBody().error).toMatchObject({ type: "auth_error", code: "401" });
    expect(t.message).toContain("Team=t3 is blocked");
  });

  it("model outside the key's allow-list: 403 key_model_access_denied", async () => {
    const e = await resolveError(m, { headers: { authorization: `Bearer ${keys.t2}` }, model: "llama3" });
    expect(e.toBody().error).toMatchObject({ type: "key_model_access_denied", param: "model", code: "403" });
    const id = await m.auth.identityFor(keys.t2);
    expect(id.models).toEqual(["gpt-4o"]);
  });

  it("read-only admin calling a mutation: 403 auth_error; reading is fine", async () => {
    await refused("viewer", "POST", "/key/generate", {}, 403, "auth_error", /role= proxy_admin_viewer/);
    await refused("viewer", "POST", "/team/new", { team_alias: "x" }, 403, "auth_error");
    await refused("viewer", "POST", "/key/delete", { keys: [keys.t2] }, 403, "auth_error");
    expect((await m.call("GET", "/key/list", { key: keys.viewer })).status).toBe(200);
    expect((await m.call("GET", "/team/info", { key: keys.viewer, query: { team_id: "t2" } })).status).toBe(200);
  });

  it("internal user viewer: key mutations are admin-only (401), like LiteLLM's route check", async () => {
    await refused("iviewer", "POST", "/key/generate", {}, 401, "auth_error", /Only proxy admin can be used/);
    expect((await m.call("GET", "/spend/logs", { key: keys.iviewer })).status).toBe(200);
  });

  it("an internal user touching another user's keys: 403, nothing changed", async () => {
    await refused("alice", "POST", "/key/update", { key: keys.t2, max_budget: 1000 }, 403, "auth_error");
    await refused("alice", "POST", "/key/delete", { keys: [keys.bob] }, 403, "auth_error");
    await refused("alice", "POST", "/key/regenerate", { key: keys.bob }, 403, "auth_error");
    await refused(
      "alice",
      "POST",
      "/key/generate",
      { user_id: "bob" },
      403,
      "auth_error",
      /can only create keys for themselves/,
    );
    const info = await m.call("GET", "/key/info", { key: keys.alice, query: { key: keys.bob! } });
    expect(info.status).toBe(403);
    const self = await m.call("GET", "/user/info", { key: keys.bob, query: { user_id: "alice" } });
    expect(self.status).toBe(403);
    expect(self.body.error.message).toContain("key not allowed to access this user's info");
    // Admin-only routes: LiteLLM's 401 with its text.
    await refused(
      "alice",
      "POST",
      "/team/new",
      {},
      401,
      "auth_error",
      /Only proxy admin can be used to generate, delete, update info for new keys\/users\/teams. Route=\/team\/new. Your role=internal_user/,
    );
    await refused("alice", "POST", "/user/new", {}, 401, "auth_error");
    await refused("alice", "POST", "/customer/new", { user_id: "c" }, 401, "auth_error");
  });

  it("a team admin touching another team: 403, nothing changed; their own team is fine", async () => {
    await refused(
      "alice",
      "POST",
      "/team/member_add",
      { team_id: "t2", member: { role: "user", user_id: "alice" } },
      403,
      "auth_error",
      /not proxy admin OR team admin/,
    );
    await refused("alice", "POST", "/team/member_delete", { team_id: "t2", user_id: "bob" }, 403, "auth_error");
    await refused("alice", "POST", "/key/generate", { team_id: "t2" }, 403, "auth_error", /not assigned to team=t2/);
    await refused("alice", "POST", "/key/update", { key: keys.t2, team_id: "t1" }, 403, "auth_error");
    // Own team: add a member, make a key for them, update it.
    const add = await m.call("POST", "/team/member_add", {
      key: keys.alice,
      body: { team_id: "t1", member: { role: "user", user_id: "dave" }, max_budget_in_team: 2 },
    });
    expect(add.status).toBe(200);
    const k = await m.call("POST", "/key/generate", { key: keys.alice, body: { team_id: "t1", user_id: "dave" } });
    expect(k.status).toBe(200);
    expect(k.body).toMatchObject({ team_id: "t1", user_id: "dave" });
    const up = await m.call("POST", "/key/update", { key: keys.alice, body: { key: k.body.key, rpm_limit: 3 } });
    expect(up.status).toBe(200);
    // A plain member (carol) may create a key for herself in the team, not for dave.
    const carolKey = (await m.call("POST", "/key/generate", { body: { user_id: "carol" } })).body.key;
    expect((await m.call("POST", "/key/generate", { key: carolKey, body: { team_id: "t1" } })).status).toBe(200);
    await refused(carolKey, "POST", "/key/generate", { team_id: "t1", user_id: "dave" }, 403, "auth_error");
    // The member's key carries the member budget.
    const id = await m.resolveRequest({ headers: { authorization: `Bearer ${k.body.key}` } });
    expect(id.budgets).toContainEqual(
      expect.objectContaining({ scope: "team_member", id: "dave", teamId: "t1", maxBudget: 2 }),
    );
    expect(await m.repo.getKey(hashSecret(k.body.key))).toMatchObject({ rpm_limit: 3 });
  });
});
