import { randomUUID } from "node:crypto";
import { litellmBudgets } from "@tollgate/budgets";
import type { Budget, JsonObject, Team, TeamMember, User } from "../db/repository.js";
import { type BudgetFields, budgetView, readBudgetFields, upsertBudgetFor } from "./budgets.js";
import { memberId } from "./cache.js";
import {
  canReadAll,
  type HandlerInput,
  type HandlerResult,
  iso,
  isTeamAdmin,
  type ManagementContext,
  mergeMetadata,
  ok,
  requireAdmin,
  resetSpec,
  shownSpend,
  usd,
} from "./context.js";
import { badRequest, forbidden, notFound } from "./errors.js";
import { type Caller, teamBudgetFields } from "./identity.js";
import { keyView } from "./keys.js";
import { Fields } from "./validate.js";

/** Team fields LiteLLM keeps in `metadata`. */
const TEAM_METADATA_FIELDS = ["model_rpm_limit", "model_tpm_limit", "tags", "guardrails"];

export async function teamView(ctx: ManagementContext, t: Team, members?: TeamMember[]): Promise<JsonObject> {
  const ms = members ?? (await ctx.repo.teamMembers(t.team_id));
  const spec = litellmBudgets({ team: teamBudgetFields(t) }).find((b) => b.model === undefined) ?? null;
  const { spend, budget_reset_at } = await shownSpend(
    ctx,
    spec,
    t.spend_nano,
    resetSpec("team", t.team_id, t.budget_duration, t.budget_started_at),
  );
  return {
    team_id: t.team_id,
    team_alias: t.team_alias,
    organization_id: t.organization_id,
    admins: [],
    members: [],
    members_with_roles: ms.map((m) => ({ role: m.role, user_id: m.user_id, user_email: m.user_email })),
    metadata: t.metadata,
    tpm_limit: t.tpm_limit,
    rpm_limit: t.rpm_limit,
    max_parallel_requests: t.max_parallel_requests,
    max_budget: t.max_budget,
    soft_budget: t.soft_budget,
    budget_duration: t.budget_duration,
    budget_reset_at,
    models: t.models,
    spend,
    blocked: t.blocked,
    model_max_budget: t.model_max_budget,
    created_at: iso(t.created_at),
    updated_at: iso(t.updated_at),
  };
}

interface MemberInput {
  user_id?: string | null;
  user_email?: string | null;
  role: "admin" | "user";
}

function readMember(v: unknown, where: string): MemberInput {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw badRequest(`${where} must be {"role": "admin"|"user", "user_id": ...}`, where);
  }
  const f = new Fields(v as JsonObject);
  const role = f.str("role") ?? "user";
  if (role !== "admin" && role !== "user")
    throw badRequest(`${where}.role must be "admin" or "user", got ${JSON.stringify(role)}`, where);
  const user_id = f.id("user_id");
  const user_email = f.str("user_email");
  if (user_id == null && user_email == null) throw badRequest(`${where} needs user_id or user_email`, where);
  return { role, user_id: user_id ?? null, user_email: user_email ?? null };
}

function readMembers(f: Fields, name: string): MemberInput[] {
  const v = f.body[name];
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map((m, i) => readMember(m, `${name}[${i}]`));
  return [readMember(v, name)];
}

/** Finds or creates the user a member names (by id, else by e-mail). */
async function memberUser(ctx: ManagementContext, m: MemberInput, now: number): Promise<User> {
  if (m.user_id != null) {
    const found = await ctx.repo.getUser(m.user_id);
    if (found !== undefined) return found;
  } else if (m.user_email != null) {
    const found = await ctx.repo.getUserByEmail(m.user_email);
    if (found !== undefined) return found;
  }
  const u: User = {
    user_id: m.user_id ?? randomUUID(),
    user_alias: null,
    user_email: m.user_email ?? null,
    user_role: "internal_user",
    organization_id: null,
    max_budget: null,
    spend_nano: 0,
    models: [],
    metadata: {},
    max_parallel_requests: null,
    tpm_limit: null,
    rpm_limit: null,
    budget_duration: null,
    budget_started_at: null,
    model_max_budget: {},
    created_at: now,
    updated_at: now,
  };
  try {
    await ctx.repo.insertUser(u);
  } catch (err) {
    const again = await ctx.repo.getUser(u.user_id);
    if (again === undefined) throw err;
    return again;
  }
  return u;
}

/**
 * Adds a member to a team (creating the user when needed); `maxBudgetInTeam` (and member limits) become the
 * member's own budget row. Throws 400 when the user is already a member.
 */
export async function addMember(
  ctx: ManagementContext,
  caller: Caller,
  teamId: string,
  m: MemberInput,
  maxBudgetInTeam: number | null | undefined,
  now: number,
  limits: BudgetFields = {},
): Promise<{ user: User; member: TeamMember; budget: Budget | null }> {
  const user = await memberUser(ctx, m, now);
  if ((await ctx.repo.getTeamMember(teamId, user.user_id)) !== undefined) {
    throw badRequest(
      `User=${user.user_id} already in team=${teamId}. Use /team/member_update to change the member.`,
      "member",
    );
  }
  const fields: BudgetFields = { ...limits };
  if (maxBudgetInTeam !== undefined) fields.max_budget = maxBudgetInTeam;
  const budgetId = await upsertBudgetFor(ctx, null, fields, caller.user_id, now);
  const member: TeamMember = {
    team_id: teamId,
    user_id: user.user_id,
    role: m.role,
    user_email: user.user_email,
    spend_nano: 0,
    budget_id: budgetId,
    created_at: now,
  };
  try {
    await ctx.repo.insertTeamMember(member);
  } catch (err) {
    if ((await ctx.repo.getTeamMember(teamId, user.user_id)) !== undefined) {
      throw badRequest(`User=${user.user_id} already in team=${teamId}.`, "member");
    }
    throw err;
  }
  ctx.cache.invalidate("member", memberId(teamId, user.user_id));
  return { user, member, budget: budgetId === null ? null : ((await ctx.repo.getBudget(budgetId)) ?? null) };
}

function readTeamFields(f: Fields) {
  return {
    team_alias: f.str("team_alias"),
    organization_id: f.id("organization_id"),
    metadata: f.obj("metadata"),
    tpm_limit: f.int("tpm_limit"),
    rpm_limit: f.int("rpm_limit"),
    max_parallel_requests: f.int("max_parallel_requests") ?? f.int("team_max_parallel_requests"),
    max_budget: f.usd("max_budget"),
    soft_budget: f.usd("soft_budget"),
    budget_duration: f.duration("budget_duration"),
    models: f.strList("models"),
    blocked: f.bool("blocked"),
    model_max_budget: f.modelBudgets("model_max_budget"),
    model_rpm_limit: f.intMap("model_rpm_limit"),
    model_tpm_limit: f.intMap("model_tpm_limit"),
    team_member_budget: f.usd("team_member_budget"),
    team_member_budget_duration: f.duration("team_member_budget_duration"),
    team_member_rpm_limit: f.int("team_member_rpm_limit"),
    team_member_tpm_limit: f.int("team_member_tpm_limit"),
  };
}

/** The team's default member budget (LiteLLM: a budget row named by `metadata.team_member_budget_id`). */
async function memberDefaults(
  ctx: ManagementContext,
  v: ReturnType<typeof readTeamFields>,
  metadata: JsonObject,
  by: string | null,
  now: number,
): Promise<JsonObject> {
  const b: BudgetFields = {};
  if (v.team_member_budget !== undefined) b.max_budget = v.team_member_budget;
  if (v.team_member_budget_duration !== undefined) b.budget_duration = v.team_member_budget_duration;
  if (v.team_member_rpm_limit !== undefined) b.rpm_limit = v.team_member_rpm_limit;
  if (v.team_member_tpm_limit !== undefined) b.tpm_limit = v.team_member_tpm_limit;
  if (Object.keys(b).length === 0) return metadata;
  const current = typeof metadata.team_member_budget_id === "string" ? metadata.team_member_budget_id : null;
  const id = await upsertBudgetFor(ctx, current, b, by, now);
  return { ...metadata, team_member_budget_id: id };
}

export async function newTeam({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const v = readTeamFields(fields);
  const teamId = fields.id("team_id") ?? randomUUID();
  const members = [...readMembers(fields, "members_with_roles")];
  for (const [name, role] of [
    ["admins", "admin"],
    ["members", "user"],
  ] as const) {
    for (const id of fields.strList(name, { ids: true }) ?? []) members.push({ user_id: id, role });
  }
  if ((await ctx.repo.getTeam(teamId)) !== undefined) {
    throw badRequest(`Team id = ${teamId} already exists. Please use a different team id.`, "team_id");
  }
  if (v.organization_id != null && (await ctx.repo.getOrganization(v.organization_id)) === undefined) {
    throw badRequest(`Organization not found for organization_id=${v.organization_id}`, "organization_id");
  }
  const now = ctx.now();
  let metadata = mergeMetadata(v.metadata ?? {}, fields, TEAM_METADATA_FIELDS);
  metadata = await memberDefaults(ctx, v, metadata, caller.user_id, now);
  const team: Team = {
    team_id: teamId,
    team_alias: v.team_alias ?? null,
    organization_id: v.organization_id ?? null,
    metadata,
    max_budget: v.max_budget ?? null,
    soft_budget: v.soft_budget ?? null,
    spend_nano: 0,
    models: v.models ?? [],
    max_parallel_requests: v.max_parallel_requests ?? null,
    tpm_limit: v.tpm_limit ?? null,
    rpm_limit: v.rpm_limit ?? null,
    budget_duration: v.budget_duration ?? null,
    budget_started_at: v.budget_duration == null ? null : now,
    blocked: v.blocked ?? false,
    model_max_budget: v.model_max_budget ?? {},
    created_at: now,
    created_by: caller.user_id,
    updated_at: now,
    updated_by: caller.user_id,
  };
  try {
    await ctx.repo.insertTeam(team);
  } catch (err) {
    if ((await ctx.repo.getTeam(teamId)) !== undefined) {
      throw badRequest(`Team id = ${teamId} already exists. Please use a different team id.`, "team_id");
    }
    throw err;
  }
  for (const m of members) await addMember(ctx, caller, teamId, m, undefined, now);
  ctx.cache.invalidate("team", teamId);
  return ok(await teamView(ctx, team));
}

async function findTeam(ctx: ManagementContext, id: string | null | undefined, param = "team_id"): Promise<Team> {
  if (id == null) throw badRequest(`${param} is required`, param);
  const t = await ctx.repo.getTeam(id);
  if (t === undefined) throw notFound(`Team not found: team_id=${id}`, param);
  return t;
}

export async function updateTeam({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const t = await findTeam(ctx, fields.id("team_id"));
  const v = readTeamFields(fields);
  if (v.organization_id != null && (await ctx.repo.getOrganization(v.organization_id)) === undefined) {
    throw badRequest(`Organization not found for organization_id=${v.organization_id}`, "organization_id");
  }
  const now = ctx.now();
  const p: Partial<Team> = { updated_at: now, updated_by: caller.user_id };
  const simple = [
    "team_alias",
    "organization_id",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "max_budget",
    "soft_budget",
  ] as const;
  for (const k of simple) if (v[k] !== undefined) (p as Record<string, unknown>)[k] = v[k];
  if (v.models !== undefined) p.models = v.models ?? [];
  if (v.model_max_budget !== undefined) p.model_max_budget = v.model_max_budget ?? {};
  if (v.blocked != null) p.blocked = v.blocked;
  if (v.budget_duration !== undefined) {
    p.budget_duration = v.budget_duration;
    if (v.budget_duration !== t.budget_duration) p.budget_started_at = v.budget_duration === null ? null : now;
  }
  const base = v.metadata === undefined ? t.metadata : (v.metadata ?? {});
  let metadata = mergeMetadata(base, fields, TEAM_METADATA_FIELDS);
  if (
    v.metadata !== undefined &&
    t.metadata.team_member_budget_id !== undefined &&
    metadata.team_member_budget_id === undefined
  ) {
    metadata.team_member_budget_id = t.metadata.team_member_budget_id;
  }
  metadata = await memberDefaults(ctx, v, metadata, caller.user_id, now);
  p.metadata = metadata;
  await ctx.repo.updateTeam(t.team_id, p);
  ctx.cache.invalidate("team", t.team_id);
  const row = (await ctx.repo.getTeam(t.team_id))!;
  return ok({ team_id: row.team_id, data: await teamView(ctx, row) });
}

export async function deleteTeams({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const ids = fields.strList("team_ids", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("team_ids is required", "team_ids");
  for (const id of ids) await findTeam(ctx, id, "team_ids");
  const tokens: string[] = [];
  const members: TeamMember[] = [];
  await ctx.repo.transaction(async (repo) => {
    for (const id of ids) {
      tokens.push(...(await repo.keyTokensWhere({ team_id: id })));
      members.push(...(await repo.teamMembers(id)));
    }
    // LiteLLM deletes a team's keys with the team.
    await repo.deleteKeys(tokens);
    await repo.deleteTeamMembersOfTeams(ids);
    await repo.deleteTeams(ids);
  });
  for (const t of tokens) ctx.cache.invalidate("key", t);
  for (const m of members) ctx.cache.invalidate("member", memberId(m.team_id, m.user_id));
  for (const id of ids) ctx.cache.invalidate("team", id);
  return ok({ deleted_teams: ids });
}

async function canSeeTeam(ctx: ManagementContext, caller: Caller, teamId: string): Promise<boolean> {
  if (canReadAll(caller)) return true;
  if (caller.user_id === null) return caller.team_id === teamId;
  return (await ctx.repo.getTeamMember(teamId, caller.user_id)) !== undefined || caller.team_id === teamId;
}

export async function teamInfo({ caller, query, ctx }: HandlerInput): Promise<HandlerResult> {
  const id = query.get("team_id") || caller.team_id;
  const t = await findTeam(ctx, id);
  if (!(await canSeeTeam(ctx, caller, t.team_id))) {
    throw forbidden(`key not allowed to access this team's info. Key is not a member of team=${t.team_id}`);
  }
  const members = await ctx.repo.teamMembers(t.team_id);
  const budgets = new Map(
    (await ctx.repo.getBudgets(members.flatMap((m) => (m.budget_id ? [m.budget_id] : [])))).map((b) => [
      b.budget_id,
      b,
    ]),
  );
  const tokens = await ctx.repo.keyTokensWhere({ team_id: t.team_id });
  const keys = await Promise.all(
    (await ctx.repo.getKeys(tokens)).map(async (k) => ({ token: k.token, ...(await keyView(ctx, k)) })),
  );
  return ok({
    team_id: t.team_id,
    team_info: await teamView(ctx, t, members),
    keys,
    team_memberships: members.map((m) => ({
      team_id: m.team_id,
      user_id: m.user_id,
      role: m.role,
      spend: usd(m.spend_nano),
      budget_id: m.budget_id,
      litellm_budget_table: m.budget_id && budgets.get(m.budget_id) ? budgetView(budgets.get(m.budget_id)!) : null,
    })),
  });
}

export async function listTeams({ caller, query, ctx }: HandlerInput): Promise<HandlerResult> {
  const org = query.get("organization_id");
  let userId = query.get("user_id");
  if (!canReadAll(caller)) {
    if (userId !== null && userId !== caller.user_id) {
      throw forbidden(`Only admins can list other users' teams. user_id=${userId}, your user_id=${caller.user_id}`);
    }
    userId = caller.user_id ?? "";
  }
  const teams = await ctx.repo.listTeams({
    ...(org ? { organization_id: org } : {}),
    ...(userId ? { user_id: userId } : {}),
  });
  const members = await ctx.repo.teamMembersOf(teams.map((t) => t.team_id));
  return ok(
    await Promise.all(
      teams.map((t) =>
        teamView(
          ctx,
          t,
          members.filter((m) => m.team_id === t.team_id),
        ),
      ),
    ),
  );
}

/** Team admin (or proxy admin) only: LiteLLM's self-managed member routes. */
async function requireTeamAdmin(ctx: ManagementContext, caller: Caller, teamId: string, route: string): Promise<void> {
  if (!(await isTeamAdmin(ctx, caller, teamId))) {
    throw forbidden(`Call not allowed. User not proxy admin OR team admin. route=${route}, team_id=${teamId}`);
  }
}

export async function memberAdd({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  const t = await findTeam(ctx, fields.id("team_id"));
  await requireTeamAdmin(ctx, caller, t.team_id, route);
  const members = readMembers(fields, "member");
  if (members.length === 0) throw badRequest("member is required", "member");
  const maxInTeam = fields.usd("max_budget_in_team");
  const now = ctx.now();
  const added = [];
  for (const m of members) added.push(await addMember(ctx, caller, t.team_id, m, maxInTeam, now));
  ctx.cache.invalidate("team", t.team_id);
  return ok({
    ...(await teamView(ctx, (await ctx.repo.getTeam(t.team_id))!)),
    updated_users: added.map((a) => ({
      user_id: a.user.user_id,
      user_email: a.user.user_email,
      user_role: a.user.user_role,
    })),
    updated_team_memberships: added.map((a) => ({
      team_id: a.member.team_id,
      user_id: a.member.user_id,
      budget_id: a.member.budget_id,
      litellm_budget_table: a.budget === null ? null : budgetView(a.budget),
    })),
  });
}

async function findMember(ctx: ManagementContext, f: Fields, teamId: string): Promise<TeamMember> {
  let userId = f.id("user_id");
  const email = f.str("user_email");
  if (userId == null && email != null) userId = (await ctx.repo.getUserByEmail(email))?.user_id;
  if (userId == null) throw badRequest("user_id or user_email is required", "user_id");
  const m = await ctx.repo.getTeamMember(teamId, userId);
  if (m === undefined) throw notFound(`User=${userId} is not a member of team=${teamId}`, "user_id");
  return m;
}

export async function memberDelete({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  const t = await findTeam(ctx, fields.id("team_id"));
  await requireTeamAdmin(ctx, caller, t.team_id, route);
  const m = await findMember(ctx, fields, t.team_id);
  await ctx.repo.deleteTeamMember(t.team_id, m.user_id);
  ctx.cache.invalidate("member", memberId(t.team_id, m.user_id));
  ctx.cache.invalidate("team", t.team_id);
  return ok(await teamView(ctx, t));
}

export async function memberUpdate({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  const t = await findTeam(ctx, fields.id("team_id"));
  await requireTeamAdmin(ctx, caller, t.team_id, route);
  const m = await findMember(ctx, fields, t.team_id);
  const role = fields.str("role");
  if (role != null && role !== "admin" && role !== "user") throw badRequest(`role must be "admin" or "user"`, "role");
  const b = readBudgetFields(fields, { max_budget: "max_budget_in_team" });
  const now = ctx.now();
  const budgetId = await upsertBudgetFor(ctx, m.budget_id, b, caller.user_id, now);
  await ctx.repo.updateTeamMember(t.team_id, m.user_id, { ...(role != null ? { role } : {}), budget_id: budgetId });
  ctx.cache.invalidate("member", memberId(t.team_id, m.user_id));
  const budget = budgetId === null ? undefined : await ctx.repo.getBudget(budgetId);
  return ok({
    team_id: t.team_id,
    user_id: m.user_id,
    user_email: m.user_email,
    role: role ?? m.role,
    max_budget_in_team: budget?.max_budget ?? null,
    tpm_limit: budget?.tpm_limit ?? null,
    rpm_limit: budget?.rpm_limit ?? null,
    budget_duration: budget?.budget_duration ?? null,
  });
}

async function setTeamBlocked({ caller, fields, ctx, route }: HandlerInput, blocked: boolean): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const t = await findTeam(ctx, fields.id("team_id"));
  await ctx.repo.updateTeam(t.team_id, { blocked, updated_at: ctx.now(), updated_by: caller.user_id });
  ctx.cache.invalidate("team", t.team_id);
  return ok(await teamView(ctx, (await ctx.repo.getTeam(t.team_id))!));
}

export const blockTeam = (i: HandlerInput) => setTeamBlocked(i, true);
export const unblockTeam = (i: HandlerInput) => setTeamBlocked(i, false);
