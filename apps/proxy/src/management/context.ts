import { type BudgetSpec, compileBudget } from "@tollgate/budgets";
import type { JsonObject, Repository } from "../db/repository.js";
import type { EntityCache } from "./cache.js";
import { forbidden, unauthorized } from "./errors.js";
import type { Caller, IdentitySettings } from "./identity.js";
import type { Fields } from "./validate.js";

/** How budget periods are laid out (must match the gate's budgets options). */
export interface PeriodSettings {
  /** @default "UTC" */
  timeZone?: string;
  /** @default "calendar" */
  reset?: "calendar" | "rolling";
  /** Store key prefix of budgets. @default "budget" */
  keyPrefix?: string;
}

/** What every handler gets. */
export interface ManagementContext {
  repo: Repository;
  cache: EntityCache;
  settings: IdentitySettings & {
    /** `litellm_settings.max_budget` (shown by `/global/spend`). */
    maxBudget?: number | null;
  };
  periods: Required<PeriodSettings>;
  now(): number;
}

/** One management call, after authentication. */
export interface HandlerInput {
  caller: Caller;
  body: JsonObject;
  fields: Fields;
  query: URLSearchParams;
  route: string;
  ctx: ManagementContext;
}

export interface HandlerResult {
  status: number;
  body: unknown;
}

export const ok = (body: unknown): HandlerResult => ({ status: 200, body });

/** ISO-8601 text of an instant in ms (LiteLLM answers datetimes as ISO strings), or null. */
export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}

/** nano-USD → USD as a JSON number (LiteLLM's `spend` floats). */
export function usd(nano: number): number {
  return nano / 1e9;
}

/** LiteLLM's masking of user ids in error messages: 6 first and 2 last characters. */
export function maskUserId(id: string | null): string {
  if (id === null || id.length <= 4) return "***";
  if (id.length <= 8) return "*".repeat(id.length);
  return `${id.slice(0, 6)}${"*".repeat(id.length - 8)}${id.slice(-2)}`;
}

/** LiteLLM's refusal of an admin-only route: 403 for the read-only admin, 401 with its text for everyone else. */
export function adminOnly(caller: Caller, route: string): never {
  if (caller.role === "proxy_admin_viewer") {
    throw forbidden(`user not allowed to access this route, role= ${caller.role}. Trying to access: ${route}`);
  }
  throw unauthorized(
    `Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route=${route}. Your role=${caller.role}. Your user_id=${maskUserId(caller.user_id)}`,
  );
}

export function requireAdmin(caller: Caller, route: string): void {
  if (caller.role !== "proxy_admin") adminOnly(caller, route);
}

/** Proxy admins and read-only admins see everything. */
export function canReadAll(caller: Caller): boolean {
  return caller.role === "proxy_admin" || caller.role === "proxy_admin_viewer";
}

/** Whether the caller is an admin of `teamId` (proxy admins are admins of every team). */
export async function isTeamAdmin(ctx: ManagementContext, caller: Caller, teamId: string | null): Promise<boolean> {
  if (caller.role === "proxy_admin") return true;
  if (teamId === null || caller.user_id === null) return false;
  const m = await ctx.repo.getTeamMember(teamId, caller.user_id);
  return m?.role === "admin";
}

/** Compiles a spec with the proxy's period settings (cached by the budgets package's own cache elsewhere). */
export function compileSpec(ctx: ManagementContext, spec: BudgetSpec) {
  return compileBudget(spec, ctx.periods);
}

/** The store key of a budget's current period and when it resets. */
export function currentPeriod(
  ctx: ManagementContext,
  spec: BudgetSpec,
  now: number,
): { key: string; end: number | null } {
  const b = compileSpec(ctx, spec);
  const p = b.schedule.periodAt(now);
  return { key: `${b.base}:${p.id}`, end: Number.isFinite(p.end) ? p.end : null };
}

/**
 * The `spend` and `budget_reset_at` an entity shows: with a budget (`spec`) that has a `budget_duration`, the spend of
 * the current period from the ledger (LiteLLM zeroes `spend` at each reset); otherwise the entity's total spend.
 * `resetOnly` (an entity with a `budget_duration` but no budget to count against) gives `budget_reset_at` only.
 */
export async function shownSpend(
  ctx: ManagementContext,
  spec: BudgetSpec | null,
  totalNano: number,
  resetOnly?: BudgetSpec | null,
): Promise<{ spend: number; budget_reset_at: string | null }> {
  const now = ctx.now();
  if (spec === null || spec.duration === null || spec.duration === undefined) {
    const r = resetOnly?.duration ? currentPeriod(ctx, resetOnly, now).end : null;
    return { spend: usd(totalNano), budget_reset_at: iso(r) };
  }
  const { key, end } = currentPeriod(ctx, spec, now);
  const totals = await ctx.repo.periodTotals([key]);
  return { spend: usd(totals.get(key) ?? 0), budget_reset_at: iso(end) };
}

/** A spec for `budget_reset_at` of an entity without a budget (see {@link shownSpend}). */
export function resetSpec(
  scope: BudgetSpec["scope"],
  id: string,
  duration: string | null,
  startedAt: number | null,
): BudgetSpec | null {
  if (duration === null) return null;
  return { scope, id, maxBudget: null, duration, ...(startedAt === null ? {} : { startedAt }) };
}

/** `metadata` with LiteLLM's management fields folded in (`model_rpm_limit`, `tags`, …). */
export function mergeMetadata(base: JsonObject, f: Fields, names: string[]): JsonObject {
  const out: JsonObject = { ...base };
  for (const n of names) {
    if (f.has(n)) {
      const v = f.body[n];
      if (v === null) delete out[n];
      else out[n] = v;
    }
  }
  return out;
}
