import { randomUUID } from "node:crypto";
import type { Budget, JsonObject, Organization } from "../db/repository.js";
import { budgetView, readBudgetFields, upsertBudgetFor } from "./budgets.js";
import {
  type HandlerInput,
  type HandlerResult,
  iso,
  type ManagementContext,
  mergeMetadata,
  ok,
  requireAdmin,
  usd,
} from "./context.js";
import { badRequest, notFound } from "./errors.js";
import { ensureUser } from "./keys.js";
import { teamView } from "./teams.js";
import { Fields } from "./validate.js";

const ORG_METADATA_FIELDS = ["model_rpm_limit", "model_tpm_limit"];

async function orgView(ctx: ManagementContext, o: Organization, full = false): Promise<JsonObject> {
  const budget: Budget | null = o.budget_id === null ? null : ((await ctx.repo.getBudget(o.budget_id)) ?? null);
  const view: JsonObject = {
    organization_id: o.organization_id,
    organization_alias: o.organization_alias,
    budget_id: o.budget_id,
    metadata: o.metadata,
    models: o.models,
    spend: usd(o.spend_nano),
    litellm_budget_table: budget === null ? null : budgetView(budget),
    created_at: iso(o.created_at),
    created_by: o.created_by,
    updated_at: iso(o.updated_at),
    updated_by: o.updated_by,
  };
  if (full) {
    const members = await ctx.repo.organizationMembers(o.organization_id);
    view.members = members.map((m) => ({
      user_id: m.user_id,
      organization_id: m.organization_id,
      user_role: m.user_role,
      spend: usd(m.spend_nano),
      budget_id: m.budget_id,
    }));
    const teams = await ctx.repo.listTeams({ organization_id: o.organization_id });
    view.teams = await Promise.all(teams.map((t) => teamView(ctx, t)));
  }
  return view;
}

async function findOrg(
  ctx: ManagementContext,
  id: string | null | undefined,
  param = "organization_id",
): Promise<Organization> {
  if (id == null) throw badRequest(`${param} is required`, param);
  const o = await ctx.repo.getOrganization(id);
  if (o === undefined) throw notFound(`Organization not found: organization_id=${id}`, param);
  return o;
}

export async function newOrganization({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const alias = fields.str("organization_alias");
  if (alias == null) throw badRequest("organization_alias is required", "organization_alias");
  const id = fields.id("organization_id") ?? randomUUID();
  const models = fields.strList("models");
  const metadata = fields.obj("metadata");
  const budgetId = fields.id("budget_id");
  const b = readBudgetFields(fields);
  if (budgetId != null && Object.keys(b).length > 0)
    throw badRequest("Set either a budget_id or budget fields (max_budget, ...), not both.", "budget_id");
  if (budgetId != null && (await ctx.repo.getBudget(budgetId)) === undefined)
    throw badRequest(`Budget not found: budget_id=${budgetId}`, "budget_id");
  if ((await ctx.repo.getOrganization(id)) !== undefined)
    throw badRequest(`Organization id = ${id} already exists.`, "organization_id");
  const now = ctx.now();
  const bid = budgetId ?? (await upsertBudgetFor(ctx, null, b, caller.user_id, now));
  const o: Organization = {
    organization_id: id,
    organization_alias: alias,
    budget_id: bid,
    metadata: mergeMetadata(metadata ?? {}, fields, ORG_METADATA_FIELDS),
    models: models ?? [],
    spend_nano: 0,
    created_at: now,
    created_by: caller.user_id,
    updated_at: now,
    updated_by: caller.user_id,
  };
  try {
    await ctx.repo.insertOrganization(o);
  } catch (err) {
    if ((await ctx.repo.getOrganization(id)) !== undefined)
      throw badRequest(`Organization id = ${id} already exists.`, "organization_id");
    throw err;
  }
  return ok(await orgView(ctx, o));
}

export async function updateOrganization({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const o = await findOrg(ctx, fields.id("organization_id"));
  const now = ctx.now();
  const p: Partial<Organization> = { updated_at: now, updated_by: caller.user_id };
  const alias = fields.str("organization_alias");
  if (alias !== undefined) p.organization_alias = alias;
  const models = fields.strList("models");
  if (models !== undefined) p.models = models ?? [];
  const metadata = fields.obj("metadata");
  if (metadata !== undefined || ORG_METADATA_FIELDS.some((n) => fields.has(n))) {
    p.metadata = mergeMetadata(metadata === undefined ? o.metadata : (metadata ?? {}), fields, ORG_METADATA_FIELDS);
  }
  const budgetId = fields.id("budget_id");
  if (budgetId != null) {
    if ((await ctx.repo.getBudget(budgetId)) === undefined)
      throw badRequest(`Budget not found: budget_id=${budgetId}`, "budget_id");
    p.budget_id = budgetId;
  } else {
    p.budget_id = await upsertBudgetFor(ctx, o.budget_id, readBudgetFields(fields), caller.user_id, now);
  }
  await ctx.repo.updateOrganization(o.organization_id, p);
  ctx.cache.invalidate("organization", o.organization_id);
  return ok(await orgView(ctx, (await ctx.repo.getOrganization(o.organization_id))!));
}

export async function organizationInfo({ caller, query, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const id = query.get("organization_id") ?? fields.id("organization_id");
  return ok(await orgView(ctx, await findOrg(ctx, id), true));
}

export async function listOrganizations({ caller, ctx, route }: HandlerInput): Promise<HandlerResult> {
  if (caller.role !== "proxy_admin" && caller.role !== "proxy_admin_viewer") requireAdmin(caller, route);
  return ok(await Promise.all((await ctx.repo.listOrganizations()).map((o) => orgView(ctx, o))));
}

export async function deleteOrganizations({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const ids = fields.strList("organization_ids", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("organization_ids is required", "organization_ids");
  const found = [];
  for (const id of ids) found.push(await findOrg(ctx, id, "organization_ids"));
  for (const id of ids) {
    const teams = await ctx.repo.listTeams({ organization_id: id });
    if (teams.length > 0) {
      throw badRequest(
        `Organization ${id} still has teams (${teams.map((t) => t.team_id).join(", ")}); delete or move them first. Nothing was deleted.`,
        "organization_ids",
      );
    }
  }
  await ctx.repo.transaction(async (repo) => {
    await repo.deleteOrganizationMembersOf(ids);
    await repo.deleteOrganizations(ids);
  });
  for (const id of ids) ctx.cache.invalidate("organization", id);
  return ok(await Promise.all(found.map((o) => orgView(ctx, o))));
}

export async function organizationMemberAdd({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const o = await findOrg(ctx, fields.id("organization_id"));
  const raw = fields.body.member;
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  if (list.length === 0) throw badRequest("member is required", "member");
  const maxIn = fields.usd("max_budget_in_organization");
  const now = ctx.now();
  const updatedUsers = [];
  const memberships = [];
  for (const [i, m] of list.entries()) {
    if (typeof m !== "object" || m === null || Array.isArray(m))
      throw badRequest(`member[${i}] must be an object`, "member");
    const mf = new Fields(m as JsonObject);
    let userId = mf.id("user_id");
    const email = mf.str("user_email");
    if (userId == null && email != null) userId = (await ctx.repo.getUserByEmail(email))?.user_id ?? randomUUID();
    if (userId == null) throw badRequest(`member[${i}] needs user_id or user_email`, "member");
    const role = mf.str("role") ?? "internal_user";
    if (!["org_admin", "internal_user", "internal_user_viewer"].includes(role)) {
      throw badRequest(`member[${i}].role must be org_admin, internal_user or internal_user_viewer`, "member");
    }
    await ensureUser(ctx, userId, now);
    if (email != null) await ctx.repo.updateUser(userId, { user_email: email });
    if ((await ctx.repo.getOrganizationMember(o.organization_id, userId)) !== undefined) {
      throw badRequest(`User=${userId} already in organization=${o.organization_id}`, "member");
    }
    const budgetId =
      maxIn === undefined ? null : await upsertBudgetFor(ctx, null, { max_budget: maxIn }, caller.user_id, now);
    await ctx.repo.insertOrganizationMember({
      organization_id: o.organization_id,
      user_id: userId,
      user_role: role,
      spend_nano: 0,
      budget_id: budgetId,
      created_at: now,
      updated_at: now,
    });
    await ctx.repo.updateUser(userId, { organization_id: o.organization_id, updated_at: now });
    ctx.cache.invalidate("user", userId);
    updatedUsers.push({ user_id: userId, user_email: email ?? null, organization_id: o.organization_id });
    memberships.push({ organization_id: o.organization_id, user_id: userId, user_role: role, budget_id: budgetId });
  }
  return ok({
    organization_id: o.organization_id,
    updated_users: updatedUsers,
    updated_organization_memberships: memberships,
  });
}
