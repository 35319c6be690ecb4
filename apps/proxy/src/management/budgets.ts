import { randomUUID } from "node:crypto";
import type { Budget, JsonObject } from "../db/repository.js";
import { type HandlerInput, type HandlerResult, iso, type ManagementContext, ok, requireAdmin } from "./context.js";
import { badRequest, notFound } from "./errors.js";
import type { Fields } from "./validate.js";

/** The fields of LiteLLM's `BudgetNewRequest` (and the budget parts of members, organizations and customers). */
export interface BudgetFields {
  max_budget?: number | null;
  soft_budget?: number | null;
  max_parallel_requests?: number | null;
  tpm_limit?: number | null;
  rpm_limit?: number | null;
  model_max_budget?: Budget["model_max_budget"];
  budget_duration?: string | null;
}

/** Reads budget fields; `names` maps an alternative request name (e.g. `max_budget_in_team`) to `max_budget`. */
export function readBudgetFields(f: Fields, names: { max_budget?: string } = {}): BudgetFields {
  const out: BudgetFields = {};
  const max = f.usd(names.max_budget ?? "max_budget");
  if (max !== undefined) out.max_budget = max;
  const soft = f.usd("soft_budget");
  if (soft !== undefined) out.soft_budget = soft;
  const par = f.int("max_parallel_requests");
  if (par !== undefined) out.max_parallel_requests = par;
  const tpm = f.int("tpm_limit");
  if (tpm !== undefined) out.tpm_limit = tpm;
  const rpm = f.int("rpm_limit");
  if (rpm !== undefined) out.rpm_limit = rpm;
  const mmb = f.modelBudgets("model_max_budget");
  if (mmb !== undefined) out.model_max_budget = mmb;
  const dur = f.duration("budget_duration");
  if (dur !== undefined) out.budget_duration = dur;
  return out;
}

export function hasBudgetFields(b: BudgetFields): boolean {
  return Object.keys(b).length > 0;
}

/** A new budget row from fields (absent fields null). */
export function newBudgetRow(id: string, b: BudgetFields, by: string | null, now: number): Budget {
  return {
    budget_id: id,
    max_budget: b.max_budget ?? null,
    soft_budget: b.soft_budget ?? null,
    max_parallel_requests: b.max_parallel_requests ?? null,
    tpm_limit: b.tpm_limit ?? null,
    rpm_limit: b.rpm_limit ?? null,
    model_max_budget: b.model_max_budget ?? null,
    budget_duration: b.budget_duration ?? null,
    budget_started_at: b.budget_duration == null ? null : now,
    created_at: now,
    created_by: by,
    updated_at: now,
    updated_by: by,
  };
}

/** The column changes for budget fields (a changed duration starts a fresh period). */
export function budgetPatch(existing: Budget, b: BudgetFields, by: string | null, now: number): Partial<Budget> {
  const p: Partial<Budget> = { ...b, updated_at: now, updated_by: by } as Partial<Budget>;
  if (b.budget_duration !== undefined && b.budget_duration !== existing.budget_duration) {
    p.budget_started_at = b.budget_duration === null ? null : now;
  }
  return p;
}

/** Creates a budget row for an entity's budget fields, or returns null when there are none. */
export async function createBudgetFor(
  ctx: ManagementContext,
  b: BudgetFields,
  by: string | null,
  now: number,
): Promise<Budget | null> {
  if (!hasBudgetFields(b)) return null;
  const row = newBudgetRow(randomUUID(), b, by, now);
  await ctx.repo.insertBudget(row);
  return row;
}

/** Updates (or creates) the budget row an entity points to; returns the row id. */
export async function upsertBudgetFor(
  ctx: ManagementContext,
  budgetId: string | null,
  b: BudgetFields,
  by: string | null,
  now: number,
): Promise<string | null> {
  if (!hasBudgetFields(b)) return budgetId;
  if (budgetId !== null) {
    const existing = await ctx.repo.getBudget(budgetId);
    if (existing !== undefined) {
      await ctx.repo.updateBudget(budgetId, budgetPatch(existing, b, by, now));
      ctx.cache.invalidate("budget", budgetId);
      return budgetId;
    }
  }
  const row = await createBudgetFor(ctx, b, by, now);
  return row?.budget_id ?? null;
}

export function budgetView(b: Budget): JsonObject {
  return { ...b, budget_started_at: undefined, created_at: iso(b.created_at), updated_at: iso(b.updated_at) };
}

export async function newBudget({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const id = fields.id("budget_id") ?? randomUUID();
  const b = readBudgetFields(fields);
  if ((await ctx.repo.getBudget(id)) !== undefined)
    throw badRequest(`Budget with id ${id} already exists.`, "budget_id");
  const row = newBudgetRow(id, b, caller.user_id, ctx.now());
  await ctx.repo.insertBudget(row);
  return ok(budgetView(row));
}

export async function updateBudget({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const id = fields.requiredId("budget_id");
  const existing = await ctx.repo.getBudget(id);
  if (existing === undefined) throw notFound(`Budget not found: budget_id=${id}`, "budget_id");
  await ctx.repo.updateBudget(id, budgetPatch(existing, readBudgetFields(fields), caller.user_id, ctx.now()));
  ctx.cache.invalidate("budget", id);
  return ok(budgetView((await ctx.repo.getBudget(id))!));
}

export async function budgetInfo({ fields, ctx }: HandlerInput): Promise<HandlerResult> {
  const ids = fields.strList("budgets", { ids: true });
  if (!ids || ids.length === 0) throw badRequest("budgets (a list of budget ids) is required", "budgets");
  const rows = await ctx.repo.getBudgets(ids);
  if (rows.length === 0) throw notFound(`No budgets found: ${ids.join(", ")}`, "budgets");
  return ok(rows.map(budgetView));
}

export async function listBudgets({ ctx }: HandlerInput): Promise<HandlerResult> {
  return ok((await ctx.repo.listBudgets()).map(budgetView));
}

export async function deleteBudget({ caller, fields, ctx, route }: HandlerInput): Promise<HandlerResult> {
  requireAdmin(caller, route);
  const id = fields.requiredId("id");
  const existing = await ctx.repo.getBudget(id);
  if (existing === undefined) throw notFound(`Budget not found: budget_id=${id}`, "id");
  const user = await ctx.repo.budgetInUse(id);
  if (user !== undefined) {
    throw badRequest(
      `Budget ${id} is still used by a ${user}; point it to another budget first (deleting it would lift its limits)`,
      "id",
    );
  }
  await ctx.repo.deleteBudgets([id]);
  ctx.cache.invalidate("budget", id);
  return ok(budgetView(existing));
}
