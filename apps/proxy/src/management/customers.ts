import { litellmBudgets } from "@tollgate/budgets";
import type { Budget, EndUser, JsonObject } from "../db/repository.js";
import { budgetView, hasBudgetFields, readBudgetFields, upsertBudgetFor } from "./budgets.js";
import {
  type HandlerInput,
  type HandlerResult,
  type ManagementContext,
  ok,
  requireAdmin,
  shownSpend,
} from "./context.js";
import { badRequest, notFound } from "./errors.js";
import { endUserBudgetFields } from "./identity.js";

const REGIONS = ["eu", "us"];

async function customerView(ctx: ManagementContext, e: EndUser): Promise<JsonObject> {
  const budget: Budget | null = e.budget_id === null ? null : ((await ctx.repo.getBudget(e.budget_id)) ?? null);
  const spec =
    litellmBudgets({ end_user: endUserBudgetFields(e.user_id, budget, ctx.settings) }).find(
      (b) => b.model === undefined,
    ) ?? null;
  const { spend, budget_reset_at } = await shownSpend(ctx, spec, e.spend_nano);
  return {
    user_id: e.user_id,
    blocked: e.blocked,
    alias: e.alias,
    spend,
    budget_reset_at,
    allowed_model_region: e.allowed_model_region,
    default_model: e.default_model,
    budget_id: e.budget_id,
    litellm_budget_table: budget === null ? null : budgetView(budget),
  };
}

function readCustomer(input: HandlerInput) {
  const f = input.fields;
  const region = f.str("allowed_model_region");
  if (region != null && !REGIONS.includes(region))
    throw badRequest(`allowed_model_region must be "eu" or "us"`, "allowed_model_region");
  return {
    alias: f.str("alias"),
    blocked: f.bool("blocked"),
    budget_id: f.id("budget_id"),
    allowed_model_region: region,
    default_model: f.str("default_model"),
    budget: readBudgetFields(f),
  };
}

async function findCustomer(
  ctx: ManagementContext,
  id: string | null | undefined,
  param = "user_id",
): Promise<EndUser> {
  if (id == null) throw badRequest(`${param} is required`, param);
  const e = await ctx.repo.getEndUser(id);
  if (e === undefined) throw notFound(`End User not found: ${id}`, param);
  return e;
}

export async function newCustomer(input: HandlerInput): Promise<HandlerResult> {
  const { caller, fields, ctx, route } = input;
  requireAdmin(caller, route);
  const id = fields.requiredId("user_id");
  const v = readCustomer(input);
  if (v.budget_id != null && v.budget.max_budget !== undefined) {
    throw badRequest("Set either 'max_budget' or 'budget_id', not both.", "budget_id");
  }
  if (v.budget_id != null && (await ctx.repo.getBudget(v.budget_id)) === undefined) {
    throw badRequest(`Budget not found: budget_id=${v.budget_id}`, "budget_id");
  }
  if ((await ctx.repo.getEndUser(id)) !== undefined)
    throw badRequest(`Customer already exists: user_id=${id}`, "user_id");
  const now = ctx.now();
  const budgetId =
    v.budget_id ?? (hasBudgetFields(v.budget) ? await upsertBudgetFor(ctx, null, v.budget, caller.user_id, now) : null);
  const e: EndUser = {
    user_id: id,
    alias: v.alias ?? null,
    spend_nano: 0,
    allowed_model_region: v.allowed_model_region ?? null,
    default_model: v.default_model ?? null,
    budget_id: budgetId,
    blocked: v.blocked ?? false,
    created_at: now,
  };
  try {
    await ctx.repo.insertEndUser(e);
  } catch (err) {
    if ((await ctx.repo.getEndUser(id)) !== undefined)
      throw badRequest(`Customer already exists: user_id=${id}`, "user_id");
    throw err;
  }
  ctx.cache.invalidate("end_user", id);
  return ok(await customerView(ctx, e));
}

export async function customerInfo({ caller, query, ctx, route }: HandlerInput): Promise<HandlerResult> {
  if (caller.role !== "proxy_admin_viewer") requireAdmin(caller, route);
  return ok(await customerView(ctx, await findCustomer(ctx, query.get("end_user_id"), "end_user_id")));
}

export async function listCustomers({ caller, ctx, route }: HandlerInput): Promise<HandlerResult> {
  if (caller.role !== "proxy_admin_viewer") requireAdmin(caller, route);
  return ok(await Promise.all((await ctx.repo.listEndUsers()).map((e) => customerView(ctx, e))));
}

export async function updateCustomer(input: HandlerInput): Promise<HandlerResult> {
  const { caller, fields, ctx, route } = input;
  requireAdmin(caller, route);
  const e = await findCustomer(ctx, fields.id("user_id"));
  const v = readCustomer(input);
  if (v.budget_id != null && v.budget.max_budget !== undefined) {
    throw badRequest("Set either 'max_budget' or 'budget_id', not both.", "budget_id");
  }
  const now = ctx.now();
  const p: Partial<EndUser> = {};
  if (v.alias !== undefined) p.alias = v.alias;
  if (v.blocked != null) p.blocked = v.blocked;
  if (v.allowed_model_region !== undefined) p.allowed_model_region = v.allowed_model_region;
  if (v.default_model !== undefined) p.default_model = v.default_model;
  if (v.budget_id != null) {
    if ((await ctx.repo.getBudget(v.budget_id)) === undefined)
      throw badRequest(`Budget not found: budget_id=${v.budget_id}`, "budget_id");
    p.budget_id = v.budget_id;
  } else if (hasBudgetFields(v.budget)) {
    // A budget row shared with others (budget_id from /budget/new) is not edited through one customer: give this
    // customer its own row instead.
    const own = e.budget_id !== null && (await ctx.repo.budgetInUse(e.budget_id)) === "end user" ? e.budget_id : null;
    p.budget_id = await upsertBudgetFor(ctx, own, v.budget, caller.user_id, now);
  }
  await ctx.repo.updateEndUser(e.user_id, p);
  ctx.cache.invalidate("end_user", e.user_id);
  return ok(await customerView(ctx, (await ctx.repo.getEndUser(e.user_id))!));
}

export async function deleteCustomers({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const ids = fields.strList("user_ids", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("user_ids is required", "user_ids");
  for (const id of ids) await findCustomer(ctx, id, "user_ids");
  await ctx.repo.deleteEndUsers(ids);
  for (const id of ids) ctx.cache.invalidate("end_user", id);
  return ok({ deleted_customers: ids });
}

async function setBlocked({ caller, fields, ctx, route }: HandlerInput, blocked: boolean): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const ids = fields.strList("user_ids", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("user_ids is required", "user_ids");
  const now = ctx.now();
  for (const id of ids) {
    // Blocking an end user the proxy has not seen yet creates it, blocked (LiteLLM upserts too).
    if ((await ctx.repo.getEndUser(id)) === undefined) {
      await ctx.repo.insertEndUser({
        user_id: id,
        alias: null,
        spend_nano: 0,
        allowed_model_region: null,
        default_model: null,
        budget_id: null,
        blocked,
        created_at: now,
      });
    } else {
      await ctx.repo.updateEndUser(id, { blocked });
    }
    ctx.cache.invalidate("end_user", id);
  }
  return ok({ blocked_users: blocked ? ids : [], unblocked_users: blocked ? [] : ids });
}

export const blockCustomers = (i: HandlerInput) => setBlocked(i, true);
export const unblockCustomers = (i: HandlerInput) => setBlocked(i, false);
