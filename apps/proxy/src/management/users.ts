import { randomUUID } from "node:crypto";
import { litellmBudgets } from "@tollgate/budgets";
import type { JsonObject, TeamMember, User } from "../db/repository.js";
import {
  canReadAll,
  type HandlerInput,
  type HandlerResult,
  iso,
  type ManagementContext,
  ok,
  requireAdmin,
  resetSpec,
  shownSpend,
} from "./context.js";
import { badRequest, forbidden, notFound } from "./errors.js";
import { ROLES, type Role, userBudgetFields } from "./identity.js";
import { createKey, generateResponse, keyView, readKeyFields } from "./keys.js";
import { addMember, teamView } from "./teams.js";
import { checkId, Fields, queryInt } from "./validate.js";

export function readRole(f: Fields, name = "user_role"): Role | undefined {
  const r = f.str(name);
  if (r === undefined || r === null) return undefined;
  if (!(ROLES as readonly string[]).includes(r)) {
    throw badRequest(`Invalid ${name} ${JSON.stringify(r)}: expected one of ${ROLES.join(", ")}`, name);
  }
  return r as Role;
}

export async function userView(ctx: ManagementContext, u: User, memberships?: TeamMember[]): Promise<JsonObject> {
  const teams = memberships ?? (await ctx.repo.membershipsOfUser(u.user_id));
  const spec = litellmBudgets({ user: userBudgetFields(u, ctx.settings) }).find((b) => b.model === undefined) ?? null;
  const { spend, budget_reset_at } = await shownSpend(
    ctx,
    spec,
    u.spend_nano,
    resetSpec("user", u.user_id, u.budget_duration, u.budget_started_at),
  );
  return {
    user_id: u.user_id,
    user_alias: u.user_alias,
    user_email: u.user_email,
    user_role: u.user_role,
    organization_id: u.organization_id,
    teams: teams.map((m) => m.team_id),
    max_budget: u.max_budget,
    spend,
    models: u.models,
    metadata: u.metadata,
    max_parallel_requests: u.max_parallel_requests,
    tpm_limit: u.tpm_limit,
    rpm_limit: u.rpm_limit,
    budget_duration: u.budget_duration,
    budget_reset_at,
    model_max_budget: u.model_max_budget,
    created_at: iso(u.created_at),
    updated_at: iso(u.updated_at),
  };
}

/** `teams` of `/user/new`: team ids, or `{team_id, max_budget_in_team, user_role}` objects. */
function readTeams(f: Fields): Array<{ team_id: string; max_budget_in_team?: number | null; role: "admin" | "user" }> {
  const v = f.body.teams;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    throw badRequest("teams must be a list of team ids or {team_id, max_budget_in_team, user_role}", "teams");
  return v.map((t, i) => {
    if (typeof t === "string") return { team_id: checkId(`teams[${i}]`, t), role: "user" as const };
    if (typeof t !== "object" || t === null || Array.isArray(t))
      throw badRequest(`teams[${i}] must be a team id or an object`, "teams");
    const tf = new Fields(t as JsonObject);
    const role = tf.str("user_role") ?? "user";
    if (role !== "admin" && role !== "user")
      throw badRequest(`teams[${i}].user_role must be "admin" or "user"`, "teams");
    const max = tf.usd("max_budget_in_team");
    return { team_id: tf.requiredId("team_id"), role, ...(max === undefined ? {} : { max_budget_in_team: max }) };
  });
}

function readUserFields(f: Fields) {
  return {
    user_alias: f.str("user_alias"),
    user_email: f.str("user_email"),
    user_role: readRole(f),
    organization_id: f.id("organization_id"),
    max_budget: f.usd("max_budget"),
    models: f.strList("models"),
    metadata: f.obj("metadata"),
    max_parallel_requests: f.int("max_parallel_requests"),
    tpm_limit: f.int("tpm_limit"),
    rpm_limit: f.int("rpm_limit"),
    budget_duration: f.duration("budget_duration"),
    model_max_budget: f.modelBudgets("model_max_budget"),
  };
}

export async function newUser(input: HandlerInput): Promise<HandlerResult> {
  const { caller, fields, ctx, route } = input;
  requireAdmin(caller, route);
  const v = readUserFields(fields);
  const userId = fields.id("user_id") ?? randomUUID();
  const teams = readTeams(fields);
  const autoKey = fields.bool("auto_create_key") ?? true;
  const keyFields = readKeyFields(fields);
  if ((await ctx.repo.getUser(userId)) !== undefined)
    throw badRequest(`User with id ${userId} already exists.`, "user_id");
  if (v.user_email != null && (await ctx.repo.getUserByEmail(v.user_email)) !== undefined) {
    throw badRequest(`User with email ${v.user_email} already exists.`, "user_email");
  }
  for (const t of teams) {
    if ((await ctx.repo.getTeam(t.team_id)) === undefined)
      throw badRequest(`Team not found: team_id=${t.team_id}`, "teams");
  }
  if (v.organization_id != null && (await ctx.repo.getOrganization(v.organization_id)) === undefined) {
    throw badRequest(`Organization not found for organization_id=${v.organization_id}`, "organization_id");
  }
  const now = ctx.now();
  const u: User = {
    user_id: userId,
    user_alias: v.user_alias ?? null,
    user_email: v.user_email ?? null,
    user_role: v.user_role ?? "internal_user",
    organization_id: v.organization_id ?? null,
    max_budget: v.max_budget ?? null,
    spend_nano: 0,
    models: v.models ?? [],
    metadata: v.metadata ?? {},
    max_parallel_requests: v.max_parallel_requests ?? null,
    tpm_limit: v.tpm_limit ?? null,
    rpm_limit: v.rpm_limit ?? null,
    budget_duration: v.budget_duration ?? null,
    budget_started_at: v.budget_duration == null ? null : now,
    model_max_budget: v.model_max_budget ?? {},
    created_at: now,
    updated_at: now,
  };
  try {
    await ctx.repo.insertUser(u);
  } catch (err) {
    if ((await ctx.repo.getUser(userId)) !== undefined)
      throw badRequest(`User with id ${userId} already exists.`, "user_id");
    throw err;
  }
  for (const t of teams) {
    await addMember(
      ctx,
      caller,
      t.team_id,
      { user_id: userId, user_email: u.user_email, role: t.role },
      t.max_budget_in_team,
      now,
    );
  }
  ctx.cache.invalidate("user", userId);
  let keyPart: JsonObject = {};
  if (autoKey) {
    // The user's first key: the user's models, and the key fields given (alias, duration, team).
    const { row, secret } = await createKey(
      ctx,
      caller,
      {
        ...keyFields,
        user_id: userId,
        max_budget: undefined,
        soft_budget: undefined,
        budget_duration: undefined,
        model_max_budget: undefined,
        tpm_limit: undefined,
        rpm_limit: undefined,
        max_parallel_requests: undefined,
        metadata: undefined,
      },
      null,
      now,
    );
    const g = await generateResponse(ctx, row, secret, keyFields.duration ?? null);
    keyPart = {
      key: g.key,
      key_name: g.key_name,
      expires: g.expires,
      token: g.token,
      token_id: g.token_id,
      key_alias: g.key_alias,
    };
  }
  return ok({ ...(await userView(ctx, u)), ...keyPart, user_id: userId });
}

export async function userInfo({ caller, query, ctx }: HandlerInput): Promise<HandlerResult> {
  const asked = query.get("user_id");
  const userId = asked === null || asked === "" ? caller.user_id : asked;
  if (userId === null) throw badRequest("user_id is required", "user_id");
  if (!canReadAll(caller) && userId !== caller.user_id) {
    throw forbidden(`key not allowed to access this user's info. user_id=${userId}, key's user_id=${caller.user_id}`);
  }
  const u = await ctx.repo.getUser(userId);
  if (u === undefined) throw notFound(`User not found: user_id=${userId}`, "user_id");
  const memberships = await ctx.repo.membershipsOfUser(userId);
  const tokens = await ctx.repo.keyTokensWhere({ user_id: userId });
  const keys = await Promise.all(
    (await ctx.repo.getKeys(tokens)).map(async (k) => ({ token: k.token, ...(await keyView(ctx, k)) })),
  );
  const teams = await Promise.all(
    (await ctx.repo.getTeams(memberships.map((m) => m.team_id))).map((t) => teamView(ctx, t)),
  );
  return ok({ user_id: userId, user_info: await userView(ctx, u, memberships), keys, teams });
}

export async function updateUser({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const byId = fields.id("user_id");
  const byEmail = fields.str("user_email");
  let u: User | undefined;
  if (byId != null) u = await ctx.repo.getUser(byId);
  else if (byEmail != null) u = await ctx.repo.getUserByEmail(byEmail);
  else throw badRequest("user_id or user_email is required", "user_id");
  if (u === undefined) throw notFound(`User not found: ${byId ?? byEmail}`, "user_id");
  const v = readUserFields(fields);
  if (fields.has("spend") && fields.usd("spend") !== 0)
    throw badRequest("spend cannot be set: it is counted from requests", "spend");
  if (v.organization_id != null && (await ctx.repo.getOrganization(v.organization_id)) === undefined) {
    throw badRequest(`Organization not found for organization_id=${v.organization_id}`, "organization_id");
  }
  const now = ctx.now();
  const p: Partial<User> = { updated_at: now };
  for (const [k, val] of Object.entries(v)) {
    if (val === undefined) continue;
    if (k === "user_email" && byId == null) continue;
    (p as Record<string, unknown>)[k] =
      val === null && (k === "models" || k === "metadata" || k === "model_max_budget")
        ? k === "models"
          ? []
          : {}
        : val;
  }
  if (v.user_role === undefined) delete p.user_role;
  if (v.budget_duration !== undefined && v.budget_duration !== u.budget_duration) {
    p.budget_started_at = v.budget_duration === null ? null : now;
  }
  await ctx.repo.updateUser(u.user_id, p);
  ctx.cache.invalidate("user", u.user_id);
  const row = (await ctx.repo.getUser(u.user_id))!;
  return ok({ user_id: row.user_id, data: await userView(ctx, row) });
}

export async function deleteUsers({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const ids = fields.strList("user_ids", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("user_ids is required", "user_ids");
  const found = [];
  for (const id of ids) {
    const u = await ctx.repo.getUser(id);
    if (u === undefined) throw notFound(`User not found: user_id=${id}. Nothing was deleted.`, "user_ids");
    found.push(u);
  }
  const tokens: string[] = [];
  const memberships: TeamMember[] = [];
  await ctx.repo.transaction(async (repo) => {
    for (const id of ids) {
      tokens.push(...(await repo.keyTokensWhere({ user_id: id })));
      memberships.push(...(await repo.membershipsOfUser(id)));
    }
    await repo.deleteKeys(tokens);
    await repo.deleteTeamMembersOfUsers(ids);
    await repo.deleteUsers(ids);
  });
  for (const t of tokens) ctx.cache.invalidate("key", t);
  for (const m of memberships) ctx.cache.invalidate("member", `${m.team_id}\u0000${m.user_id}`);
  for (const id of ids) ctx.cache.invalidate("user", id);
  return ok({ deleted_users: ids });
}

export async function listUsers({ caller, query, ctx, route }: HandlerInput): Promise<HandlerResult> {
  if (!canReadAll(caller)) throw forbidden(`Only proxy admins can list users. Route=${route}`);
  const page = queryInt(query, "page", 1, 1_000_000);
  const size = queryInt(query, "page_size", 25, 100);
  const role = query.get("role");
  const ids = query.get("user_ids");
  const { rows, total } = await ctx.repo.listUsers({
    page,
    size,
    ...(role ? { role } : {}),
    ...(ids
      ? {
          user_ids: ids
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
        }
      : {}),
  });
  const users = await Promise.all(rows.map((u) => userView(ctx, u)));
  return ok({ users, total, page, page_size: size, total_pages: Math.ceil(total / size) });
}
